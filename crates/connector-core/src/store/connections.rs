//! Connection rows: the records a connect writes and reads, and [`ConnectionStore`].

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

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

/// Connection rows. Every query that names a connection is scoped by its owner: a row of another
/// user behaves exactly like a row that does not exist.
#[async_trait]
pub trait ConnectionStore: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend_name(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Insert a connection, or update the one with the same `(user_id, provider, account_id)`.
    /// Returns the stored row and `true` when it was inserted. An update keeps the row's id and
    /// its `secret_ref` (the caller moves its secret there when the two differ).
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

    /// Of these secret paths, the ones that a connection row (of any user) references as its
    /// `secret_ref`. The reconciler deletes the secrets that no row references.
    async fn referenced_secrets(&self, refs: &[String]) -> Result<HashSet<String>, StoreError>;
}
