//! Step 7 and the ends of a run: the connection made active, a failure recorded, or a retry scheduled.

use super::*;

impl TaskRun<'_> {
    /// Step 7: the connection becomes `active` with the projects in its metadata; the task succeeds.
    pub(super) async fn step_finish(&mut self) -> Result<(), StepError> {
        let conn = self.connection().await?;
        let (kept, skipped) = self.kept_and_skipped();
        let projects: Vec<serde_json::Value> = kept
            .iter()
            .map(|p| serde_json::json!({"projectId": p["projectId"], "name": p["name"]}))
            .collect();
        let ids: Vec<serde_json::Value> = kept.iter().map(|p| p["projectId"].clone()).collect();
        let mut metadata = match &conn.metadata {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let now = Utc::now();
        metadata.insert("projects".into(), projects.clone().into());
        metadata.insert("projectIds".into(), ids.clone().into());
        metadata.insert(
            "defaultProjectId".into(),
            ids.first().cloned().unwrap_or_default(),
        );
        metadata.insert(
            "enabledApis".into(),
            serde_json::json!(self.c.cfg.required_apis),
        );
        metadata.insert("setupTaskId".into(), self.task.id.to_string().into());
        metadata.insert("setupCompletedAt".into(), now.to_rfc3339().into());
        if let Some(sub) = &self.cp.sub {
            metadata.insert("sub".into(), sub.clone().into());
        }
        let platform = &self.c.platform;
        platform
            .update_metadata(
                self.user(),
                conn.id,
                serde_json::Value::Object(metadata),
                conn.expires_at,
            )
            .await?
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })?;
        // Each write tells every replica once; the credentials stay cached (the secret is unchanged).
        let updated = platform
            .update_status(
                self.user(),
                conn.id,
                StatusUpdate {
                    status: ConnectionStatus::Active,
                    status_reason: None,
                    last_validated_at: Some(now),
                },
            )
            .await?
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })?;
        let n = projects.len();
        let result = serde_json::json!({
            "status": "success",
            "message": format!("Google Cloud connected with {n} project{}", if n == 1 { "" } else { "s" }),
            "connectionId": conn.id,
            "accountId": conn.account_id,
            "projects": kept,
            "skippedProjects": skipped,
            "enabledApis": self.c.cfg.required_apis,
            "selectedByUser": self.cp.selected_by_user,
        });
        self.cp.completed_step = TOTAL_STEPS;
        let outcome = SetupOutcome {
            state: SetupState::Success,
            progress: 100,
            status_message: format!(
                "Google Cloud is connected ({n} project{})",
                if n == 1 { "" } else { "s" }
            ),
            error: None,
            result: Some(result),
            input: Some(self.cp.to_json()),
        };
        if !platform
            .store()
            .finish_setup_task(self.task.id, &self.c.worker_id, outcome)
            .await?
        {
            return Err(StepError::LeaseLost);
        }
        if conn.status != ConnectionStatus::Active {
            self.c
                .platform
                .audit(
                    self.user(),
                    Some(&updated),
                    connector_core::AuditAction::SetupCompleted,
                    Actor::System,
                    serde_json::json!({"taskId": self.task.id, "projects": n}),
                )
                .await;
        }
        Ok(())
    }

    /// End the task in `FAILURE` and say so on the connection.
    pub(super) async fn fail(&mut self, message: &str, refusal: bool) {
        tracing::warn!(task = %self.task.id, refusal, reason = message, "GCP setup task failed");
        let outcome = SetupOutcome {
            state: SetupState::Failure,
            progress: self.progress,
            status_message: "The Google Cloud setup failed".into(),
            error: Some(message.to_owned()),
            result: Some(serde_json::json!({"status": "failed", "error": message})),
            input: None,
        };
        // The connection first, the task second: a caller that reads FAILURE from the task then finds
        // the connection already marked. Only while this attempt still holds the lease, so a lost
        // lease changes nothing here (the attempt that holds it decides).
        match self
            .c
            .platform
            .store()
            .renew_setup_lease(self.task.id, &self.c.worker_id, self.lease_until())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(task = %self.task.id, error = %e, "could not record a setup failure");
                return;
            }
        }
        if refusal {
            if let Ok(conn) = self.connection().await {
                self.c.mark_needs_reconnect(&conn, message).await;
            }
        } else if let Ok(conn) = self.connection().await {
            let reason = format!("the setup did not finish: {message}");
            if let Ok(Some(updated)) = self
                .c
                .platform
                .update_status(
                    self.user(),
                    conn.id,
                    StatusUpdate {
                        status: ConnectionStatus::Degraded,
                        status_reason: Some(reason.clone()),
                        last_validated_at: None,
                    },
                )
                .await
            {
                self.c
                    .platform
                    .audit(
                        self.user(),
                        Some(&updated),
                        connector_core::AuditAction::SetupFailed,
                        Actor::System,
                        serde_json::json!({"taskId": self.task.id, "reason": message}),
                    )
                    .await;
            }
        }
        if let Err(e) = self
            .c
            .platform
            .store()
            .finish_setup_task(self.task.id, &self.c.worker_id, outcome)
            .await
        {
            // The lease lapses and another attempt (or the attempt limit) ends it.
            tracing::error!(task = %self.task.id, error = %e, "could not record a setup failure");
        }
    }

    /// Give the lease back; the task is claimable again after a back-off.
    pub(super) async fn retry_later(&mut self, message: &str, retry_after: Option<u64>) {
        let w = &self.c.cfg.worker;
        let exp = (self.task.attempts - 1).clamp(0, 10) as u32;
        let backoff = w
            .retry_delay
            .saturating_mul(2u32.saturating_pow(exp))
            .min(Duration::from_secs(60));
        let wait = backoff.max(Duration::from_secs(retry_after.unwrap_or(0).min(600)));
        let not_before = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let status = format!(
            "A temporary problem interrupted the setup ({message}); it resumes in {} s (attempt {} of {})",
            wait.as_secs().max(1),
            self.task.attempts,
            w.max_attempts
        );
        tracing::warn!(task = %self.task.id, attempt = self.task.attempts, reason = message, "GCP setup task will be retried");
        if let Err(e) = self
            .c
            .platform
            .store()
            .release_setup_task(self.task.id, &self.c.worker_id, not_before, &status)
            .await
        {
            tracing::error!(task = %self.task.id, error = %e, "could not release a setup task; its lease will lapse");
        }
    }
}
