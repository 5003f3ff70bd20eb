//! The audit trail and the webhook outbox written in its transaction: [`AuditEvent`] and
//! [`AuditStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::ids::{ConnectionId, ProviderId, UserId};
use crate::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};

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

/// The audit trail, and the webhook outbox (durable, leased; see `crate::outbox`) whose events are
/// enqueued with their audit line.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError>;

    /// Append several events at once (one statement where the store can).
    ///
    /// The default is a genuine composition of [`AuditStore::append_audit`] (one by one), not a
    /// refusal: a store without a batch statement is still correct with it.
    async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        for e in events {
            self.append_audit(e).await?;
        }
        Ok(())
    }

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

    /// Append the audit line and, when given, enqueue its webhook event, in one transaction where
    /// the store has them: the event exists exactly when its audit line does.
    ///
    /// The default is a genuine composition of [`AuditStore::append_audit`] and
    /// [`AuditStore::enqueue_webhook`] (two writes), for stores without transactions.
    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.append_audit(event).await?;
        match outbox {
            Some(o) => self.enqueue_webhook(o).await,
            None => Ok(()),
        }
    }

    /// Insert a `pending` event, due at once. A second event with the same id is a `Conflict`.
    async fn enqueue_webhook(&self, event: NewOutboxEvent) -> Result<(), StoreError>;

    /// Take up to `limit` due events for `worker`, oldest due first: `pending`, `next_attempt_at` at
    /// or before `now`, lease absent or lapsed at `now` (a lapsed lease is taken over). Sets the
    /// lease to `lease_until`, adds one to `attempts`, stamps `last_attempt_at`. Of concurrent
    /// claimers each event goes to exactly one.
    async fn claim_webhooks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError>;

    /// End one attempt as the lease holder (see `DeliveryOutcome`) and drop the lease; `false`
    /// (nothing written) when `worker` no longer holds the lease of a pending event.
    async fn finish_webhook_attempt(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError>;

    /// Events for inspection, oldest first, optionally in one state, at most `limit`.
    async fn list_webhooks(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError>;

    /// Delete `delivered` events delivered before `before`; returns how many. Failed events stay.
    async fn prune_webhooks(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
