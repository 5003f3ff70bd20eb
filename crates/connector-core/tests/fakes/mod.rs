//! In-memory backends and a minting connector for the platform and broker tests: a store whose
//! writes can be made to fail, a versioned secret store with a real check-and-set that records
//! every write, a shared cache that records what it publishes, and a connector that counts (and can
//! hold) its mints.

#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::connector::{AuthKind, ProviderInfo, Validated};
use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use connector_core::store::{AuditEvent, AuditStore, ConnectionStore, StatusUpdate};
use connector_core::{
    Cache, CacheError, ConnectionId, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, NewConnection, ProviderId, SecretPath, SecretStore, SecretStoreError,
    SecretValue, StoreError, Subscription, UserId, VersionedSecret,
};
use parking_lot::Mutex;

pub const PROVIDER: &str = "testmint";

/// Connection rows in a map. With `fail_writes` on, every connection-row write fails before it
/// changes anything.
#[derive(Default)]
pub struct MemStore {
    pub rows: Mutex<HashMap<ConnectionId, ConnectionRecord>>,
    pub fail_writes: AtomicBool,
    pub audit: Mutex<Vec<AuditEvent>>,
}

impl MemStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("writes switched off".into()))
        } else {
            Ok(())
        }
    }

    fn owned(&self, user: &UserId, id: ConnectionId) -> Option<ConnectionRecord> {
        self.rows
            .lock()
            .get(&id)
            .filter(|r| &r.user_id == user)
            .cloned()
    }
}

#[async_trait]
impl ConnectionStore for MemStore {
    fn backend_name(&self) -> &'static str {
        "mem"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn upsert_connection(
        &self,
        new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError> {
        self.check()?;
        let now = Utc::now();
        let mut rows = self.rows.lock();
        let existing = rows
            .values()
            .find(|r| {
                r.user_id == new.user_id
                    && r.provider == new.provider
                    && r.account_id == new.account_id
            })
            .cloned();
        let (id, created_at, secret_ref, created) = match existing {
            Some(r) => (r.id, r.created_at, r.secret_ref, false),
            None => (new.id, now, new.secret_ref, true),
        };
        let rec = ConnectionRecord {
            id,
            user_id: new.user_id,
            provider: new.provider,
            account_id: new.account_id,
            display_name: new.display_name,
            status: new.status,
            status_reason: new.status_reason,
            read_only: new.read_only,
            secret_ref,
            metadata: new.metadata,
            created_at,
            updated_at: now,
            last_validated_at: new.last_validated_at,
            expires_at: new.expires_at,
        };
        rows.insert(id, rec.clone());
        Ok((rec, created))
    }
    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.owned(user, id))
    }
    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self
            .rows
            .lock()
            .values()
            .find(|r| &r.user_id == user && &r.provider == provider && r.account_id == account_id)
            .cloned())
    }
    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        Ok(self
            .rows
            .lock()
            .values()
            .filter(|r| &r.user_id == user && provider.is_none_or(|p| &r.provider == p))
            .cloned()
            .collect())
    }
    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.check()?;
        let mut rows = self.rows.lock();
        let Some(r) = rows.get_mut(&id).filter(|r| &r.user_id == user) else {
            return Ok(None);
        };
        r.status = update.status;
        r.status_reason = update.status_reason;
        if update.last_validated_at.is_some() {
            r.last_validated_at = update.last_validated_at;
        }
        r.updated_at = Utc::now();
        Ok(Some(r.clone()))
    }
    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.check()?;
        let mut rows = self.rows.lock();
        let Some(r) = rows.get_mut(&id).filter(|r| &r.user_id == user) else {
            return Ok(None);
        };
        r.metadata = metadata;
        r.expires_at = expires_at;
        r.updated_at = Utc::now();
        Ok(Some(r.clone()))
    }
    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = self.rows.lock();
        if rows.get(&id).is_some_and(|r| &r.user_id == user) {
            rows.remove(&id);
            return Ok(true);
        }
        Ok(false)
    }
    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows = self.rows.lock();
        Ok(refs
            .iter()
            .filter(|s| rows.values().any(|r| &&r.secret_ref == s))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AuditStore for MemStore {
    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.audit.lock().push(event);
        Ok(())
    }
    async fn list_audit(
        &self,
        _: &UserId,
        _: Option<ConnectionId>,
        _: Option<DateTime<Utc>>,
        _: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(Vec::new())
    }
    async fn prune_audit(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
    // The webhook outbox: this fake has none.
    async fn enqueue_webhook(&self, _: NewOutboxEvent) -> Result<(), StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn claim_webhooks(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn finish_webhook_attempt(
        &self,
        _: uuid::Uuid,
        _: &str,
        _: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn list_webhooks(
        &self,
        _: Option<OutboxState>,
        _: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn prune_webhooks(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Err(no("the webhook outbox"))
    }
}

/// What this fake does not keep.
fn no(what: &str) -> StoreError {
    aurora_testkit::fakes::not_kept(what)
}

aurora_testkit::fake_store_rest!(MemStore);

/// Secrets with versions (1 for the first write, one more per write, again 1 after a delete) and a
/// real check-and-set. Every value ever written at a path is recorded, in order.
#[derive(Default)]
pub struct MemSecrets {
    pub map: Mutex<HashMap<String, (SecretValue, u64)>>,
    pub written: Mutex<Vec<(String, Vec<u8>)>>,
    /// `(path, expected, outcome)` of every check-and-set: `Some(new version)`, or `None` on a
    /// conflict.
    #[allow(clippy::type_complexity)]
    pub cas: Mutex<Vec<(String, u64, Option<u64>)>>,
}

impl MemSecrets {
    pub fn value(&self, path: &SecretPath) -> Option<Vec<u8>> {
        self.map
            .lock()
            .get(path.as_str())
            .map(|(v, _)| v.expose_bytes().to_vec())
    }

    pub fn version(&self, path: &SecretPath) -> Option<u64> {
        self.map.lock().get(path.as_str()).map(|(_, n)| *n)
    }

    /// `(expected, outcome)` of every check-and-set at `path`, in order.
    pub fn cas_at(&self, path: &SecretPath) -> Vec<(u64, Option<u64>)> {
        self.cas
            .lock()
            .iter()
            .filter(|(p, _, _)| p == path.as_str())
            .map(|(_, e, o)| (*e, *o))
            .collect()
    }

    /// Every value written at `path`, in order.
    pub fn history(&self, path: &SecretPath) -> Vec<Vec<u8>> {
        self.written
            .lock()
            .iter()
            .filter(|(p, _)| p == path.as_str())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Write at once (a write of another replica, from a test's hook).
    pub fn put_now(&self, path: &SecretPath, value: &SecretValue) -> u64 {
        let mut map = self.map.lock();
        let version = map.get(path.as_str()).map_or(0, |e| e.1) + 1;
        map.insert(path.as_str().to_owned(), (value.clone(), version));
        self.written
            .lock()
            .push((path.as_str().to_owned(), value.expose_bytes().to_vec()));
        version
    }
}

#[async_trait]
impl SecretStore for MemSecrets {
    fn backend_name(&self) -> &'static str {
        "mem"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        self.put_now(path, value);
        Ok(())
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.map.lock().get(path.as_str()).map(|e| e.0.clone()))
    }
    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        Ok(self
            .map
            .lock()
            .get(path.as_str())
            .map(|(value, version)| VersionedSecret {
                value: value.clone(),
                version: *version,
            }))
    }
    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        // Check and write under one lock of the map.
        let mut map = self.map.lock();
        let current = map.get(path.as_str()).map_or(0, |e| e.1);
        if current != expected {
            self.cas
                .lock()
                .push((path.as_str().to_owned(), expected, None));
            return Err(SecretStoreError::Conflict(format!(
                "version {current}, not {expected}"
            )));
        }
        map.insert(path.as_str().to_owned(), (value.clone(), current + 1));
        drop(map);
        self.written
            .lock()
            .push((path.as_str().to_owned(), value.expose_bytes().to_vec()));
        self.cas
            .lock()
            .push((path.as_str().to_owned(), expected, Some(current + 1)));
        Ok(current + 1)
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        self.map.lock().remove(path.as_str());
        Ok(())
    }
    async fn list(&self, _: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        Ok(Vec::new())
    }
}

/// A shared cache in a map (ttls ignored), without locks (so concurrent refreshes in one process
/// are kept to one call by the broker's own single-flight alone), with publish/subscribe. Every
/// message published is recorded.
#[derive(Default)]
pub struct MemCache {
    pub map: Mutex<HashMap<String, Vec<u8>>>,
    pub published: Mutex<Vec<(String, String)>>,
    subscribers: Mutex<Vec<tokio::sync::mpsc::Sender<Vec<u8>>>>,
}

impl MemCache {
    /// The messages published on `channel`, in order.
    pub fn published_on(&self, channel: &str) -> Vec<String> {
        self.published
            .lock()
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

#[async_trait]
impl Cache for MemCache {
    fn backend_name(&self) -> &'static str {
        "mem"
    }
    fn is_shared(&self) -> bool {
        true
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.map.lock().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), CacheError> {
        self.map.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.map.lock().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let mut map = self.map.lock();
        let before = map.len();
        map.retain(|k, _| !k.starts_with(prefix));
        Ok((before - map.len()) as u64)
    }
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        self.published.lock().push((
            channel.to_owned(),
            String::from_utf8_lossy(message).into_owned(),
        ));
        let subs = self.subscribers.lock().clone();
        for s in subs {
            let _ = s.try_send(message.to_vec());
        }
        Ok(())
    }
    async fn subscribe(&self, _: &str) -> Result<Subscription, CacheError> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        self.subscribers.lock().push(tx);
        Ok(rx)
    }
}

/// Mints `{"token":"<secret>-<n>"}` valid for an hour from the secret it is handed (the n-th
/// call). While `hold` is set, each mint waits until it is cleared. `rotate` makes each mint hand
/// back `<secret>+r` as a rotated secret; `on_mint` runs at the start of every mint (with the
/// call's number), e.g. to change the stored secret behind the mint's back.
#[derive(Default)]
pub struct Minting {
    pub calls: AtomicUsize,
    pub hold: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    pub rotate: AtomicBool,
    #[allow(clippy::type_complexity)]
    pub on_mint: Mutex<Option<Box<dyn Fn(usize) + Send + Sync>>>,
}

impl Minting {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Hold every mint from now on; the returned sender lets them go (`send(false)`).
    pub fn hold(&self) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(true);
        *self.hold.lock() = Some(rx);
        tx
    }
}

#[async_trait]
impl Connector for Minting {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: ProviderId::from_static(PROVIDER),
            display_name: "Minting".into(),
            auth_kind: AuthKind::ApiKey,
            capabilities: vec![],
            open_paths: vec![],
            connect_paths: vec![],
        }
    }
    fn configure(self: Arc<Self>, _: &mut web::ServiceConfig) {}
    async fn validate(
        &self,
        _: &ConnectionRecord,
        _: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        Ok(Validated::default())
    }
    async fn issue_credentials(
        &self,
        _: &ConnectionRecord,
        secret: &SecretValue,
        _: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(f) = self.on_mint.lock().as_ref() {
            f(n);
        }
        let hold = self.hold.lock().clone();
        if let Some(mut rx) = hold {
            let _ = rx.wait_for(|held| !*held).await;
        }
        let seed = String::from_utf8_lossy(secret.expose_bytes()).into_owned();
        Ok(IssuedCredentials {
            credentials: SecretValue::from_bytes(
                format!("{{\"token\":\"{seed}-{n}\"}}").into_bytes(),
            ),
            expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
            updated_secret: self
                .rotate
                .load(Ordering::SeqCst)
                .then(|| SecretValue::from_bytes(format!("{seed}+r").into_bytes())),
        })
    }
}
