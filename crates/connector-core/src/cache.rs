//! The cache trait. Implementations: Redis (deadpool-redis) and an in-process map, in `connector-cache`.
//!
//! Values are opaque bytes; the credential broker encrypts what it caches before calling `set`.
//!
//! Beside key-value storage the trait offers what replicas need to coordinate through the shared
//! cache: a lock with a fencing token ([`Cache::try_lock`], [`Cache::unlock`]), fixed-window counters
//! ([`Cache::incr_window`], for rate limits) and publish/subscribe ([`Cache::publish`],
//! [`Cache::subscribe`], to invalidate per-process copies). With Redis these are shared by every
//! replica on the same key prefix; the in-process cache gives the same semantics within one process.
//! Their default implementations answer `Unavailable`, which callers treat like a cache that is down
//! (each falls back to per-process behaviour), so a cache without them stays correct for one process.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::CacheError;

/// Proof of holding a lock taken with [`Cache::try_lock`].
///
/// `fence` is a fencing token: it grows with every lock granted by the cache (across all keys), so
/// a later holder always has a larger token than an earlier one whose lease ran out. [`Cache::unlock`]
/// compares it, so a holder whose lease expired cannot release the lock of the next holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockToken {
    pub fence: u64,
}

/// Messages of one [`Cache::subscribe`] subscription. The channel closes when the subscription is
/// lost (the connection to Redis dropped, or the subscriber fell behind): messages published while
/// nobody listened are gone, so a subscriber that sees the end must assume it missed some.
pub type Subscription = tokio::sync::mpsc::Receiver<Vec<u8>>;

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// `redis` or `memory`: for logs and readiness, never for decisions (see [`Cache::is_shared`]).
    fn backend_name(&self) -> &'static str;

    /// Whether other processes see what this cache holds (a server such as Redis). An in-process
    /// cache is not shared: there is no other replica to tell about a change, and nothing to copy
    /// into a per-process tier in front of it.
    fn is_shared(&self) -> bool;

    async fn ping(&self) -> Result<(), CacheError>;

    /// The value if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Store with a time to live (at least one millisecond).
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// Remove one key; absent keys are fine.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Remove every key that starts with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError>;

    /// Take the lock `key` for at most `ttl` (the lease; at least one millisecond) if nobody holds
    /// it: `Some(token)` when taken, `None` when another holder's lease is still running. A lock does
    /// not collide with a value stored by [`Cache::set`] under the same name.
    ///
    /// Default: `Unavailable` (no shared locks; callers fall back to per-process exclusion).
    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<LockToken>, CacheError> {
        let _ = (key, ttl);
        Err(CacheError::Unavailable(format!(
            "{} cache has no locks",
            self.backend_name()
        )))
    }

    /// Release the lock `key` if `token` still holds it; `false` when the lease had run out (and the
    /// lock is free or held by someone else, whom this call leaves alone).
    ///
    /// Default: `Unavailable`.
    async fn unlock(&self, key: &str, token: LockToken) -> Result<bool, CacheError> {
        let _ = (key, token);
        Err(CacheError::Unavailable(format!(
            "{} cache has no locks",
            self.backend_name()
        )))
    }

    /// Count one event in the fixed window `key`: the first event starts a window of length
    /// `window`; returns the number of events in the current window (this one included) and the
    /// time left until the window ends and the count starts again from zero. A counter does not
    /// collide with a value or a lock of the same name.
    ///
    /// Default: `Unavailable` (callers count in process instead).
    async fn incr_window(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(u64, Duration), CacheError> {
        let _ = (key, window);
        Err(CacheError::Unavailable(format!(
            "{} cache has no counters",
            self.backend_name()
        )))
    }

    /// Send `message` to every current subscriber of `channel` (on every replica sharing the
    /// cache, the sender's own subscribers included). Delivery is at most once: nobody listening
    /// means nobody hears it.
    ///
    /// Default: `Unavailable`.
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let _ = (channel, message);
        Err(CacheError::Unavailable(format!(
            "{} cache has no publish/subscribe",
            self.backend_name()
        )))
    }

    /// Listen to `channel`. When this returns, the subscription is in place: anything published
    /// afterwards is received, until the returned [`Subscription`] closes.
    ///
    /// Default: `Unavailable`.
    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError> {
        let _ = channel;
        Err(CacheError::Unavailable(format!(
            "{} cache has no publish/subscribe",
            self.backend_name()
        )))
    }
}
