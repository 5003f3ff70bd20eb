//! The relational store trait and its records: connections, audit events, OAuth states, external IDs.
//!
//! Implementations live in `connector-store` (PostgreSQL and the embedded SQLite). The contract of each
//! method is written here and checked by the conformance suite in that crate, against both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};

/// A connection row. It holds a *reference* into the secret store, never a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub provider: ProviderId,
    /// The provider-side account: AWS account number, Google e-mail, Azure subscription id,
    /// Scaleway organization id, Tailscale tailnet.
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub read_only: bool,
    /// Path of the connection's secret in the secret store (relative to the store's root).
    pub secret_ref: String,
    /// Non-secret, provider-specific metadata (project ids, regions, role ARNs, …).
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a connect writes. On `(user_id, provider, account_id)` conflict the existing row is updated
/// (its `id` and `created_at` are kept) with every other field of this value.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub provider: ProviderId,
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub read_only: bool,
    pub secret_ref: String,
    pub metadata: serde_json::Value,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A status change after a live check.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub last_validated_at: Option<DateTime<Utc>>,
}

/// One line of the audit trail. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub provider: Option<ProviderId>,
    /// `connect`, `reconnect`, `disconnect`, `credentials_issued`, `status_changed`, `rotate`, …
    pub action: String,
    /// Who asked: `user` for the owner through the frontend, `internal` for a trusted service, `system`.
    pub actor: String,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

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

/// The relational store. Every query that names a connection is scoped by its owner: a row of another
/// user behaves exactly like a row that does not exist.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend_name(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Insert a connection, or update the one with the same `(user_id, provider, account_id)`.
    /// Returns the stored row and `true` when it was inserted.
    async fn upsert_connection(
        &self,
        new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError>;

    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// The user's connections, oldest first, optionally of one provider.
    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Set status, reason and (when given) `last_validated_at`; bumps `updated_at`.
    /// `None` when no such connection of that user exists.
    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Replace metadata and `expires_at`; bumps `updated_at`.
    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// `true` when a row was deleted.
    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError>;

    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError>;

    /// The user's audit events, newest first, at most `limit`.
    async fn list_audit(
        &self,
        user: &UserId,
        connection: Option<ConnectionId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Delete audit events older than `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError>;

    /// Remove and return the state with this hash if it exists and has not expired at `now`.
    /// Single use: a second call with the same hash returns `None`, also under concurrency.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError>;

    /// The user's external ID (AWS): returns the stored one, or stores `candidate` if there is none.
    async fn get_or_create_external_id(
        &self,
        user: &UserId,
        candidate: &str,
    ) -> Result<String, StoreError>;

    /// Replace the user's external ID with `new` (creating it if absent); returns `new`.
    async fn rotate_external_id(&self, user: &UserId, new: &str) -> Result<String, StoreError>;
}
