//! Store traits for in-memory fakes that keep only connections and the audit trail: a fake writes
//! `ConnectionStore` and `AuditStore` itself and gets the other concerns from
//! [`fake_store_rest!`](crate::fake_store_rest), each answering as a store with nothing of it (no
//! OAuth state kept, plugin values echoed, no lifecycle work due, setup tasks refused).

use connector_core::StoreError;

/// The error of what a fake store does not keep.
pub fn not_kept(what: &str) -> StoreError {
    StoreError::Other(format!("{what} is not kept by this fake store"))
}

/// What the code of [`fake_store_rest!`](crate::fake_store_rest) names.
#[doc(hidden)]
pub mod __prelude {
    pub use super::not_kept;
    pub use chrono::{DateTime, Utc};
    pub use connector_core::async_trait;
    pub use connector_core::store::{
        CheckClaim, CheckStore, ConnectionRecord, NewSetupTask, OAuthStateRecord, OAuthStateStore,
        PluginValueStore, RefreshClaim, SetupOutcome, SetupProgress, SetupTaskRecord,
        SetupTaskStore,
    };
    pub use connector_core::{ConnectionId, CredentialMode, ProviderId, StoreError, UserId};
    pub use uuid;
}

/// Implements `OAuthStateStore`, `PluginValueStore`, `CheckStore` and `SetupTaskStore` for the fake
/// store `$ty`: states are accepted and never found, a plugin value is its candidate (or its new
/// value), nothing is ever due, setup-task writes and reads are refused and none is pending.
#[macro_export]
macro_rules! fake_store_rest {
    ($ty:ty) => {
        const _: () = {
            use $crate::fakes::__prelude::*;

            #[async_trait]
            impl OAuthStateStore for $ty {
                async fn put_oauth_state(&self, _: OAuthStateRecord) -> Result<(), StoreError> {
                    Ok(())
                }
                async fn take_oauth_state(
                    &self,
                    _: &str,
                    _: DateTime<Utc>,
                ) -> Result<Option<OAuthStateRecord>, StoreError> {
                    Ok(None)
                }
                async fn peek_oauth_state(
                    &self,
                    _: &str,
                    _: DateTime<Utc>,
                ) -> Result<Option<OAuthStateRecord>, StoreError> {
                    Err(not_kept("reading an OAuth state without taking it"))
                }
                async fn prune_oauth_states(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
                    Ok(0)
                }
            }

            /// Plugin values are not kept: the candidate (or the new value) is what comes back.
            #[async_trait]
            impl PluginValueStore for $ty {
                async fn get_or_create_plugin_value(
                    &self,
                    _: &ProviderId,
                    _: &UserId,
                    _: &str,
                    candidate: &str,
                ) -> Result<String, StoreError> {
                    Ok(candidate.to_owned())
                }
                async fn replace_plugin_value(
                    &self,
                    _: &ProviderId,
                    _: &UserId,
                    _: &str,
                    new: &str,
                ) -> Result<String, StoreError> {
                    Ok(new.to_owned())
                }
            }

            /// No lifecycle: nothing is ever due.
            #[async_trait]
            impl CheckStore for $ty {
                async fn schedule_unscheduled_checks(
                    &self,
                    _: DateTime<Utc>,
                ) -> Result<u64, StoreError> {
                    Ok(0)
                }
                async fn claim_due_checks(
                    &self,
                    _: &str,
                    _: DateTime<Utc>,
                    _: DateTime<Utc>,
                    _: DateTime<Utc>,
                    _: i64,
                ) -> Result<Vec<CheckClaim>, StoreError> {
                    Ok(Vec::new())
                }
                async fn finish_check(
                    &self,
                    _: ConnectionId,
                    _: &str,
                    _: DateTime<Utc>,
                    _: i32,
                ) -> Result<bool, StoreError> {
                    Ok(false)
                }
                async fn record_credential_use(
                    &self,
                    _: ConnectionId,
                    _: CredentialMode,
                    _: DateTime<Utc>,
                    _: Option<DateTime<Utc>>,
                ) -> Result<(), StoreError> {
                    Ok(())
                }
                async fn claim_due_refreshes(
                    &self,
                    _: &str,
                    _: DateTime<Utc>,
                    _: DateTime<Utc>,
                    _: DateTime<Utc>,
                    _: i64,
                ) -> Result<Vec<RefreshClaim>, StoreError> {
                    Ok(Vec::new())
                }
                async fn finish_refresh(
                    &self,
                    _: ConnectionId,
                    _: CredentialMode,
                    _: &str,
                    _: Option<DateTime<Utc>>,
                ) -> Result<bool, StoreError> {
                    Ok(false)
                }
                async fn take_expiry_warnings(
                    &self,
                    _: DateTime<Utc>,
                    _: i64,
                ) -> Result<Vec<ConnectionRecord>, StoreError> {
                    Ok(Vec::new())
                }
            }

            /// No setup tasks: writes are refused, nothing is pending.
            #[async_trait]
            impl SetupTaskStore for $ty {
                async fn create_setup_task(
                    &self,
                    _: NewSetupTask,
                ) -> Result<SetupTaskRecord, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn get_setup_task(
                    &self,
                    _: &UserId,
                    _: uuid::Uuid,
                ) -> Result<Option<SetupTaskRecord>, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn claim_setup_task(
                    &self,
                    _: &ProviderId,
                    _: &str,
                    _: DateTime<Utc>,
                    _: DateTime<Utc>,
                ) -> Result<Option<SetupTaskRecord>, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn renew_setup_lease(
                    &self,
                    _: uuid::Uuid,
                    _: &str,
                    _: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn save_setup_progress(
                    &self,
                    _: uuid::Uuid,
                    _: &str,
                    _: SetupProgress,
                ) -> Result<bool, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn finish_setup_task(
                    &self,
                    _: uuid::Uuid,
                    _: &str,
                    _: SetupOutcome,
                ) -> Result<bool, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn release_setup_task(
                    &self,
                    _: uuid::Uuid,
                    _: &str,
                    _: DateTime<Utc>,
                    _: &str,
                ) -> Result<bool, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn cancel_setup_tasks(
                    &self,
                    _: &UserId,
                    _: &ProviderId,
                    _: Option<ConnectionId>,
                    _: &str,
                ) -> Result<u64, StoreError> {
                    Err(not_kept("a setup task"))
                }
                async fn pending_without_live_task(
                    &self,
                    _: &ProviderId,
                    _: DateTime<Utc>,
                    _: Option<ConnectionId>,
                    _: i64,
                ) -> Result<Vec<ConnectionRecord>, StoreError> {
                    Ok(Vec::new())
                }
                async fn prune_setup_tasks(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
                    Ok(0)
                }
            }
        };
    };
}
