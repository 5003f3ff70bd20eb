//! The Redis cache, over a deadpool-redis pool.
//!
//! Every key is `key_prefix ‖ key`. Pool waits, connection creation and recycling are bounded to one
//! second, and so is every command, so a Redis that is down or stuck answers `Unavailable` within
//! about a second instead of holding requests. The pool is lazy: [`RedisCache::connect`] opens no
//! connection and succeeds while Redis is down (readiness then reports the cache as down).
//!
//! Every call goes through a circuit breaker ([`crate::breaker`]): after a few timeouts or
//! connection errors in a row, calls answer `Unavailable` at once, without touching Redis, until a
//! probe at the end of a back-off period gets an answer. The probe is a `PING` sent in the
//! background by the first call after the period (which is answered at once like the others), so
//! no caller ever waits on a Redis that may still be silent. A Redis that accepts connections but
//! never answers so costs the first few calls their timeout, then nothing. Opening the breaker also
//! ends every subscription (their subscribers must assume they miss messages from then on).
//!
//! Coordination between replicas, all under the same key prefix:
//! - locks: `SET`-if-absent with a lease at `‹prefix›lock:‹key›`, holding a fencing token taken from
//!   the counter `‹prefix›lock-fence` (`INCR`), in one Lua script; unlock is a Lua compare-and-delete
//!   on the token;
//! - window counters: `INCR` + `PEXPIRE` on the first event at `‹prefix›window:‹key›`, in one script;
//! - pub/sub: `PUBLISH` on `‹prefix›‹channel›`; each subscription holds its own connection (not a
//!   pooled one), pings it every [`PUBSUB_PING`] and closes the subscription when a pong does not
//!   come within [`PUBSUB_PING_DEADLINE`] (so a silent Redis ends it within a second), or when the
//!   circuit breaker opens.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connector_core::{Cache, CacheError, LockToken, Metrics, Subscription};
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use futures::StreamExt;

use crate::breaker::{Breaker, BreakerConfig, Outcome, Permit};

mod cache;

/// Bound of every pool operation and every command.
const TIMEOUT: Duration = Duration::from_secs(1);
const POOL_SIZE: usize = 16;
/// Keys asked for per SCAN round.
const SCAN_COUNT: usize = 500;
/// How often a subscription checks that its connection still answers.
pub const PUBSUB_PING: Duration = Duration::from_millis(500);
/// How long a subscription waits for the pong before it closes: with [`PUBSUB_PING`], a Redis that
/// stops answering ends every subscription within a second.
pub const PUBSUB_PING_DEADLINE: Duration = Duration::from_millis(500);
/// Messages a subscriber may fall behind by before its subscription is closed.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// Take the lock `KEYS[1]` for `ARGV[1]` ms if it is free, with a fencing token from `KEYS[2]`.
const TRY_LOCK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return fence";

/// Delete the lock `KEYS[1]` only if it still holds the token `ARGV[1]`.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0";

/// Count one event in the window `KEYS[1]`; the first event starts a window of `ARGV[1]` ms.
const INCR_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}";

/// [`Cache`] on Redis.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    /// For subscriptions, which need a connection of their own. Holds the URL: never printed.
    client: redis::Client,
    key_prefix: String,
    /// Shared by the clones, like the pool.
    breaker: Arc<Breaker>,
}

impl fmt::Debug for RedisCache {
    // The URL may hold a password: it is not kept, and not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.key_prefix)
            .field("breaker", &self.breaker.config())
            .finish_non_exhaustive()
    }
}

/// A failure before or during a command.
enum Failure {
    Timeout,
    Pool(deadpool_redis::PoolError),
    Redis(RedisError),
}

impl RedisCache {
    /// Build the pool for `url` (`redis://[:password@]host:port[/db]`). Fails only on a malformed URL.
    pub fn connect(url: &str, key_prefix: &str) -> Result<Self, CacheError> {
        let mut cfg = Config::from_url(url);
        cfg.pool = Some(PoolConfig {
            max_size: POOL_SIZE,
            timeouts: Timeouts {
                wait: Some(TIMEOUT),
                create: Some(TIMEOUT),
                recycle: Some(TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| CacheError::Unavailable(format!("redis configuration refused: {e}")))?;
        // The error names the kind of problem, never the URL (which may hold a password).
        let client = redis::Client::open(url).map_err(|e| {
            CacheError::Unavailable(format!("redis configuration refused: {:?}", e.kind()))
        })?;
        Ok(Self {
            pool,
            client,
            key_prefix: key_prefix.to_owned(),
            breaker: Arc::new(Breaker::new(BreakerConfig::default())),
        })
    }

    /// Use this circuit breaker configuration instead of the default (call before cloning: clones
    /// share one breaker).
    #[must_use]
    pub fn with_breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Arc::new(Breaker::new(config));
        self
    }

    /// Report the circuit breaker's state to `metrics` (`aurora_cache_breaker_open`,
    /// `aurora_cache_breaker_skipped_total`, `aurora_cache_breaker_probes_total`).
    pub fn report_to(&self, metrics: Arc<Metrics>) {
        self.breaker.report_to(metrics);
    }

    /// Whether the circuit breaker is open (or probing): calls answer `Unavailable` at once.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The prefix added to every key.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Run one command on a pooled connection, within [`TIMEOUT`] for the connection and the command.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, CacheError> {
        let run = async {
            let mut conn = self.pool.get().await.map_err(Failure::Pool)?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(Failure::Redis)
        };
        self.bounded(what, run).await
    }

    /// Run a Lua script (`EVAL`; the scripts are a few lines, so no script cache is needed).
    async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        body: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, CacheError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
        self.query(what, &cmd).await
    }

    /// Run `fut` if the circuit breaker lets it (else `Unavailable` at once), bounded by
    /// [`TIMEOUT`]; tell the breaker how it ended and map its failure.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, CacheError> {
        let skipped = || {
            CacheError::Unavailable(format!(
                "redis {what}: skipped, the circuit breaker is open after timeouts or connection \
                 errors"
            ))
        };
        let Some(permit) = self.breaker.admit() else {
            return Err(skipped());
        };
        if permit.is_probe() {
            self.spawn_probe(permit);
            return Err(skipped());
        }
        let failure = match tokio::time::timeout(TIMEOUT, fut).await {
            Ok(Ok(v)) => {
                permit.finish(Outcome::Answered);
                return Ok(v);
            }
            Ok(Err(f)) => f,
            Err(_) => Failure::Timeout,
        };
        permit.finish(failure.outcome());
        Err(failure_error(what, failure))
    }

    /// The half-open probe: a `PING` in the background, bounded by [`TIMEOUT`]; its outcome closes
    /// the breaker or opens it again.
    fn spawn_probe(&self, permit: Permit) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let ping = async {
                let mut conn = pool.get().await.map_err(Failure::Pool)?;
                redis::cmd("PING")
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .map_err(Failure::Redis)
            };
            let outcome = match tokio::time::timeout(TIMEOUT, ping).await {
                Ok(Ok(_)) => Outcome::Answered,
                Ok(Err(f)) => f.outcome(),
                Err(_) => Outcome::Failed,
            };
            permit.finish(outcome);
        });
    }
}

impl Failure {
    /// Whether Redis answered (an error reply) or could not be reached in time.
    fn outcome(&self) -> Outcome {
        let unreachable = |e: &RedisError| {
            e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
        };
        match self {
            Failure::Redis(e) | Failure::Pool(deadpool_redis::PoolError::Backend(e)) => {
                if unreachable(e) {
                    Outcome::Failed
                } else {
                    Outcome::Answered
                }
            }
            Failure::Timeout | Failure::Pool(_) => Outcome::Failed,
        }
    }
}

/// The `Unavailable` error of a failed call.
fn failure_error(what: &str, failure: Failure) -> CacheError {
    let detail = match failure {
        Failure::Timeout => format!("no answer within {} ms", TIMEOUT.as_millis()),
        Failure::Pool(deadpool_redis::PoolError::Timeout(t)) => {
            format!("pool timed out ({t:?})")
        }
        Failure::Pool(deadpool_redis::PoolError::Backend(e)) | Failure::Redis(e) => {
            redis_detail(&e)
        }
        Failure::Pool(e) => e.to_string(),
    };
    CacheError::Unavailable(format!("redis {what}: {detail}"))
}

/// Redis error words: the kind and the server's message (which never echoes a value).
fn redis_detail(e: &RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    }
}

/// Escape the glob characters of a Redis MATCH pattern so `s` matches literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Redis wants at least one millisecond; absurd ttls are capped.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX / 2)
        .clamp(1, i64::MAX as u64 / 2)
}

#[cfg(test)]
mod tests;
