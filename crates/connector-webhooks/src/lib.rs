//! Signed webhooks of Aurora Connectors, delivered from a durable outbox.
//!
//! - [`config`]: `AURORA_WEBHOOK_URL` and `AURORA_WEBHOOK_SECRET` (both or neither) and the retry and
//!   worker settings; the gateway validates them at start-up and refuses an incomplete pair.
//! - [`signature`]: `X-Aurora-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! - [`worker`]: the delivery worker every replica runs ([`spawn`]).
//!
//! Events are *enqueued* by `connector_core::Platform::audit` (see `connector_core::outbox`), in the
//! transaction of their audit line; this crate only delivers them. See `docs/webhooks.md`.

pub mod config;
pub mod signature;
pub mod worker;

use std::sync::Arc;

use connector_core::Platform;
use tokio::task::JoinHandle;

pub use config::WebhookConfig;
pub use connector_core::outbox::{
    CONNECTION_CREATED, CONNECTION_DISCONNECTED, CONNECTION_EXPIRING, CONNECTION_STATUS_CHANGED,
    EVENT_TYPES,
};
pub use signature::{sign, verify, VerifyError};

/// Start the delivery worker when webhooks are configured (`None` otherwise). A configuration error
/// is logged and starts nothing; the gateway refuses such a configuration before it gets here.
pub fn spawn(platform: &Platform) -> Option<JoinHandle<()>> {
    match WebhookConfig::from_settings(platform.settings()) {
        Ok(Some(cfg)) => Some(tokio::spawn(worker::run(platform.clone(), Arc::new(cfg)))),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "webhooks are misconfigured; no delivery worker");
            None
        }
    }
}
