//! The store every plugin sees through [`crate::Platform::store`]: the real store, plus word of every
//! change to a connection row, so that the copies replicas keep in process (the rows the credentials
//! route reads, the decrypted credentials) are dropped on every replica when a row changes.
//!
//! The four methods that change what a [`ConnectionRecord`] holds (`upsert_connection`,
//! `update_status`, `update_metadata`, `delete_connection`) call
//! [`CredentialBroker::row_changed`] after the write, whatever its result (a write that failed may
//! still have been applied). Every other method is handed through unchanged: the check, refresh and
//! expiry-warning columns they write are not part of the record.
//!
//! **A new `Store` method must be handed through here too**: a trait default left in place would
//! answer instead of the real store. The gateway's suites run every flow through this wrapper, so a
//! forgotten method shows up there as a feature that does nothing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::broker::CredentialBroker;
use crate::error::StoreError;
use crate::ids::{ConnectionId, CredentialMode, ProviderId, UserId};
use crate::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use crate::store::{
    AuditEvent, CheckClaim, ConnectionRecord, NewConnection, NewSetupTask, OAuthStateRecord,
    RefreshClaim, SetupOutcome, SetupProgress, SetupTaskRecord, StatusUpdate, Store,
};

/// A [`Store`] that reports connection-row changes to the broker (see the module docs).
pub struct InvalidatingStore {
    inner: Arc<dyn Store>,
    broker: Arc<CredentialBroker>,
}

impl InvalidatingStore {
    pub fn new(inner: Arc<dyn Store>, broker: Arc<CredentialBroker>) -> Self {
        Self { inner, broker }
    }
}

#[async_trait]
impl Store for InvalidatingStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn upsert_connection(
        &self,
        new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError> {
        let id = new.id;
        let res = self.inner.upsert_connection(new).await;
        // On a conflict the stored row keeps its own id, which may differ from the one proposed.
        if let Ok((rec, _)) = &res {
            if rec.id != id {
                self.broker.row_changed(rec.id).await;
            }
        }
        self.broker.row_changed(id).await;
        res
    }

    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.get_connection(user, id).await
    }

    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.find_connection(user, provider, account_id).await
    }

    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.list_connections(user, provider).await
    }

    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self.inner.update_status(user, id, update).await;
        self.broker.row_changed(id).await;
        res
    }

    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self
            .inner
            .update_metadata(user, id, metadata, expires_at)
            .await;
        self.broker.row_changed(id).await;
        res
    }

    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        let res = self.inner.delete_connection(user, id).await;
        self.broker.row_changed(id).await;
        res
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.inner.append_audit(event).await
    }

    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.inner.referenced_secrets(refs).await
    }

    async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.inner.append_audit_batch(events).await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        connection: Option<ConnectionId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.list_audit(user, connection, since, limit).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_audit(before).await
    }

    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError> {
        self.inner.put_oauth_state(state).await
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        self.inner.take_oauth_state(state_hash, now).await
    }

    async fn peek_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        self.inner.peek_oauth_state(state_hash, now).await
    }

    async fn pending_without_live_task(
        &self,
        provider: &ProviderId,
        updated_before: DateTime<Utc>,
        after: Option<ConnectionId>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner
            .pending_without_live_task(provider, updated_before, after, limit)
            .await
    }

    async fn get_or_create_external_id(
        &self,
        user: &UserId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        self.inner.get_or_create_external_id(user, candidate).await
    }

    async fn rotate_external_id(&self, user: &UserId, new: &str) -> Result<String, StoreError> {
        self.inner.rotate_external_id(user, new).await
    }

    async fn create_setup_task(&self, task: NewSetupTask) -> Result<SetupTaskRecord, StoreError> {
        self.inner.create_setup_task(task).await
    }

    async fn get_setup_task(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.inner.get_setup_task(user, id).await
    }

    async fn claim_setup_task(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.inner
            .claim_setup_task(provider, worker, now, lease_until)
            .await
    }

    async fn renew_setup_lease(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.renew_setup_lease(id, worker, lease_until).await
    }

    async fn save_setup_progress(
        &self,
        id: uuid::Uuid,
        worker: &str,
        progress: SetupProgress,
    ) -> Result<bool, StoreError> {
        self.inner.save_setup_progress(id, worker, progress).await
    }

    async fn finish_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: SetupOutcome,
    ) -> Result<bool, StoreError> {
        self.inner.finish_setup_task(id, worker, outcome).await
    }

    async fn release_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError> {
        self.inner
            .release_setup_task(id, worker, not_before, status_message)
            .await
    }

    async fn cancel_setup_tasks(
        &self,
        user: &UserId,
        provider: &ProviderId,
        connection: Option<ConnectionId>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.inner
            .cancel_setup_tasks(user, provider, connection, reason)
            .await
    }

    async fn schedule_unscheduled_checks(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.schedule_unscheduled_checks(at).await
    }

    async fn claim_due_checks(
        &self,
        worker: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CheckClaim>, StoreError> {
        self.inner
            .claim_due_checks(worker, due_before, now, lease_until, limit)
            .await
    }

    async fn finish_check(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError> {
        self.inner
            .finish_check(id, worker, next_check_at, failures)
            .await
    }

    async fn record_credential_use(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        used_at: DateTime<Utc>,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.inner
            .record_credential_use(id, mode, used_at, refresh_at)
            .await
    }

    async fn claim_due_refreshes(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        used_since: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RefreshClaim>, StoreError> {
        self.inner
            .claim_due_refreshes(worker, now, used_since, lease_until, limit)
            .await
    }

    async fn finish_refresh(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.inner
            .finish_refresh(id, mode, worker, refresh_at)
            .await
    }

    async fn take_expiry_warnings(
        &self,
        warn_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.take_expiry_warnings(warn_before, limit).await
    }

    async fn prune_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_oauth_states(now).await
    }

    async fn prune_setup_tasks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_setup_tasks(before).await
    }

    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.inner.append_audit_and_outbox(event, outbox).await
    }

    async fn enqueue_webhook(&self, event: NewOutboxEvent) -> Result<(), StoreError> {
        self.inner.enqueue_webhook(event).await
    }

    async fn claim_webhooks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.inner
            .claim_webhooks(worker, now, lease_until, limit)
            .await
    }

    async fn finish_webhook_attempt(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.inner.finish_webhook_attempt(id, worker, outcome).await
    }

    async fn list_webhooks(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.inner.list_webhooks(state, limit).await
    }

    async fn prune_webhooks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_webhooks(before).await
    }
}
