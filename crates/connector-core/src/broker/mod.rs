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

mod entry;
mod invalidation;
mod local;
mod refresh;

use self::entry::*;
pub use self::entry::{cache_key, key_id, key_id_hex, KeyId, KEY_ID_LEN};
use self::local::*;

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
}

#[cfg(test)]
mod tests;

/// The shared cache unavailable (Redis down, or its circuit breaker open): warm requests are
/// served from pinned copies, checked against the secret store, without provider calls.
#[cfg(test)]
mod outage_tests;
