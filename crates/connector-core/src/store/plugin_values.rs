//! Small named values a provider plugin keeps per user (AWS keeps the handle of its external ID
//! here): [`PluginValueStore`]. The core gives them no meaning.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::{ProviderId, UserId};

/// One value per `(provider, user, name)`, created once and replaced on demand. A value is never
/// a secret (a plugin keeps secrets in the secret store and a handle to them here).
#[async_trait]
pub trait PluginValueStore: Send + Sync + 'static {
    /// The stored value of `(provider, user, name)`, or `candidate` stored as it when there is none.
    /// Of concurrent callers exactly one stores its candidate; all get the same value back.
    async fn get_or_create_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError>;

    /// Replace the value of `(provider, user, name)` with `new` (creating it if absent); returns
    /// `new`.
    async fn replace_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        new: &str,
    ) -> Result<String, StoreError>;
}
