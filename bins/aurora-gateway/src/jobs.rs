//! The gateway's own background jobs (beside each plugin's `spawn_background`), started once at start-up
//! and aborted at shutdown. Every job is safe to run in several replicas at once.

use tokio::task::JoinHandle;

use connector_core::Platform;

use crate::config::GatewayConfig;
use crate::registry::Connectors;

/// Start every background job: the plugins' own, then the gateway's.
pub fn spawn(
    platform: &Platform,
    connectors: &Connectors,
    cfg: &GatewayConfig,
) -> Vec<JoinHandle<()>> {
    let _ = (platform, cfg);
    let tasks: Vec<JoinHandle<()>> = connectors
        .values()
        .flat_map(|c| c.clone().spawn_background())
        .chain(connector_webhooks::spawn(platform))
        .chain(connector_lifecycle::spawn(platform, connectors))
        .chain([platform
            .broker()
            .spawn_invalidation_listener(cfg.credentials_local_ttl)])
        .collect();
    tasks
}
