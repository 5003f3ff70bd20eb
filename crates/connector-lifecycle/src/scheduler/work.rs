//! The work of one claim: a status check with its back-off, or a refresh of cached credentials.

use super::*;

impl Inner {
    pub(super) fn backoff(&self, failures: i32) -> Duration {
        let exp = failures.clamp(1, 30) as u32 - 1;
        let d = self
            .cfg
            .backoff_base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.cfg.backoff_max);
        jitter(d)
    }

    /// Check one claimed connection live through [`Platform::validate`] (which records the status,
    /// the reason and `lastValidatedAt`, and audits a change), then schedule its next check.
    /// Returns the outcome and whether the lease was still ours at the end.
    pub(super) async fn check(&self, claim: CheckClaim) -> (CheckOutcome, bool) {
        let conn = claim.connection;
        let (outcome, failures) = match self.connectors.get(&conn.provider) {
            None => {
                tracing::debug!(connection = %conn.id, provider = %conn.provider, "no connector for a scheduled check");
                (CheckOutcome::Skipped, claim.failures)
            }
            Some(connector) => {
                // The permit covers the provider call only: the secret read before it and the
                // status writes after it overlap with other checks' calls.
                let run = self.platform.validate_gated(
                    connector.as_ref(),
                    &conn,
                    Actor::System,
                    Some(&self.permits),
                );
                match tokio::time::timeout(self.cfg.lease / 2, run).await {
                    Ok(Ok(updated)) => match updated.status {
                        ConnectionStatus::Active => (CheckOutcome::Active, 0),
                        ConnectionStatus::Degraded => {
                            (CheckOutcome::Degraded, claim.failures.saturating_add(1))
                        }
                        ConnectionStatus::NeedsReconnect => (CheckOutcome::NeedsReconnect, 0),
                        ConnectionStatus::Pending => (CheckOutcome::Skipped, 0),
                    },
                    Ok(Err(e)) => {
                        tracing::warn!(connection = %conn.id, error = %e, "a scheduled check could not run");
                        (CheckOutcome::Error, claim.failures.saturating_add(1))
                    }
                    Err(_) => {
                        tracing::warn!(connection = %conn.id, "a scheduled check timed out");
                        (CheckOutcome::Error, claim.failures.saturating_add(1))
                    }
                }
            }
        };
        let wait = match outcome {
            CheckOutcome::Degraded | CheckOutcome::Error => self.backoff(failures),
            _ => jitter(self.cfg.check_interval),
        };
        let next = Utc::now() + chrono(wait);
        let held = match self
            .platform
            .store()
            .finish_check(conn.id, &self.worker, next, failures)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                // The lease lapses and another sweep checks it again.
                tracing::warn!(connection = %conn.id, error = %e, "could not schedule the next check");
                true
            }
        };
        (outcome, held)
    }

    /// Refresh one claimed credential through the broker (single-flight, cached for every caller),
    /// then note when the fresh credentials are due in turn.
    pub(super) async fn refresh(&self, claim: RefreshClaim) -> RefreshOutcome {
        let conn = &claim.connection;
        let usable = matches!(
            conn.status,
            ConnectionStatus::Active | ConnectionStatus::Degraded
        );
        let (outcome, next) = match self.connectors.get(&conn.provider) {
            Some(connector) if usable => {
                // The broker may call the provider: the whole refresh holds a permit.
                let permits = self.permits.clone();
                let get = async {
                    let _permit = permits.acquire_owned().await;
                    self.platform
                        .broker()
                        .get(connector.clone(), conn, claim.mode)
                        .await
                };
                match tokio::time::timeout(self.cfg.lease / 2, get).await {
                    Ok(Ok(creds)) => {
                        tracing::debug!(connection = %conn.id, mode = claim.mode.as_str(), "credentials refreshed ahead of use");
                        (
                            RefreshOutcome::Refreshed,
                            refresh_due_at(creds.expires_at, Utc::now()),
                        )
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(connection = %conn.id, error = %e, "a refresh ahead of use failed");
                        let retry = Utc::now() + chrono(jitter(self.cfg.backoff_base));
                        (RefreshOutcome::Failed, Some(retry))
                    }
                    Err(_) => {
                        tracing::warn!(connection = %conn.id, "a refresh ahead of use timed out");
                        let retry = Utc::now() + chrono(jitter(self.cfg.backoff_base));
                        (RefreshOutcome::Failed, Some(retry))
                    }
                }
            }
            _ => (RefreshOutcome::Skipped, None),
        };
        if let Err(e) = self
            .platform
            .store()
            .finish_refresh(conn.id, claim.mode, &self.worker, next)
            .await
        {
            tracing::warn!(connection = %conn.id, error = %e, "could not record a refresh ahead of use");
        }
        outcome
    }
}
