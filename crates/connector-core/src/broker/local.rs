//! The in-process tier of the broker: decrypted credentials and connection rows kept a few seconds,
//! and the copies pinned while the shared cache is down.

use super::*;

/// What this process keeps of other replicas' state (tier 1 of the module docs): decrypted
/// credentials, and the connection rows the credentials route reads.
#[derive(Default)]
pub(super) struct LocalTier {
    /// Credential entry lifetime in milliseconds; 0 = credentials are not kept.
    pub(super) ttl_ms: AtomicU64,
    /// Connection row lifetime in milliseconds; 0 = rows are not kept.
    pub(super) row_ttl_ms: AtomicU64,
    /// Whether this process currently hears invalidations; the tier is used only while it does.
    pub(super) listening: AtomicBool,
    /// Rows may be kept without the channel: this process is the only writer (the embedded
    /// default, where every row write goes through this process's [`crate::Platform`]).
    pub(super) rows_without_channel: AtomicBool,
    /// Bumped by every eviction, so a read that started before an eviction does not put back
    /// what the eviction removed.
    pub(super) generation: AtomicU64,
    pub(super) entries: Mutex<HashMap<(ConnectionId, CredentialMode), Kept<Credentials>>>,
    pub(super) rows: Mutex<HashMap<ConnectionId, Kept<ConnectionRecord>>>,
    /// Credentials this process issued while the shared cache could not keep them, served only
    /// while it is unavailable and each time after the secret store confirms their version
    /// ([`CredentialBroker::pinned`]). Not tied to the invalidation channel: the version check is
    /// what keeps them correct.
    pub(super) pinned: Mutex<HashMap<(ConnectionId, CredentialMode), Kept<Pinned>>>,
}

/// Credentials and the version of the stored secret they were issued from.
pub(super) struct Pinned {
    pub(super) version: u64,
    pub(super) creds: Arc<Credentials>,
}

/// An entry of the in-process tier and the instant it lapses.
pub(super) struct Kept<T> {
    pub(super) value: Arc<T>,
    pub(super) until: Instant,
}

/// The entry under `key` if it has not lapsed and `valid` holds; a stale one is removed.
pub(super) fn get_kept<K: Eq + Hash, T>(
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

impl LocalTier {
    pub(super) fn enabled(&self) -> bool {
        self.ttl_ms.load(Ordering::Relaxed) > 0 && self.listening.load(Ordering::Acquire)
    }

    pub(super) fn rows_enabled(&self) -> bool {
        self.row_ttl_ms.load(Ordering::Relaxed) > 0
            && (self.listening.load(Ordering::Acquire)
                || self.rows_without_channel.load(Ordering::Acquire))
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn get(&self, key: (ConnectionId, CredentialMode)) -> Option<Arc<Credentials>> {
        if !self.enabled() {
            return None;
        }
        get_kept(&self.entries, &key, |c| is_fresh(c.expires_at, Utc::now()))
    }

    pub(super) fn get_row(&self, id: ConnectionId) -> Option<Arc<ConnectionRecord>> {
        if !self.rows_enabled() {
            return None;
        }
        get_kept(&self.rows, &id, |_| true)
    }

    /// Keep `row` unless an eviction happened since `generation` was read.
    pub(super) fn put_row(&self, row: &Arc<ConnectionRecord>, generation: u64) {
        if !self.rows_enabled() {
            return;
        }
        let life = Duration::from_millis(self.row_ttl_ms.load(Ordering::Relaxed));
        self.keep(&self.rows, row.id, row, life, generation);
    }

    /// Keep `creds` unless an eviction happened since `generation` was read.
    pub(super) fn put(
        &self,
        key: (ConnectionId, CredentialMode),
        creds: &Arc<Credentials>,
        generation: u64,
    ) {
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
    pub(super) fn keep<K: Eq + Hash, T>(
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

    pub(super) fn evict(&self, id: ConnectionId) {
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

    pub(super) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.lock().clear();
        self.rows.lock().clear();
        self.pinned.lock().clear();
    }

    /// Pin `creds`, issued from version `version` of the secret, for while the shared cache is
    /// unavailable (at most [`NON_EXPIRING_TTL`], and never inside the refresh margin).
    pub(super) fn pin(
        &self,
        key: (ConnectionId, CredentialMode),
        creds: &Arc<Credentials>,
        version: u64,
    ) {
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

    pub(super) fn get_pinned(&self, key: (ConnectionId, CredentialMode)) -> Option<Arc<Pinned>> {
        get_kept(&self.pinned, &key, |p| {
            is_fresh(p.creds.expires_at, Utc::now())
        })
    }

    pub(super) fn unpin(&self, key: (ConnectionId, CredentialMode)) {
        self.pinned.lock().remove(&key);
    }
}
