//! Pending OAuth authorizations: [`OAuthStateRecord`] and [`OAuthStateStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::ids::{ProviderId, UserId};

/// A pending OAuth authorization (GCP login): looked up by the hash of `state`, used once.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthStateRecord {
    /// SHA-256 (hex) of the `state` value; the raw value is never stored.
    pub state_hash: String,
    pub user_id: UserId,
    pub provider: ProviderId,
    /// The PKCE verifier, sealed by the caller; opaque to the store.
    pub sealed_verifier: Vec<u8>,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Pending OAuth states, each used once.
#[async_trait]
pub trait OAuthStateStore: Send + Sync + 'static {
    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError>;

    /// Remove and return the state with this hash if it exists and has not expired at `now`.
    /// Single use: a second call with the same hash returns `None`, also under concurrency.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError>;

    /// Read, without taking it, the state with this hash if it exists and has not expired at `now`
    /// (the GCP callback checks the browser binding before it uses the state up).
    async fn peek_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError>;

    /// Delete the OAuth states that expired at or before `now`; returns how many.
    async fn prune_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
