//! A run's plumbing: progress reports, lease renewal, the connection, the access token and the order of the steps.

use super::*;

impl<'a> TaskRun<'a> {
    /// A run whose checkpoint is unusable: only `fail` is called on it.
    pub(super) fn detached(c: &'a GcpConnector, task: SetupTaskRecord) -> Self {
        let conn = task.connection_id.unwrap_or_default();
        Self {
            c,
            progress: task.progress,
            cp: Checkpoint::new(conn, "", None),
            task,
            token: None,
        }
    }

    pub(super) fn lease_until(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.c.cfg.worker.lease).unwrap_or_default()
    }

    pub(super) fn user(&self) -> &UserId {
        &self.task.user_id
    }

    pub(super) async fn report(
        &mut self,
        step: i32,
        progress: i32,
        message: &str,
        with_checkpoint: bool,
    ) -> Result<(), StepError> {
        self.progress = self.progress.max(progress);
        let p = SetupProgress {
            state: SetupState::Progress,
            step,
            progress: self.progress,
            status_message: message.to_owned(),
            input: with_checkpoint.then(|| self.cp.to_json()),
            lease_until: Some(self.lease_until()),
        };
        if self
            .c
            .platform
            .store()
            .save_setup_progress(self.task.id, &self.c.worker_id, p)
            .await?
        {
            Ok(())
        } else {
            Err(StepError::LeaseLost)
        }
    }

    pub(super) async fn renew(&self) -> Result<(), StepError> {
        if self
            .c
            .platform
            .store()
            .renew_setup_lease(self.task.id, &self.c.worker_id, self.lease_until())
            .await?
        {
            Ok(())
        } else {
            Err(StepError::LeaseLost)
        }
    }

    pub(super) async fn connection(&self) -> Result<ConnectionRecord, StepError> {
        self.c
            .platform
            .store()
            .get_connection(self.user(), self.cp.connection_id)
            .await?
            .filter(|c| c.provider == self.c.provider)
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })
    }

    /// This run's access token, refreshed with the stored grant when absent or within 5 minutes of
    /// expiry.
    pub(super) async fn token(&mut self) -> Result<SecretString, StepError> {
        if let Some((t, exp)) = &self.token {
            if *exp - Utc::now() > chrono::Duration::minutes(5) {
                return Ok(t.clone());
            }
        }
        let conn = self.connection().await?;
        let secret =
            self.c
                .platform
                .load_secret(&conn)
                .await?
                .ok_or_else(|| {
                    StepError::Permanent {
                message:
                    "the stored Google authorization is missing; connect the Google account again"
                        .into(),
                refusal: true,
            }
                })?;
        let r = self.c.refresh(&secret).await?;
        if let Some(updated) = &r.updated_secret {
            self.c.store_rotated(&conn, &secret, updated).await;
        }
        self.token = Some((r.access_token.clone(), r.expires_at));
        Ok(r.access_token)
    }

    pub(super) async fn execute(&mut self) -> Result<(), StepError> {
        let first = self.cp.completed_step + 1;
        for step in first..=TOTAL_STEPS {
            self.connection().await?;
            let msg = STEP_MESSAGES[step as usize];
            self.report(step, progress_at((step - 1) as f64), msg, false)
                .await?;
            match step {
                1 => self.step_identity().await?,
                2 => self.step_projects().await?,
                3 => self.step_billing().await?,
                4 => {
                    if !self.step_choose().await? {
                        return Ok(());
                    }
                }
                5 => self.step_enable_apis().await?,
                6 => self.step_verify_access().await?,
                _ => return self.step_finish().await,
            }
            self.cp.completed_step = step;
            self.report(
                step,
                progress_at(step as f64),
                &format!("{msg}: done"),
                true,
            )
            .await?;
        }
        Ok(())
    }
}
