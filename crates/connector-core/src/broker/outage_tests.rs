//! Unit tests of the broker with the shared cache unavailable: pinned copies, checked against the
//! secret store.

use super::*;

use std::sync::atomic::AtomicUsize;

use actix_web::web;
use async_trait::async_trait;

use crate::connector::{AuthKind, ProviderInfo, Validated};
use crate::error::{CacheError, ConnectorError};
use crate::ids::{ConnectionStatus, ProviderId, UserId};

/// A shared cache that can be switched off (every call then answers `Unavailable`).
#[derive(Default)]
struct SwitchCache {
    map: Mutex<HashMap<String, Vec<u8>>>,
    down: AtomicBool,
}

impl SwitchCache {
    fn check(&self) -> Result<(), CacheError> {
        if self.down.load(Ordering::SeqCst) {
            Err(CacheError::Unavailable("switched off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for SwitchCache {
    fn backend_name(&self) -> &'static str {
        "switch"
    }
    fn is_shared(&self) -> bool {
        true
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.check()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.check()?;
        Ok(self.map.lock().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), CacheError> {
        self.check()?;
        self.map.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.check()?;
        self.map.lock().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, CacheError> {
        self.check()?;
        Ok(0)
    }
}

/// Secrets with versions (one more per write); counts versioned reads.
#[derive(Default)]
struct Versioned {
    map: Mutex<HashMap<String, (SecretValue, u64)>>,
    reads: AtomicUsize,
}

#[async_trait]
impl SecretStore for Versioned {
    fn backend_name(&self) -> &'static str {
        "versioned"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        let mut map = self.map.lock();
        let version = map.get(path.as_str()).map_or(0, |e| e.1) + 1;
        map.insert(path.as_str().to_owned(), (value.clone(), version));
        Ok(())
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.map.lock().get(path.as_str()).map(|e| e.0.clone()))
    }
    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .map
            .lock()
            .get(path.as_str())
            .map(|(value, version)| VersionedSecret {
                value: value.clone(),
                version: *version,
            }))
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        self.map.lock().remove(path.as_str());
        Ok(())
    }
    async fn list(&self, _: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        Ok(Vec::new())
    }
}

/// Issues `{"token": "<secret>-<n>"}` valid for an hour; counts its calls.
#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
}

#[async_trait]
impl Connector for Counting {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: ProviderId::from_static("testcounting"),
            display_name: "Test".into(),
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
        let seed = String::from_utf8_lossy(secret.expose_bytes()).into_owned();
        Ok(IssuedCredentials {
            credentials: SecretValue::from_bytes(
                format!("{{\"token\":\"{seed}-{n}\"}}").into_bytes(),
            ),
            expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
            updated_secret: None,
        })
    }
}

struct World {
    broker: Arc<CredentialBroker>,
    cache: Arc<SwitchCache>,
    secrets: Arc<Versioned>,
    connector: Arc<Counting>,
    metrics: Arc<Metrics>,
    conn: ConnectionRecord,
    path: SecretPath,
}

async fn world() -> World {
    let cache = Arc::new(SwitchCache::default());
    let secrets = Arc::new(Versioned::default());
    let metrics = Arc::new(Metrics::new());
    let broker = Arc::new(CredentialBroker::new(
        cache.clone(),
        secrets.clone(),
        SealingKey::generate(),
        metrics.clone(),
    ));
    let user = UserId::parse("user-1").unwrap();
    let provider = ProviderId::from_static("testcounting");
    let id = ConnectionId::new();
    let path = SecretPath::connection(&user, &provider, id);
    secrets
        .put(&path, &SecretValue::from_bytes(b"s1".to_vec()))
        .await
        .unwrap();
    let now = Utc::now();
    let conn = ConnectionRecord {
        id,
        user_id: user,
        provider,
        account_id: "acct".into(),
        display_name: None,
        status: ConnectionStatus::Active,
        status_reason: None,
        read_only: false,
        secret_ref: path.as_str().to_owned(),
        metadata: serde_json::json!({}),
        created_at: now,
        updated_at: now,
        last_validated_at: None,
        expires_at: None,
    };
    World {
        broker,
        cache,
        secrets,
        connector: Arc::new(Counting::default()),
        metrics,
        conn,
        path,
    }
}

impl World {
    async fn get(&self) -> Result<String, ApiError> {
        let c = self
            .broker
            .get(self.connector.clone(), &self.conn, CredentialMode::Full)
            .await?;
        Ok(String::from_utf8_lossy(c.credentials.expose_bytes()).into_owned())
    }

    fn calls(&self) -> usize {
        self.connector.calls.load(Ordering::SeqCst)
    }

    fn lookups(&self, result: &str) -> u64 {
        self.metrics
            .cache_lookups
            .with_label_values(&[result])
            .get()
    }
}

#[tokio::test]
async fn warm_requests_need_no_provider_call_while_the_cache_is_down() {
    let w = world().await;
    w.cache.down.store(true, Ordering::SeqCst);
    let first = w.get().await.unwrap();
    assert_eq!(first, r#"{"token":"s1-1"}"#);
    for _ in 0..20 {
        assert_eq!(w.get().await.unwrap(), first);
    }
    assert_eq!(w.calls(), 1, "one provider call, then the pinned copy");
    // 21 requests, and the refresh's own look before its provider call.
    assert_eq!(w.lookups("error"), 22);
    assert_eq!(w.lookups("pinned"), 20);
    // Each pinned answer read the secret's version.
    assert!(w.secrets.reads.load(Ordering::SeqCst) >= 20);
}

#[tokio::test]
async fn a_replaced_or_deleted_secret_is_seen_by_the_next_request() {
    let w = world().await;
    w.cache.down.store(true, Ordering::SeqCst);
    assert_eq!(w.get().await.unwrap(), r#"{"token":"s1-1"}"#);
    // A reconnect on another replica writes a new secret (its invalidation is lost with Redis).
    w.secrets
        .put(&w.path, &SecretValue::from_bytes(b"s2".to_vec()))
        .await
        .unwrap();
    assert_eq!(w.get().await.unwrap(), r#"{"token":"s2-2"}"#);
    assert_eq!(w.get().await.unwrap(), r#"{"token":"s2-2"}"#);
    assert_eq!(w.calls(), 2);
    // A disconnect on another replica deletes it.
    w.secrets.delete(&w.path).await.unwrap();
    let e = w.get().await.unwrap_err();
    assert_eq!(e.status, actix_web::http::StatusCode::CONFLICT);
    assert_eq!(e.code, "needs_reconnect");
    assert!(w.broker.local.pinned.lock().is_empty());
}

#[tokio::test]
async fn pinned_copies_go_when_the_cache_answers_again_or_on_eviction() {
    let w = world().await;
    w.cache.down.store(true, Ordering::SeqCst);
    w.get().await.unwrap();
    w.broker.evict(w.conn.id).await;
    assert!(w.broker.local.pinned.lock().is_empty(), "evicted");
    w.get().await.unwrap();
    assert_eq!(w.calls(), 2);
    assert!(!w.broker.local.pinned.lock().is_empty());
    w.cache.down.store(false, Ordering::SeqCst);
    // Back: a miss (nothing was cached meanwhile), one refresh, then cache hits.
    assert_eq!(w.get().await.unwrap(), r#"{"token":"s1-3"}"#);
    assert!(w.broker.local.pinned.lock().is_empty(), "cleared");
    assert_eq!(w.get().await.unwrap(), r#"{"token":"s1-3"}"#);
    assert_eq!(w.calls(), 3);
    assert_eq!(w.lookups("hit"), 1);
    // With the cache up, credentials it keeps are not pinned.
    assert!(w.broker.local.pinned.lock().is_empty());
}
