//! Credentials on use: an encrypted cache in front of the connectors, refresh near expiry, and
//! single-flight so concurrent callers for one connection share one provider call, within one process
//! and across replicas.
//!
//! Where credentials come from, fastest first:
//! 1. **The in-process tier** (optional): decrypted credentials kept a few seconds in this process.
//!    It is used only while this process listens to the invalidation channel of the shared cache
//!    ([`CredentialBroker::spawn_invalidation_listener`]), so that [`CredentialBroker::evict`] on any
//!    replica (disconnect, reconnect, refusal) drops the copy on every replica; when the channel is
//!    lost the tier is emptied and stays off until it is back. The same tier keeps the connection
//!    rows the credentials route reads ([`crate::Platform::connection_for_use`]); every write to a
//!    row goes through a [`crate::Platform`] method, which calls [`CredentialBroker::row_changed`]
//!    or [`CredentialBroker::evict`] once after the write, so a status change, a reconnect or a
//!    disconnect through any replica drops the row (and the credentials) on every replica. On the embedded default,
//!    the only writer, rows are kept without a channel and credentials are not copied.
//! 2. **The shared cache** (Redis, or in process): entries sealed with the cache key. While it is
//!    unavailable (Redis down, or its circuit breaker open, which answers at once), tier 1 is off
//!    (the invalidation channel goes with Redis) and a warm request is served from the copy this
//!    process *pinned* when it issued the credentials and could not cache them, once a read of the
//!    secret store shows the secret is still the version they were issued from
//!    ([`CredentialBroker::pinned`]); the row itself is read from the store on every request then.
//!    So a disconnect, reconnect or rotation on any replica is seen by the next request, and the
//!    provider is called only when no copy is pinned (once per connection and mode and process),
//!    the secret changed, or the credentials near expiry.
//! 3. **A refresh**: the connector is called with the stored secret. Concurrent refreshes of one
//!    connection and mode share one provider call: in one process through a shared future; across
//!    replicas through a lock with a fencing token in the shared cache ([`Cache::try_lock`]). A
//!    replica that finds the lock taken polls the shared cache, with a bounded wait, and hands out the
//!    winner's result instead of calling the provider. When the cache has no lock (Redis down), each
//!    process still makes at most one call (the in-process single-flight), and says so in the log.
//!
//! A rotated secret that a refresh brings back (`IssuedCredentials::updated_secret`) is written with
//! check-and-set ([`SecretStore::put_cas`]) against the version the refresh read, so a stale writer
//! never overwrites newer credentials; on a conflict the newer stored secret is read and used (one
//! more provider call). A refresh without a rotated secret reads the version again before caching,
//! so credentials of a secret replaced or deleted meanwhile are not cached behind the change's back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cache::{Cache, LockToken};
use crate::connector::{Connector, IssuedCredentials};
use crate::crypto::SealingKey;
use crate::error::{ApiError, SecretStoreError};
use crate::ids::{ConnectionId, CredentialMode};
use crate::metrics::Metrics;
use crate::secret::SecretValue;
use crate::secrets::{SecretPath, SecretStore, VersionedSecret};
use crate::store::ConnectionRecord;

/// Credentials this close to expiry are refreshed before they are handed out.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long credentials that do not expire (API keys) stay cached before the secret store is read again.
pub const NON_EXPIRING_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest any entry stays cached.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);
/// The lease of the cross-replica refresh lock: longer than a provider call takes.
pub const REFRESH_LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a replica waits for another replica's refresh before it refreshes itself.
pub const REFRESH_LOCK_WAIT: Duration = Duration::from_secs(30);
/// The pub/sub channel (under the cache's key prefix) that carries connection ids whose credentials
/// changed or went away.
pub const INVALIDATION_CHANNEL: &str = "invalidate:credentials";
/// Default lifetime of an entry of the in-process tier (`AURORA_CREDENTIALS_LOCAL_TTL_SECS`).
pub const DEFAULT_LOCAL_TTL: Duration = Duration::from_secs(10);

/// First and longest pause between two looks at the shared cache while another replica refreshes.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(200);
/// How long a refresh's result stays readable for the replicas that waited on it, when it is too
/// close to expiry for the cache proper.
const HANDOFF_TTL: Duration = Duration::from_secs(5);
/// A waiting replica takes a hand-off written at most this long before it started waiting (clock
/// skew between hosts); older ones belong to an earlier refresh.
const HANDOFF_SKEW: chrono::Duration = chrono::Duration::seconds(1);
/// Bound of the in-process tier.
const LOCAL_MAX_ENTRIES: usize = 10_000;
/// Pause before subscribing again after the invalidation channel failed (doubling up to the max).
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(200);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// Credentials as handed to a caller.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub credentials: SecretValue,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct CachedEntry {
    /// The credentials JSON document, as a string so it round-trips byte for byte.
    c: String,
    e: Option<DateTime<Utc>>,
    /// When the entry was written (hand-off entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<DateTime<Utc>>,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Credentials>, ApiError>>>;

pub struct CredentialBroker {
    cache: Arc<dyn Cache>,
    secrets: Arc<dyn SecretStore>,
    key: SealingKey,
    /// [`key_id`] of `key`, written in front of every entry this process seals.
    key_id: KeyId,
    /// The key ids of the entries found undecryptable, so each is logged once
    /// ([`CredentialBroker::note_undecryptable`]).
    undecryptable_seen: Mutex<std::collections::HashSet<Option<KeyId>>>,
    metrics: Arc<Metrics>,
    inflight: Mutex<HashMap<String, Flight>>,
    local: LocalTier,
    /// Whether the last look at the shared cache failed: its failures are logged once per outage.
    shared_down: AtomicBool,
}

/// The shared cache did not answer (down, or its circuit breaker open).
struct CacheDown;

/// What this process keeps of other replicas' state (tier 1 of the module docs): decrypted
/// credentials, and the connection rows the credentials route reads.
#[derive(Default)]
struct LocalTier {
    /// Credential entry lifetime in milliseconds; 0 = credentials are not kept.
    ttl_ms: AtomicU64,
    /// Connection row lifetime in milliseconds; 0 = rows are not kept.
    row_ttl_ms: AtomicU64,
    /// Whether this process currently hears invalidations; the tier is used only while it does.
    listening: AtomicBool,
    /// Rows may be kept without the channel: this process is the only writer (the embedded
    /// default, where every row write goes through this process's [`crate::Platform`]).
    rows_without_channel: AtomicBool,
    /// Bumped by every eviction, so a read that started before an eviction does not put back
    /// what the eviction removed.
    generation: AtomicU64,
    entries: Mutex<HashMap<(ConnectionId, CredentialMode), Kept<Credentials>>>,
    rows: Mutex<HashMap<ConnectionId, Kept<ConnectionRecord>>>,
    /// Credentials this process issued while the shared cache could not keep them, served only
    /// while it is unavailable and each time after the secret store confirms their version
    /// ([`CredentialBroker::pinned`]). Not tied to the invalidation channel: the version check is
    /// what keeps them correct.
    pinned: Mutex<HashMap<(ConnectionId, CredentialMode), Kept<Pinned>>>,
}

/// Credentials and the version of the stored secret they were issued from.
struct Pinned {
    version: u64,
    creds: Arc<Credentials>,
}

/// An entry of the in-process tier and the instant it lapses.
struct Kept<T> {
    value: Arc<T>,
    until: Instant,
}

/// The entry under `key` if it has not lapsed and `valid` holds; a stale one is removed.
fn get_kept<K: Eq + Hash, T>(
    map: &Mutex<HashMap<K, Kept<T>>>,
    key: &K,
    valid: impl Fn(&T) -> bool,
) -> Option<Arc<T>> {
    let now = Instant::now();
    let mut map = map.lock();
    match map.get(key) {
        Some(e) if e.until > now && valid(&e.value) => Some(Arc::clone(&e.value)),
        Some(_) => {
            map.remove(key);
            None
        }
        None => None,
    }
}

/// The outcome of asking for the cross-replica refresh lock.
enum Acquired {
    /// This process holds the lock and refreshes.
    Lock(LockToken),
    /// Another replica refreshed meanwhile: its result.
    Result(Arc<Credentials>),
    /// No lock (the cache has none, or the wait ran out): refresh without it.
    Without,
}

/// The id of a cache key: [`KEY_ID_LEN`] bytes of SHA-256 over a label and the key. It names a key
/// (in the cache entries and the logs) without revealing anything of it.
pub type KeyId = [u8; KEY_ID_LEN];
pub const KEY_ID_LEN: usize = 8;
/// The first byte of a cache entry that names the key that sealed it: `ENTRY_WITH_KEY_ID ‖ key id
/// ‖ sealed`. Entries of the first format are the bare sealed blob, whose first byte is the
/// crypto module's format byte (1).
const ENTRY_WITH_KEY_ID: u8 = b'K';
/// At most this many distinct key ids are remembered (and logged) as undecryptable.
const UNDECRYPTABLE_LOGGED_MAX: usize = 64;

/// The [`KeyId`] of `key`.
pub fn key_id(key: &SealingKey) -> KeyId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"aurora-cache-key-id/v1\0");
    h.update(key.expose_bytes());
    let digest = h.finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// [`key_id`] in hex, for logs.
pub fn key_id_hex(key: &SealingKey) -> String {
    hex_id(&key_id(key))
}

fn hex_id(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Split a stored entry into the id of the key that sealed it (`None` for the first format) and
/// the sealed blob.
fn split_entry(raw: &[u8]) -> (Option<KeyId>, &[u8]) {
    match raw.split_first() {
        Some((&ENTRY_WITH_KEY_ID, rest)) if rest.len() >= KEY_ID_LEN => {
            let (id, sealed) = rest.split_at(KEY_ID_LEN);
            (id.try_into().ok(), sealed)
        }
        _ => (None, raw),
    }
}

/// The cache key of one connection's credentials for one mode.
pub fn cache_key(id: ConnectionId, mode: CredentialMode) -> String {
    format!("cred:{id}:{}", mode.as_str())
}

fn lock_key(key: &str) -> String {
    format!("refresh:{key}")
}

fn handoff_key(key: &str) -> String {
    format!("handoff:{key}")
}

fn is_fresh(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match expires_at {
        None => true,
        Some(e) => e - now > chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default(),
    }
}

fn not_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|e| e > now)
}

fn missing_secret(conn: &ConnectionRecord) -> ApiError {
    tracing::error!(connection = %conn.id, "connection has no secret in the secret store");
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        crate::error::ErrorCode::NeedsReconnect,
        "the connection's credentials are missing; reconnect the account",
    )
}

impl LocalTier {
    fn enabled(&self) -> bool {
        self.ttl_ms.load(Ordering::Relaxed) > 0 && self.listening.load(Ordering::Acquire)
    }

    fn rows_enabled(&self) -> bool {
        self.row_ttl_ms.load(Ordering::Relaxed) > 0
            && (self.listening.load(Ordering::Acquire)
                || self.rows_without_channel.load(Ordering::Acquire))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn get(&self, key: (ConnectionId, CredentialMode)) -> Option<Arc<Credentials>> {
        if !self.enabled() {
            return None;
        }
        get_kept(&self.entries, &key, |c| is_fresh(c.expires_at, Utc::now()))
    }

    fn get_row(&self, id: ConnectionId) -> Option<Arc<ConnectionRecord>> {
        if !self.rows_enabled() {
            return None;
        }
        get_kept(&self.rows, &id, |_| true)
    }

    /// Keep `row` unless an eviction happened since `generation` was read.
    fn put_row(&self, row: &Arc<ConnectionRecord>, generation: u64) {
        if !self.rows_enabled() {
            return;
        }
        let life = Duration::from_millis(self.row_ttl_ms.load(Ordering::Relaxed));
        self.keep(&self.rows, row.id, row, life, generation);
    }

    /// Keep `creds` unless an eviction happened since `generation` was read.
    fn put(&self, key: (ConnectionId, CredentialMode), creds: &Arc<Credentials>, generation: u64) {
        if !self.enabled() {
            return;
        }
        let mut life = Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed));
        if let Some(e) = creds.expires_at {
            match (e - Utc::now()).to_std() {
                Ok(left) if left > REFRESH_MARGIN => life = life.min(left - REFRESH_MARGIN),
                _ => return,
            }
        }
        self.keep(&self.entries, key, creds, life, generation);
    }

    /// Keep `value` under `key` for `life`, unless an eviction happened since `generation` was
    /// read; a full map drops its expired entries first and, still full, keeps nothing new.
    fn keep<K: Eq + Hash, T>(
        &self,
        map: &Mutex<HashMap<K, Kept<T>>>,
        key: K,
        value: &Arc<T>,
        life: Duration,
        generation: u64,
    ) {
        let now = Instant::now();
        let mut map = map.lock();
        // Checked under the map's lock, which every eviction takes after bumping the generation.
        if self.generation() != generation {
            return;
        }
        if map.len() >= LOCAL_MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, e| e.until > now);
            if map.len() >= LOCAL_MAX_ENTRIES {
                return;
            }
        }
        map.insert(
            key,
            Kept {
                value: Arc::clone(value),
                until: now + life,
            },
        );
    }

    fn evict(&self, id: ConnectionId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        {
            let mut entries = self.entries.lock();
            for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
                entries.remove(&(id, mode));
            }
        }
        self.rows.lock().remove(&id);
        let mut pinned = self.pinned.lock();
        for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
            pinned.remove(&(id, mode));
        }
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.lock().clear();
        self.rows.lock().clear();
        self.pinned.lock().clear();
    }

    /// Pin `creds`, issued from version `version` of the secret, for while the shared cache is
    /// unavailable (at most [`NON_EXPIRING_TTL`], and never inside the refresh margin).
    fn pin(&self, key: (ConnectionId, CredentialMode), creds: &Arc<Credentials>, version: u64) {
        let pinned = Arc::new(Pinned {
            version,
            creds: Arc::clone(creds),
        });
        self.keep(
            &self.pinned,
            key,
            &pinned,
            NON_EXPIRING_TTL,
            self.generation(),
        );
    }

    fn get_pinned(&self, key: (ConnectionId, CredentialMode)) -> Option<Arc<Pinned>> {
        get_kept(&self.pinned, &key, |p| {
            is_fresh(p.creds.expires_at, Utc::now())
        })
    }

    fn unpin(&self, key: (ConnectionId, CredentialMode)) {
        self.pinned.lock().remove(&key);
    }
}

impl CredentialBroker {
    pub fn new(
        cache: Arc<dyn Cache>,
        secrets: Arc<dyn SecretStore>,
        key: SealingKey,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache,
            secrets,
            key_id: key_id(&key),
            undecryptable_seen: Mutex::new(std::collections::HashSet::new()),
            key,
            metrics,
            inflight: Mutex::new(HashMap::new()),
            local: LocalTier::default(),
            shared_down: AtomicBool::new(false),
        }
    }

    /// Fresh credentials for `connection`, from the cache or through the connector.
    pub async fn get(
        self: &Arc<Self>,
        connector: Arc<dyn Connector>,
        connection: &ConnectionRecord,
        mode: CredentialMode,
    ) -> Result<Arc<Credentials>, ApiError> {
        let local_key = (connection.id, mode);
        let generation = self.local.generation();
        if let Some(hit) = self.local.get(local_key) {
            self.metrics.cache_hits_local.inc();
            return Ok(hit);
        }
        let key = cache_key(connection.id, mode);
        match self.lookup_shared(&key).await {
            Ok(Some(hit)) => {
                let hit = Arc::new(hit);
                self.local.put(local_key, &hit, generation);
                return Ok(hit);
            }
            Ok(None) => {}
            Err(CacheDown) => {
                if let Some(hit) = self.pinned(connection, mode).await? {
                    return Ok(hit);
                }
            }
        }
        let flight = {
            let mut inflight = self.inflight.lock();
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let this = Arc::clone(self);
                let conn = connection.clone();
                let k = key.clone();
                // Spawned, so a caller that goes away does not cancel the refresh for the others.
                let handle = tokio::spawn(async move {
                    let out = this.refresh(connector, &conn, mode, &k).await;
                    this.inflight.lock().remove(&k);
                    out
                });
                let fut: BoxFuture<'static, Result<Arc<Credentials>, ApiError>> = async move {
                    match handle.await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "credential refresh task failed");
                            Err(ApiError::internal())
                        }
                    }
                }
                .boxed();
                let shared = fut.shared();
                inflight.insert(key.clone(), shared.clone());
                shared
            }
        };
        let out = flight.await;
        if let Ok(creds) = &out {
            self.local.put(local_key, creds, generation);
        }
        out
    }

    /// Open the sealed entry stored under `key` (absent or unreadable: `None`), with its write time
    /// if it has one.
    async fn read_entry(
        &self,
        key: &str,
    ) -> Result<Option<(Credentials, Option<DateTime<Utc>>)>, crate::error::CacheError> {
        let Some(raw) = self.cache.get(key).await? else {
            return Ok(None);
        };
        let (writer, sealed) = split_entry(&raw);
        let entry = match self.key.open(sealed, key.as_bytes()) {
            Ok(plain) => serde_json::from_slice::<CachedEntry>(&plain).ok(),
            Err(_) => {
                self.note_undecryptable(writer);
                None
            }
        };
        Ok(entry.map(|e| {
            let c = Zeroizing::new(e.c);
            let creds = Credentials {
                credentials: SecretValue::from_bytes(c.as_bytes().to_vec()),
                expires_at: e.e,
            };
            (creds, e.w)
        }))
    }

    /// An entry that does not decrypt with this process's key: counted
    /// (`aurora_cache_undecryptable_total`) and logged once per key id that sealed it, so replicas
    /// holding different cache keys (each then misses the others' entries and calls the provider
    /// again) show. Whether this call logged.
    fn note_undecryptable(&self, writer: Option<KeyId>) -> bool {
        self.metrics.cache_undecryptable.inc();
        let first = {
            let mut seen = self.undecryptable_seen.lock();
            seen.len() < UNDECRYPTABLE_LOGGED_MAX && seen.insert(writer)
        };
        if first {
            let sealed_with = writer.as_ref().map_or_else(|| "unknown".to_owned(), hex_id);
            tracing::warn!(
                entry_key_id = %sealed_with,
                own_key_id = %hex_id(&self.key_id),
                "a credential cache entry does not decrypt with this process's cache key: another \
                 replica seals with another key (then each misses the other's entries and calls the \
                 provider again), or the entry is damaged; counted in \
                 aurora_cache_undecryptable_total, logged once per key id"
            );
        }
        first
    }

    async fn lookup(&self, key: &str) -> Option<Credentials> {
        self.lookup_shared(key).await.ok().flatten()
    }

    /// The shared cache's fresh entry under `key`, or [`CacheDown`].
    async fn lookup_shared(&self, key: &str) -> Result<Option<Credentials>, CacheDown> {
        let (result, found) = match self.read_entry(key).await {
            Ok(Some((c, _))) if is_fresh(c.expires_at, Utc::now()) => ("hit", Ok(Some(c))),
            Ok(_) => ("miss", Ok(None)),
            Err(e) => {
                if self.shared_down.swap(true, Ordering::AcqRel) {
                    tracing::debug!(error = %e, "credential cache unavailable");
                } else {
                    tracing::warn!(
                        error = %e,
                        "credential cache unavailable: serving credentials this process issued, \
                         each checked against the secret store, and issuing the others, until it \
                         answers again"
                    );
                }
                ("error", Err(CacheDown))
            }
        };
        if found.is_ok()
            && self.shared_down.load(Ordering::Relaxed)
            && self.shared_down.swap(false, Ordering::AcqRel)
        {
            tracing::info!("credential cache answers again");
            self.local.pinned.lock().clear();
        }
        self.metrics
            .cache_lookups
            .with_label_values(&[result])
            .inc();
        found
    }

    /// While the shared cache is unavailable: the credentials this process pinned for the
    /// connection and mode, if the stored secret is still the version they were issued from (one
    /// secret-store read). A secret replaced or deleted meanwhile (a reconnect, a rotation, a
    /// disconnect, on any replica) drops the copy; the refresh that follows issues from the new
    /// secret or answers that it is gone.
    async fn pinned(
        &self,
        conn: &ConnectionRecord,
        mode: CredentialMode,
    ) -> Result<Option<Arc<Credentials>>, ApiError> {
        let key = (conn.id, mode);
        let Some(pinned) = self.local.get_pinned(key) else {
            return Ok(None);
        };
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        let stored = self.secrets.get_versioned(&path).await?;
        if stored.is_some_and(|s| s.version == pinned.version) {
            self.metrics
                .cache_lookups
                .with_label_values(&["pinned"])
                .inc();
            return Ok(Some(Arc::clone(&pinned.creds)));
        }
        self.local.unpin(key);
        Ok(None)
    }

    /// What another replica's refresh, finished since `waiting_since`, left for the replicas that
    /// waited on it (no metrics: polled).
    async fn poll_result(&self, key: &str, waiting_since: DateTime<Utc>) -> Option<Credentials> {
        let now = Utc::now();
        if let Ok(Some((c, _))) = self.read_entry(key).await {
            if is_fresh(c.expires_at, now) {
                return Some(c);
            }
        }
        match self.read_entry(&handoff_key(key)).await {
            Ok(Some((c, Some(written))))
                if written >= waiting_since - HANDOFF_SKEW && not_expired(c.expires_at, now) =>
            {
                Some(c)
            }
            _ => None,
        }
    }

    async fn refresh(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
        key: &str,
    ) -> Result<Arc<Credentials>, ApiError> {
        // Another replica may have refreshed while we queued.
        if let Some(hit) = self.lookup(key).await {
            return Ok(Arc::new(hit));
        }
        let lock = lock_key(key);
        let token = match self.acquire(&lock, key, conn.id).await {
            Acquired::Result(c) => return Ok(c),
            Acquired::Lock(t) => Some(t),
            Acquired::Without => None,
        };
        let out = async {
            if token.is_some() {
                // The previous holder may have finished between our look and our lock.
                if let Some(hit) = self.lookup(key).await {
                    return Ok(Arc::new(hit));
                }
            }
            self.issue(connector, conn, mode, key, token.is_some())
                .await
        }
        .await;
        if let Some(t) = token {
            match self.cache.unlock(&lock, t).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    connection = %conn.id,
                    fence = t.fence,
                    "the refresh outlived its lock lease; another replica may have refreshed too"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, connection = %conn.id, "could not release the refresh lock; it expires on its own")
                }
            }
        }
        out
    }

    /// Take the cross-replica refresh lock, or wait (bounded) for the replica holding it.
    async fn acquire(&self, lock: &str, key: &str, id: ConnectionId) -> Acquired {
        let deadline = Instant::now() + REFRESH_LOCK_WAIT;
        let waiting_since = Utc::now();
        let mut pause = POLL_MIN;
        loop {
            match self.cache.try_lock(lock, REFRESH_LOCK_TTL).await {
                Ok(Some(token)) => return Acquired::Lock(token),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        connection = %id,
                        "no cross-replica refresh lock (shared cache down?): refreshing under this \
                         process's single-flight only, so other replicas may refresh too"
                    );
                    return Acquired::Without;
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    connection = %id,
                    waited_ms = REFRESH_LOCK_WAIT.as_millis() as u64,
                    "another replica's refresh did not finish in time; refreshing here"
                );
                return Acquired::Without;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(POLL_MAX);
            if let Some(hit) = self.poll_result(key, waiting_since).await {
                self.metrics.cache_lookups.with_label_values(&["hit"]).inc();
                return Acquired::Result(Arc::new(hit));
            }
        }
    }

    /// Call the connector with the stored secret; write back a rotated secret with check-and-set.
    async fn issue(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
        key: &str,
        hand_off: bool,
    ) -> Result<Arc<Credentials>, ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        let mut secret: VersionedSecret = self
            .secrets
            .get_versioned(&path)
            .await?
            .ok_or_else(|| missing_secret(conn))?;
        let provider = conn.provider.as_str();
        let mut attempt = 0;
        // With the version of the stored secret they go with (0: unknown).
        let (issued, version): (IssuedCredentials, u64) = loop {
            attempt += 1;
            let issued = match connector.issue_credentials(conn, &secret.value, mode).await {
                Ok(i) => {
                    self.metrics
                        .credential_refreshes
                        .with_label_values(&[provider, "ok"])
                        .inc();
                    i
                }
                Err(e) => {
                    self.metrics
                        .credential_refreshes
                        .with_label_values(&[provider, "error"])
                        .inc();
                    return Err(e.into());
                }
            };
            let Some(updated) = &issued.updated_secret else {
                // Nothing to write back; still, credentials issued from a secret that was replaced
                // (a reconnect) or deleted (a disconnect) while the provider answered must not be
                // cached after that change's eviction.
                match self.secrets.get_versioned(&path).await? {
                    None => return Err(missing_secret(conn)),
                    Some(now) if now.version != secret.version && attempt < 2 => {
                        tracing::info!(
                            connection = %conn.id,
                            "the stored secret changed during the refresh; using the newer one"
                        );
                        secret = now;
                        continue;
                    }
                    Some(_) => break (issued, secret.version),
                }
            };
            match self.secrets.put_cas(&path, updated, secret.version).await {
                Ok(version) => break (issued, version),
                Err(SecretStoreError::Conflict(_)) if attempt < 2 => {
                    // Someone stored newer credentials since we read (a reconnect, or another
                    // replica's refresh): never overwrite them; issue from the newer secret.
                    tracing::info!(
                        connection = %conn.id,
                        "the stored secret changed during the refresh; using the newer one"
                    );
                    secret = self
                        .secrets
                        .get_versioned(&path)
                        .await?
                        .ok_or_else(|| missing_secret(conn))?;
                }
                Err(SecretStoreError::Conflict(_)) => {
                    tracing::warn!(
                        connection = %conn.id,
                        "the stored secret keeps changing; keeping the stored one and handing out \
                         these credentials"
                    );
                    break (issued, 0);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let creds = Credentials {
            credentials: issued.credentials,
            expires_at: issued.expires_at,
        };
        let cached = self.store(key, &creds).await;
        if hand_off && !cached {
            self.store_sealed(&handoff_key(key), &creds, HANDOFF_TTL, Some(Utc::now()))
                .await;
        }
        let creds = Arc::new(creds);
        if !cached && version > 0 && is_fresh(creds.expires_at, Utc::now()) {
            // The shared cache could not keep them (down, or its breaker open): pinned, so that
            // this process needs no provider call for them while the cache stays unavailable.
            self.local.pin((conn.id, mode), &creds, version);
        }
        Ok(creds)
    }

    /// Cache `creds` under `key` if they are worth it; whether they were written.
    async fn store(&self, key: &str, creds: &Credentials) -> bool {
        let now = Utc::now();
        let ttl = match creds.expires_at {
            None => NON_EXPIRING_TTL,
            Some(e) => match (e - now).to_std() {
                Ok(left) if left > REFRESH_MARGIN => (left - REFRESH_MARGIN).min(MAX_TTL),
                // Already inside the margin: not worth caching.
                _ => return false,
            },
        };
        self.store_sealed(key, creds, ttl, None).await
    }

    /// Seal and write `creds` under `key` for at most `ttl` (never past their expiry).
    async fn store_sealed(
        &self,
        key: &str,
        creds: &Credentials,
        ttl: Duration,
        written: Option<DateTime<Utc>>,
    ) -> bool {
        let ttl = match creds.expires_at {
            None => ttl,
            Some(e) => match (e - Utc::now()).to_std() {
                Ok(left) if !left.is_zero() => ttl.min(left),
                _ => return false,
            },
        };
        let Ok(text) = std::str::from_utf8(creds.credentials.expose_bytes()) else {
            return false;
        };
        let entry = CachedEntry {
            c: text.to_owned(),
            e: creds.expires_at,
            w: written,
        };
        let plain = match serde_json::to_vec(&entry) {
            Ok(p) => Zeroizing::new(p),
            Err(_) => return false,
        };
        let _wipe = Zeroizing::new(entry.c);
        match self.key.seal(&plain, key.as_bytes()) {
            Ok(sealed) => match self.cache.set(key, &self.frame(sealed), ttl).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not write the credential cache");
                    false
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "could not seal a cache entry");
                false
            }
        }
    }

    /// A sealed entry as stored: prefixed with the id of the key that sealed it.
    fn frame(&self, sealed: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + sealed.len());
        out.push(ENTRY_WITH_KEY_ID);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&sealed);
        out
    }

    /// Drop every cached credential of a connection (disconnect, reconnect, refusal): in this
    /// process, in the shared cache, and, through the invalidation channel, in every replica's
    /// in-process tier.
    pub async fn evict(&self, id: ConnectionId) {
        self.local.evict(id);
        for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
            let key = cache_key(id, mode);
            for k in [handoff_key(&key), key] {
                if let Err(e) = self.cache.delete(&k).await {
                    tracing::warn!(error = %e, connection = %id, "could not evict cached credentials");
                }
            }
        }
        self.tell_replicas(id).await;
    }

    /// Publish `id` on the invalidation channel, so every replica drops its in-process copies.
    /// With the in-process cache there is nobody else to tell.
    async fn tell_replicas(&self, id: ConnectionId) {
        if !self.cache.is_shared() {
            return;
        }
        if let Err(e) = self
            .cache
            .publish(INVALIDATION_CHANNEL, id.to_string().as_bytes())
            .await
        {
            tracing::warn!(
                error = %e,
                connection = %id,
                "could not tell the other replicas to drop their copies; they stop using them when \
                 they lose the channel or within the in-process ttl"
            );
        }
    }

    /// Whether this process holds an in-process copy of the connection's credentials (tests,
    /// diagnostics).
    pub fn holds_local_copy(&self, id: ConnectionId) -> bool {
        let entries = self.local.entries.lock();
        [CredentialMode::ReadOnly, CredentialMode::Full]
            .iter()
            .any(|m| entries.contains_key(&(id, *m)))
    }

    /// Whether the in-process tier is in use (enabled and hearing invalidations).
    pub fn local_tier_active(&self) -> bool {
        self.local.enabled()
    }

    /// A connection's row changed (status, metadata, reconnect) or went away: drop this process's
    /// copies of it (the row and its decrypted credentials) and tell every replica to do the same.
    /// The shared cache's entries stay (a status or metadata change does not change credentials;
    /// [`CredentialBroker::evict`] is for that). Called by the [`crate::Platform`] methods that
    /// write a connection row, once after the write.
    pub async fn row_changed(&self, id: ConnectionId) {
        self.local.evict(id);
        self.tell_replicas(id).await;
    }

    /// The eviction generation: read it before reading a row from the store, and hand it to
    /// [`CredentialBroker::keep_row`], so a row read before a change is never kept after it.
    pub fn local_generation(&self) -> u64 {
        self.local.generation()
    }

    /// The connection row kept in this process, when rows are kept and this one is fresh.
    pub fn local_row(&self, id: ConnectionId) -> Option<Arc<ConnectionRecord>> {
        self.local.get_row(id)
    }

    /// Keep a row read from the store, unless a change was heard since `generation` was read.
    pub fn keep_row(&self, row: &Arc<ConnectionRecord>, generation: u64) {
        self.local.put_row(row, generation);
    }

    /// Whether this process keeps a copy of the connection's row (tests, diagnostics).
    pub fn holds_local_row(&self, id: ConnectionId) -> bool {
        self.local.rows.lock().contains_key(&id)
    }

    /// Keep connection rows even without the invalidation channel: for a process that is the only
    /// writer of its store (the embedded default), where every change goes through this process.
    pub fn keep_rows_without_channel(&self, on: bool) {
        self.local.rows_without_channel.store(on, Ordering::Release);
    }

    /// Turn the in-process tier on (`ttl` > 0) and keep it correct across replicas: subscribe to the
    /// invalidation channel, drop the copies that other replicas' [`CredentialBroker::evict`] and
    /// [`CredentialBroker::row_changed`] name, and resubscribe (emptying the tier, which is off
    /// meanwhile) whenever the channel is lost.
    ///
    /// With `ttl` zero the tier stays off. With an in-process cache there is no channel to listen
    /// to and the task ends at once: credentials are not copied (the cache already is this
    /// process), and rows are kept only if [`CredentialBroker::keep_rows_without_channel`] said this
    /// process is the only writer. Call once per process; the gateway aborts the task at shutdown.
    pub fn spawn_invalidation_listener(
        self: &Arc<Self>,
        ttl: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let memory = !self.cache.is_shared();
        let ms = ttl.as_millis().try_into().unwrap_or(u64::MAX);
        self.local.row_ttl_ms.store(ms, Ordering::Relaxed);
        self.local
            .ttl_ms
            .store(if memory { 0 } else { ms }, Ordering::Relaxed);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if !ttl.is_zero() && !memory {
                this.listen_invalidations().await;
            }
        })
    }

    async fn listen_invalidations(&self) {
        let mut pause = RESUBSCRIBE_MIN;
        let mut reported = false;
        loop {
            match self.cache.subscribe(INVALIDATION_CHANNEL).await {
                Ok(mut sub) => {
                    // Whatever was published while nobody listened is lost: start empty.
                    self.local.clear();
                    self.local.listening.store(true, Ordering::Release);
                    if reported {
                        tracing::info!("credential invalidations heard again; in-process tier on");
                    } else {
                        tracing::debug!("listening to credential invalidations");
                    }
                    reported = false;
                    pause = RESUBSCRIBE_MIN;
                    while let Some(msg) = sub.recv().await {
                        let id = std::str::from_utf8(&msg)
                            .ok()
                            .and_then(|s| s.parse::<ConnectionId>().ok());
                        match id {
                            Some(id) => self.local.evict(id),
                            None => self.local.clear(),
                        }
                    }
                    self.local.listening.store(false, Ordering::Release);
                    self.local.clear();
                    tracing::warn!(
                        "lost the credential invalidation channel; the in-process tier is off until \
                         it is back"
                    );
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(
                            error = %e,
                            "cannot listen to credential invalidations; the in-process tier stays \
                             off until it can"
                        );
                        reported = true;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESUBSCRIBE_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
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
}

/// The shared cache unavailable (Redis down, or its circuit breaker open): warm requests are
/// served from pinned copies, checked against the secret store, without provider calls.
#[cfg(test)]
mod outage_tests {
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
        async fn put(
            &self,
            path: &SecretPath,
            value: &SecretValue,
        ) -> Result<(), SecretStoreError> {
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
}
