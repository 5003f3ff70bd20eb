//! The reconciler: repairs what a crash or a race can leave behind, on one replica at a time.
//!
//! - **Orphaned secrets.** A connect writes its secret before its row; a process killed in between
//!   (or a connect that lost a race and could not delete its copy) leaves a secret that no row
//!   references. Every sweep lists the connection secrets (`users/<user>/<provider>/<uuid>`), asks
//!   the store which of them a row references, and deletes the others once they are older than
//!   `AURORA_RECONCILE_GRACE_SECS` (a connect in flight is younger than that). Each deletion is
//!   logged (the path names no secret) and counted in `aurora_reconciler_repairs_total`.
//! - **Plugins' own state** through [`connector_core::Connector::reconcile`] (for example a GCP
//!   connection left `pending` without its setup task).
//!
//! Replicas take turns through a lease in the shared cache (`Cache::try_lock` on
//! `reconcile:lease`, held for one interval and left to expire), so one sweep runs per interval
//! across replicas. Without a shared lock (the cache answers `Unavailable`) a replica sweeps on
//! its own: every step is idempotent.

use chrono::Utc;
use connector_core::{Platform, SecretPath};

use crate::config::LifecycleConfig;
use crate::scheduler::jitter;
use crate::Connectors;

/// Secrets checked against the store per round trip.
const BATCH: usize = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Connection secrets seen.
    pub secrets_scanned: usize,
    /// Secrets without a row, deleted.
    pub orphans_deleted: usize,
    /// Secrets without a row but inside the grace period, left for a later sweep.
    pub orphans_young: usize,
    /// Repairs the plugins reported.
    pub plugin_repairs: u64,
}

/// A step of the sweep failed.
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Secrets(#[from] connector_core::SecretStoreError),
    #[error(transparent)]
    Store(#[from] connector_core::StoreError),
}

/// One replica's reconciler.
#[derive(Clone)]
pub struct Reconciler {
    platform: Platform,
    connectors: Connectors,
    cfg: LifecycleConfig,
}

impl Reconciler {
    pub fn new(platform: Platform, connectors: Connectors, cfg: LifecycleConfig) -> Self {
        Self {
            platform,
            connectors,
            cfg,
        }
    }

    /// One sweep, whoever holds the lease. A failing step is logged and the next one still runs.
    pub async fn run_once(&self) -> ReconcileReport {
        let mut r = ReconcileReport::default();
        if let Err(e) = self.orphaned_secrets(&mut r).await {
            tracing::warn!(error = %e, "reconciler: could not look for orphaned secrets");
        }
        for (id, c) in &self.connectors {
            match c.reconcile().await {
                Ok(n) => {
                    r.plugin_repairs += n;
                    if n > 0 {
                        self.platform
                            .metrics()
                            .reconciler_repairs
                            .with_label_values(&["plugin"])
                            .inc_by(n);
                    }
                }
                Err(e) => {
                    tracing::warn!(provider = %id, error = %e, "reconciler: a plugin's repair failed")
                }
            }
        }
        r
    }

    async fn orphaned_secrets(&self, r: &mut ReconcileReport) -> Result<(), SweepError> {
        let secrets = self.platform.secrets();
        let paths: Vec<SecretPath> = secrets
            .scan(&SecretPath::users_root())
            .await?
            .into_iter()
            .filter(|p| p.connection_id().is_some())
            .collect();
        r.secrets_scanned = paths.len();
        let grace = chrono::Duration::from_std(self.cfg.reconcile_grace).unwrap_or_default();
        for chunk in paths.chunks(BATCH) {
            let refs: Vec<String> = chunk.iter().map(|p| p.as_str().to_owned()).collect();
            let referenced = self.platform.store().referenced_secrets(&refs).await?;
            for path in chunk.iter().filter(|p| !referenced.contains(p.as_str())) {
                // Young (or of unknown age): a connect may be between its two writes.
                let old_enough = match secrets.written_at(path).await? {
                    Some(t) => Utc::now() - t >= grace,
                    None => false,
                };
                if !old_enough {
                    r.orphans_young += 1;
                    continue;
                }
                // Asked again right before the delete: a row may have been written since.
                let again = self
                    .platform
                    .store()
                    .referenced_secrets(std::slice::from_ref(&path.as_str().to_owned()))
                    .await?;
                if !again.is_empty() {
                    continue;
                }
                secrets.delete(path).await?;
                r.orphans_deleted += 1;
                self.platform
                    .metrics()
                    .reconciler_repairs
                    .with_label_values(&["orphaned_secret"])
                    .inc();
                tracing::warn!(path = %path, "reconciler: deleted a secret that no connection references");
            }
        }
        Ok(())
    }

    /// The reconciler loop of a replica: a first sweep after a poll, then one per
    /// `reconcile_interval` across all replicas (whoever takes the lease).
    pub async fn run(self) {
        tokio::time::sleep(jitter(self.cfg.poll)).await;
        loop {
            let lease = self
                .platform
                .cache()
                .try_lock("reconcile:lease", self.cfg.reconcile_interval)
                .await;
            // Taken: sweep, and leave the lease to run out (one sweep per interval). Held by
            // another replica: skip. No shared locks: sweep here (idempotent).
            if !matches!(lease, Ok(None)) {
                let r = self.run_once().await;
                if r.orphans_deleted > 0 || r.plugin_repairs > 0 || r.orphans_young > 0 {
                    tracing::info!(
                        secrets_scanned = r.secrets_scanned,
                        orphans_deleted = r.orphans_deleted,
                        orphans_young = r.orphans_young,
                        plugin_repairs = r.plugin_repairs,
                        "reconciler sweep done"
                    );
                }
            }
            tokio::time::sleep(jitter(self.cfg.reconcile_interval)).await;
        }
    }
}
