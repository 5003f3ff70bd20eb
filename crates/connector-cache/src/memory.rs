//! The in-process cache: a map with per-entry expiry and a bound on the number of entries.
//!
//! Policy:
//! - an expired entry is never returned (`get` compares with `Instant::now()`);
//! - every write first drops the entries that have expired, oldest expiry first, through an index
//!   ordered by expiry (so pruning costs `O(log n)` per expired entry, paid once);
//! - when the cache is full and a new key arrives, the live entry closest to expiry is evicted: it is
//!   the one with the least useful life left, and for a credential cache with similar ttls it is
//!   also about the oldest.
//!
//! Locks, window counters and pub/sub channels live beside the entries (they do not count against
//! the bound, and expired locks and counters are dropped as the maps grow): they coordinate the tasks
//! of this one process, which is all an in-process cache is shared by.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connector_core::{Cache, CacheError, LockToken, Subscription};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};

/// Used instead of an expiry that `Instant` cannot represent.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Messages a subscriber may fall behind by before its subscription is closed.
const CHANNEL_CAPACITY: usize = 1024;

/// [`Cache`] in this process's memory. Cheap to share behind an `Arc`.
pub struct MemoryCache {
    max_entries: usize,
    state: Mutex<State>,
    coordination: Mutex<Coordination>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

/// Locks and window counters: key → (fence or count, expiry).
#[derive(Default)]
struct Coordination {
    locks: HashMap<String, (u64, Instant)>,
    windows: HashMap<String, (u64, Instant)>,
    last_fence: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// (expiry, insertion number) → key, ordered so the first entry expires first.
    by_expiry: BTreeMap<(Instant, u64), String>,
    next_seq: u64,
}

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    seq: u64,
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("max_entries", &self.max_entries)
            .field("len", &self.state.try_lock().map(|s| s.entries.len()))
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `max_entries` entries (at least one).
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            state: Mutex::new(State::default()),
            coordination: Mutex::new(Coordination::default()),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The number of entries held, expired ones not yet pruned included.
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// Drop the expired items of `map` once it holds `bound` of them or more.
fn prune_expired(map: &mut HashMap<String, (u64, Instant)>, now: Instant, bound: usize) {
    if map.len() >= bound {
        map.retain(|_, (_, until)| *until > now);
    }
}

impl State {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.by_expiry.remove(&(e.expires, e.seq));
        Some(e)
    }

    /// Drop every entry expired at `now`.
    fn prune(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    /// Evict the entry closest to expiry.
    fn evict_one(&mut self) {
        if let Some((_, key)) = self.by_expiry.pop_first() {
            self.entries.remove(&key);
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend_name(&self) -> &'static str {
        "memory"
    }
    fn is_shared(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        let state = self.state.lock();
        Ok(state
            .entries
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let now = Instant::now();
        let expires = expiry(now, ttl);
        let mut state = self.state.lock();
        state.prune(now);
        if state.remove(key).is_none() {
            while state.entries.len() >= self.max_entries {
                state.evict_one();
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.by_expiry.insert((expires, seq), key.to_owned());
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires,
                seq,
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.state.lock().remove(key);
        Ok(())
    }

    /// Counts the live entries removed (expired ones are removed too, uncounted).
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let keys: Vec<String> = state
            .entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        let mut n = 0;
        for k in keys {
            if state.remove(&k).is_some_and(|e| e.expires > now) {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<LockToken>, CacheError> {
        let now = Instant::now();
        let mut c = self.coordination.lock();
        if c.locks.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        prune_expired(&mut c.locks, now, self.max_entries);
        c.last_fence += 1;
        let fence = c.last_fence;
        let until = expiry(now, ttl.max(Duration::from_millis(1)));
        c.locks.insert(key.to_owned(), (fence, until));
        Ok(Some(LockToken { fence }))
    }

    async fn unlock(&self, key: &str, token: LockToken) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut c = self.coordination.lock();
        match c.locks.get(key) {
            Some((fence, until)) if *fence == token.fence && *until > now => {
                c.locks.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn incr_window(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(u64, Duration), CacheError> {
        let now = Instant::now();
        let mut c = self.coordination.lock();
        prune_expired(&mut c.windows, now, self.max_entries);
        let slot = c.windows.entry(key.to_owned()).or_insert((0, now));
        if slot.1 <= now {
            *slot = (0, expiry(now, window.max(Duration::from_millis(1))));
        }
        slot.0 += 1;
        Ok((slot.0, slot.1.saturating_duration_since(now)))
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let mut channels = self.channels.lock();
        if let Some(tx) = channels.get(channel) {
            if tx.send(message.to_vec()).is_err() {
                // Nobody listens any more.
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError> {
        let mut rx = self
            .channels
            .lock()
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        let (tx, out) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    msg = rx.recv() => match msg {
                        Ok(m) => {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                        // Fell behind (messages lost) or the cache is gone: close, so the
                        // subscriber knows it may have missed some.
                        Err(_) => return,
                    },
                }
            }
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_cache_evicts_closest_to_expiry() {
        let c = MemoryCache::new(3);
        c.set("long", b"1", Duration::from_secs(300)).await.unwrap();
        c.set("short", b"2", Duration::from_secs(10)).await.unwrap();
        c.set("mid", b"3", Duration::from_secs(100)).await.unwrap();
        c.set("new", b"4", Duration::from_secs(200)).await.unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("short").await.unwrap(), None);
        for k in ["long", "mid", "new"] {
            assert!(c.get(k).await.unwrap().is_some(), "{k}");
        }
        // Overwriting a present key evicts nothing.
        c.set("mid", b"5", Duration::from_secs(1)).await.unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("mid").await.unwrap().as_deref(), Some(&b"5"[..]));
    }

    #[tokio::test]
    async fn expired_entries_go_first_and_are_pruned_on_write() {
        let c = MemoryCache::new(2);
        c.set("a", b"1", Duration::from_millis(10)).await.unwrap();
        c.set("b", b"2", Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.set("c", b"3", Duration::from_secs(30)).await.unwrap();
        // "a" (expired) went, not "c" (which expires before "b").
        assert_eq!(c.len(), 2);
        assert!(c.get("b").await.unwrap().is_some());
        assert!(c.get("c").await.unwrap().is_some());
        // Pruning with nothing full.
        let c = MemoryCache::new(100);
        for i in 0..10 {
            c.set(&format!("k{i}"), b"x", Duration::from_millis(5))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.set("live", b"x", Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.len(), 1);
    }

    #[tokio::test]
    async fn huge_ttl_does_not_panic() {
        let c = MemoryCache::new(0);
        c.set("k", b"v", Duration::MAX).await.unwrap();
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        c.set("j", b"w", Duration::ZERO).await.unwrap();
        assert_eq!(c.get("j").await.unwrap(), None);
        assert_eq!(
            c.get("k").await.unwrap(),
            None,
            "max_entries 0 holds one entry"
        );
    }
}
