//! The Redis cache, over a deadpool-redis pool.
//!
//! Every key is `key_prefix ‖ key`. Pool waits, connection creation and recycling are bounded to one
//! second, and so is every command, so a Redis that is down or stuck answers `Unavailable` within
//! about a second instead of holding requests. The pool is lazy: [`RedisCache::connect`] opens no
//! connection and succeeds while Redis is down (readiness then reports the cache as down).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use connector_core::{Cache, CacheError};
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

/// Bound of every pool operation and every command.
const TIMEOUT: Duration = Duration::from_secs(1);
const POOL_SIZE: usize = 16;
/// Keys asked for per SCAN round.
const SCAN_COUNT: usize = 500;

/// [`Cache`] on Redis.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    key_prefix: String,
}

impl fmt::Debug for RedisCache {
    // The URL may hold a password: it is not kept, and not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.key_prefix)
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
        Ok(Self {
            pool,
            key_prefix: key_prefix.to_owned(),
        })
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
        bounded(what, run).await
    }
}

/// Bound `fut` by [`TIMEOUT`] and map its failure.
async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = Result<T, Failure>>,
) -> Result<T, CacheError> {
    let failure = match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(f)) => f,
        Err(_) => Failure::Timeout,
    };
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
    Err(CacheError::Unavailable(format!("redis {what}: {detail}")))
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

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let pong: String = self.query("ping", &redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CacheError::Unavailable(format!(
                "redis ping: unexpected answer {pong:?}"
            )))
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.full_key(key));
        self.query("get", &cmd).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl));
        self.query::<()>("set", &cmd).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.full_key(key));
        self.query::<u64>("delete", &cmd).await.map(drop)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}*", escape_glob(&self.full_key(prefix)));
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.query("delete_prefix scan", &scan).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                for k in &keys {
                    unlink.arg(k.as_slice());
                }
                deleted += self.query::<u64>("delete_prefix unlink", &unlink).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_escaped() {
        assert_eq!(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
        assert_eq!(escape_glob("aurora:u@x.io:"), "aurora:u@x.io:");
    }

    #[test]
    fn ttls_are_bounded() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(10)), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert!(ttl_millis(Duration::MAX) <= i64::MAX as u64);
    }

    #[test]
    fn malformed_url_is_an_error_and_hides_nothing() {
        let e = RedisCache::connect("http//:secretpw@nowhere", "p:").unwrap_err();
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }

    #[test]
    fn debug_hides_the_url() {
        let c = RedisCache::connect("redis://:secretpw@127.0.0.1:6379", "p:").unwrap();
        assert!(!format!("{c:?}").contains("secretpw"));
    }
}
