//! The setup worker: the claim loop of one replica, one run of one task, its lease, token and step order.

use super::*;

/// The worker loop of one replica: claim a due task when a slot is free, else sleep. Tasks run
/// inside a `JoinSet` owned by this future, so aborting it (gateway shutdown) stops them too; their
/// leases then lapse and another replica resumes them.
pub async fn run_worker(connector: Arc<GcpConnector>) {
    let w = connector.cfg.worker.clone();
    let slots = Arc::new(Semaphore::new(w.concurrency));
    let mut running = JoinSet::new();
    tracing::info!(worker = %connector.worker_id, "GCP setup worker started");
    loop {
        while running.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(w.lease).unwrap_or_default();
        match connector
            .platform
            .store()
            .claim_setup_task(&connector.provider, &connector.worker_id, now, lease_until)
            .await
        {
            Ok(Some(task)) => {
                let c = connector.clone();
                running.spawn(async move {
                    c.run_task(task).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(w.poll) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "GCP setup worker could not claim a task");
                tokio::time::sleep(w.poll.max(Duration::from_secs(1))).await;
            }
        }
    }
}

impl GcpConnector {
    pub(super) async fn run_task(&self, task: SetupTaskRecord) {
        let started = std::time::Instant::now();
        let id = task.id;
        let cp: Checkpoint = match serde_json::from_value(task.input.clone()) {
            Ok(cp) => cp,
            Err(_) => {
                tracing::error!(task = %id, "a GCP setup task's checkpoint does not decode");
                let mut run = TaskRun::detached(self, task);
                run.fail(
                    "the setup task is corrupt; connect the Google account again",
                    false,
                )
                .await;
                return;
            }
        };
        tracing::info!(task = %id, attempt = task.attempts, from_step = cp.completed_step + 1, "GCP setup task claimed");
        let mut run = TaskRun {
            c: self,
            progress: task.progress,
            task,
            cp,
            token: None,
        };
        let max = self.cfg.worker.max_attempts;
        let res = if run.task.attempts > max {
            Err(StepError::permanent(format!(
                "the setup gave up after {max} attempts; last status: {}",
                run.task.status_message
            )))
        } else {
            run.execute().await
        };
        match res {
            Ok(()) => {
                tracing::info!(task = %id, elapsed_ms = started.elapsed().as_millis() as u64, "GCP setup task finished")
            }
            Err(StepError::LeaseLost) => {
                tracing::info!(task = %id, "GCP setup task was taken over or cancelled; this worker stops")
            }
            Err(StepError::Permanent { message, refusal }) => run.fail(&message, refusal).await,
            Err(StepError::Transient {
                message,
                retry_after,
            }) => {
                if run.task.attempts >= max {
                    run.fail(
                        &format!("the setup gave up after {max} attempts: {message}"),
                        false,
                    )
                    .await;
                } else {
                    run.retry_later(&message, retry_after).await;
                }
            }
        }
    }
}

/// One run of one task by this worker.
pub(super) struct TaskRun<'a> {
    pub(super) c: &'a GcpConnector,
    pub(super) task: SetupTaskRecord,
    pub(super) cp: Checkpoint,
    /// The access token of this run and when it expires.
    pub(super) token: Option<(SecretString, DateTime<Utc>)>,
    /// The last progress written.
    pub(super) progress: i32,
}
