//! The relational store, one trait per concern: connections, the audit trail with its webhook
//! outbox, lifecycle checks under leases, OAuth states, setup tasks, and plugin values. [`Store`]
//! is all of them at once (what `Arc<dyn Store>` holds).
//!
//! Implementations live in `connector-store` (PostgreSQL and the embedded SQLite). The contract of each
//! method is written here and checked by the conformance suite in that crate, against both.
//! Callers bring the traits in scope with `use connector_core::store::prelude::*`.

mod audit;
mod checks;
mod connections;
mod oauth;
mod plugin_values;
mod setup_state;
mod setup_tasks;

pub use audit::{AuditEvent, AuditStore};
pub use checks::{CheckClaim, CheckStore, RefreshClaim};
pub use connections::{ConnectionRecord, ConnectionStore, NewConnection, StatusUpdate};
pub use oauth::{OAuthStateRecord, OAuthStateStore};
pub use plugin_values::PluginValueStore;
pub use setup_state::SetupState;
pub use setup_tasks::{NewSetupTask, SetupOutcome, SetupProgress, SetupTaskRecord, SetupTaskStore};

/// Every store trait, so their methods can be called on an `Arc<dyn Store>`.
pub mod prelude {
    pub use super::{
        AuditStore, CheckStore, ConnectionStore, OAuthStateStore, PluginValueStore, SetupTaskStore,
        Store,
    };
}

/// The whole relational store: every concern's trait. Implemented for any type implementing them
/// all, so an implementation writes the six traits and nothing else.
pub trait Store:
    ConnectionStore + AuditStore + CheckStore + OAuthStateStore + SetupTaskStore + PluginValueStore
{
}

impl<T> Store for T where
    T: ConnectionStore
        + AuditStore
        + CheckStore
        + OAuthStateStore
        + SetupTaskStore
        + PluginValueStore
        + ?Sized
{
}
