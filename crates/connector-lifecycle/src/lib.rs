//! Connection lifecycle in the background, in every replica at once: scheduled live status checks
//! (`active` ↔ `degraded` → `needs_reconnect`), refresh of credentials used lately ahead of their
//! expiry, expiry warnings for long-lived secrets, and retention of the audit trail.
//!
//! Work is claimed from the relational store under a row lease (`Store::claim_due_checks`,
//! `Store::claim_due_refreshes`), so no connection is checked twice at once and a replica that dies
//! leaves its claims to the others when their leases lapse. Due work is taken oldest first.
//!
//! - **Checks**: every `active`/`degraded` connection is checked through `Platform::validate` one
//!   `AURORA_CHECK_INTERVAL_SECS` (±10 %) after its last check or (re)connect. A passing failure
//!   makes it `degraded` and is retried after an exponential back-off; a refusal makes it
//!   `needs_reconnect` (the credentials are kept) and takes it off the schedule until a reconnect
//!   puts it back; a success makes it `active`.
//! - **Refresh ahead of use**: `Platform::credentials` notes, per connection and mode, when the
//!   handed-out credentials enter the broker's refresh margin; the scheduler fetches fresh ones
//!   through the broker at that moment for credentials used within `AURORA_REFRESH_USED_WITHIN_SECS`,
//!   so callers keep hitting the cache.
//! - **Housekeeping**: an `expiry_warning` audit line once per connection and `expiresAt` value
//!   within `AURORA_EXPIRY_WARNING_DAYS`; audit lines and finished setup tasks older than
//!   `AURORA_AUDIT_RETENTION_DAYS`, and expired OAuth states, are deleted.
//! - **Reconciler** (`reconcile.rs`): secrets that no connection row references (a crash between a
//!   connect's two writes) are deleted after a grace period, and each plugin repairs its own
//!   half-done state; one replica per `AURORA_RECONCILE_INTERVAL_SECS`, under a lease.

mod config;
mod housekeeping;
mod reconcile;
mod scheduler;

use std::collections::BTreeMap;
use std::sync::Arc;

use connector_core::{Connector, Platform, ProviderId};
use tokio::task::JoinHandle;

pub use config::{ConfigError, LifecycleConfig};
pub use housekeeping::{Housekeeping, HousekeepingReport};
pub use reconcile::{ReconcileReport, Reconciler};
pub use scheduler::{refresh_due_at, RefreshReport, Scheduler, SweepReport};

/// The connectors by provider id (the gateway's registry).
pub type Connectors = BTreeMap<ProviderId, Arc<dyn Connector>>;

/// Start the lifecycle jobs of this replica (status checks, refresh ahead of use, housekeeping) on
/// the current runtime, configured from the platform's settings; none when
/// `AURORA_LIFECYCLE_ENABLED=false`. A malformed setting is logged and its default used.
pub fn spawn(platform: &Platform, connectors: &Connectors) -> Vec<JoinHandle<()>> {
    let (cfg, errors) = LifecycleConfig::read(platform.settings());
    for e in &errors {
        tracing::error!(error = %e, "a lifecycle setting is invalid; using its default");
    }
    if !cfg.enabled {
        tracing::info!("lifecycle jobs disabled (AURORA_LIFECYCLE_ENABLED=false)");
        return Vec::new();
    }
    let scheduler = Scheduler::new(platform.clone(), connectors.clone(), cfg.clone());
    let housekeeping = Housekeeping::new(platform.clone(), cfg.clone());
    let reconciler = Reconciler::new(platform.clone(), connectors.clone(), cfg);
    vec![
        tokio::spawn(scheduler.clone().run_checks()),
        tokio::spawn(scheduler.run_refreshes()),
        tokio::spawn(housekeeping.run()),
        tokio::spawn(reconciler.run()),
    ]
}
