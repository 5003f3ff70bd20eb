//! Unit tests of the broker: cache entry key ids and undecryptable entries.

use super::*;

use async_trait::async_trait;

use crate::error::CacheError;
use crate::secrets::SecretPath;

/// A shared cache in a map (ttl ignored).
#[derive(Default)]
struct MapCache(Mutex<HashMap<String, Vec<u8>>>);

#[async_trait]
impl Cache for MapCache {
    fn backend_name(&self) -> &'static str {
        "map"
    }
    fn is_shared(&self) -> bool {
        true
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.0.lock().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), CacheError> {
        self.0.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.0.lock().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, CacheError> {
        Ok(0)
    }
}

/// The broker under test never reaches the secret store here.
struct NoSecrets;

#[async_trait]
impl SecretStore for NoSecrets {
    fn backend_name(&self) -> &'static str {
        "none"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, _: &SecretPath, _: &SecretValue) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn get(&self, _: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(None)
    }
    async fn delete(&self, _: &SecretPath) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn list(&self, _: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        Ok(Vec::new())
    }
}

fn broker(cache: &Arc<MapCache>, key: SealingKey) -> (CredentialBroker, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let b = CredentialBroker::new(
        cache.clone() as Arc<dyn Cache>,
        Arc::new(NoSecrets),
        key,
        metrics.clone(),
    );
    (b, metrics)
}

fn creds(token: &str) -> Credentials {
    Credentials {
        credentials: SecretValue::from_bytes(format!("{{\"token\":\"{token}\"}}").into_bytes()),
        expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
    }
}

fn undecryptable(m: &Metrics) -> u64 {
    m.cache_undecryptable.get()
}

/// Two replicas holding different cache keys: each entry of the one is counted as
/// undecryptable by the other (a miss, not a wrong value), and logged once per key id.
#[tokio::test]
async fn entries_of_another_key_are_counted_and_logged_once_per_key_id() {
    let cache = Arc::new(MapCache::default());
    let (a, ma) = broker(&cache, SealingKey::generate());
    let (b, mb) = broker(&cache, SealingKey::generate());
    let (c, _) = broker(&cache, SealingKey::generate());
    assert_ne!(a.key_id, b.key_id);
    let k1 = cache_key(ConnectionId::new(), CredentialMode::Full);
    let k2 = cache_key(ConnectionId::new(), CredentialMode::Full);
    assert!(a.store(&k1, &creds("from-a")).await);
    assert!(a.store(&k2, &creds("from-a-2")).await);
    // The writer reads its own entries; nothing counted.
    let own = a.lookup(&k1).await.expect("hit");
    assert_eq!(own.credentials, creds("from-a").credentials);
    assert_eq!(undecryptable(&ma), 0);
    // The entry names the key that sealed it (by id only; no key material).
    let raw = cache.0.lock().get(&k1).cloned().unwrap();
    assert_eq!(split_entry(&raw).0, Some(a.key_id));
    assert!(!raw
        .windows(32)
        .any(|w| w == a.key.expose_bytes().as_slice()));
    // Another key: misses, every one counted.
    assert!(b.lookup(&k1).await.is_none());
    assert!(b.lookup(&k2).await.is_none());
    assert!(b.lookup(&k1).await.is_none());
    assert_eq!(undecryptable(&mb), 3);
    assert_eq!(
        mb.cache_lookups.with_label_values(&["miss"]).get(),
        3,
        "an undecryptable entry is a miss"
    );
    // Logged once per key id: a's id was seen, so a further entry of a's is not logged again;
    // the first entry of c's is.
    assert!(!b.note_undecryptable(Some(a.key_id)));
    let k3 = cache_key(ConnectionId::new(), CredentialMode::ReadOnly);
    assert!(c.store(&k3, &creds("from-c")).await);
    assert!(b.undecryptable_seen.lock().contains(&Some(a.key_id)));
    assert!(!b.undecryptable_seen.lock().contains(&Some(c.key_id)));
    assert!(b.lookup(&k3).await.is_none());
    assert!(b.undecryptable_seen.lock().contains(&Some(c.key_id)));
    assert_eq!(b.undecryptable_seen.lock().len(), 2);
    assert_eq!(undecryptable(&mb), 5);
    assert!(b
        .metrics
        .render()
        .contains("aurora_cache_undecryptable_total 5"));
}

/// Entries of the first format (the bare sealed blob) are still read, and one that another
/// key sealed is counted under an unknown key id.
#[tokio::test]
async fn entries_without_a_key_id_are_read_and_counted() {
    let cache = Arc::new(MapCache::default());
    let key = SealingKey::generate();
    let (a, ma) = broker(&cache, key.clone());
    let k = cache_key(ConnectionId::new(), CredentialMode::Full);
    let entry = serde_json::to_vec(&CachedEntry {
        c: "{\"token\":\"old\"}".into(),
        e: None,
        w: None,
    })
    .unwrap();
    cache
        .0
        .lock()
        .insert(k.clone(), key.seal(&entry, k.as_bytes()).unwrap());
    let hit = a.lookup(&k).await.expect("first-format entry read");
    assert_eq!(hit.credentials.expose_bytes(), b"{\"token\":\"old\"}");
    assert_eq!(undecryptable(&ma), 0);
    let other = SealingKey::generate();
    cache
        .0
        .lock()
        .insert(k.clone(), other.seal(&entry, k.as_bytes()).unwrap());
    assert!(a.lookup(&k).await.is_none());
    assert_eq!(undecryptable(&ma), 1);
    assert!(a.undecryptable_seen.lock().contains(&None));
    // Damaged entries of our own key id are counted too.
    let mut damaged = a.frame(key.seal(&entry, k.as_bytes()).unwrap());
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    cache.0.lock().insert(k.clone(), damaged);
    assert!(a.lookup(&k).await.is_none());
    assert_eq!(undecryptable(&ma), 2);
}

#[test]
fn key_ids_are_stable_and_distinct() {
    let k = SealingKey::from_slice(&[7u8; 32]).unwrap();
    assert_eq!(key_id(&k), key_id(&k.clone()));
    assert_eq!(key_id_hex(&k).len(), 2 * KEY_ID_LEN);
    assert_ne!(key_id(&k), key_id(&SealingKey::generate()));
}
