//! Housekeeping: expiry warnings (an `expiry_warning` audit line, once per connection and `expiresAt`
//! value, which the webhook outbox turns into an event) and retention (old audit lines, expired OAuth
//! states, old finished setup tasks).
//!
//! A warning is marked in the store before its audit line is written, so replicas never both write it;
//! if that one write fails (it is logged), the warning for that date is lost: at most once, by design.

use chrono::Utc;
use connector_core::{Actor, Platform};

use crate::config::LifecycleConfig;
use crate::scheduler::jitter;

/// Connections warned per store round trip.
const WARN_BATCH: i64 = 200;

/// What one housekeeping run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HousekeepingReport {
    pub expiry_warnings: usize,
    pub audit_pruned: u64,
    pub oauth_states_pruned: u64,
    pub setup_tasks_pruned: u64,
}

/// Expiry warnings and retention for one replica. Every step is safe in several replicas at once: a
/// warning is taken by exactly one of them, and deletes are idempotent.
#[derive(Clone)]
pub struct Housekeeping {
    platform: Platform,
    cfg: LifecycleConfig,
}

impl Housekeeping {
    pub fn new(platform: Platform, cfg: LifecycleConfig) -> Self {
        Self { platform, cfg }
    }

    /// Warn about secrets that end within `expiry_warning`, then prune what is past retention.
    /// A failing step is logged and the next one still runs.
    pub async fn run_once(&self) -> HousekeepingReport {
        let mut r = HousekeepingReport::default();
        let store = self.platform.store();
        let now = Utc::now();
        if !self.cfg.expiry_warning.is_zero() {
            let warn_before =
                now + chrono::Duration::from_std(self.cfg.expiry_warning).unwrap_or_default();
            loop {
                let batch = match store.take_expiry_warnings(warn_before, WARN_BATCH).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not look for expiring secrets");
                        break;
                    }
                };
                for c in &batch {
                    self.platform
                        .audit(
                            &c.user_id,
                            Some(c),
                            connector_core::AuditAction::ExpiryWarning,
                            Actor::System,
                            serde_json::json!({"expiresAt": c.expires_at}),
                        )
                        .await;
                }
                r.expiry_warnings += batch.len();
                if (batch.len() as i64) < WARN_BATCH {
                    break;
                }
            }
        }
        if !self.cfg.audit_retention.is_zero() {
            let before =
                now - chrono::Duration::from_std(self.cfg.audit_retention).unwrap_or_default();
            match store.prune_audit(before).await {
                Ok(n) => r.audit_pruned = n,
                Err(e) => tracing::warn!(error = %e, "could not prune the audit trail"),
            }
            match store.prune_setup_tasks(before).await {
                Ok(n) => r.setup_tasks_pruned = n,
                Err(e) => tracing::warn!(error = %e, "could not prune finished setup tasks"),
            }
        }
        match store.prune_oauth_states(now).await {
            Ok(n) => r.oauth_states_pruned = n,
            Err(e) => tracing::warn!(error = %e, "could not prune expired OAuth states"),
        }
        r
    }

    /// The housekeeping loop of a replica: a first run after a poll, then every
    /// `housekeeping_interval`.
    pub async fn run(self) {
        tokio::time::sleep(jitter(self.cfg.poll)).await;
        loop {
            let r = self.run_once().await;
            if r != HousekeepingReport::default() {
                tracing::info!(
                    expiry_warnings = r.expiry_warnings,
                    audit_pruned = r.audit_pruned,
                    oauth_states_pruned = r.oauth_states_pruned,
                    setup_tasks_pruned = r.setup_tasks_pruned,
                    "housekeeping done"
                );
            }
            tokio::time::sleep(jitter(self.cfg.housekeeping_interval)).await;
        }
    }
}
