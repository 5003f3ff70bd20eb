//! One conformance suite for every `Cache` backend: the same test bodies run against the in-process
//! cache and against the real Redis at `AURORA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`),
//! each test under its own random key prefix. When Redis is unreachable the Redis tests fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_cache::{MemoryCache, RedisCache};
use connector_core::{Cache, CacheError};

fn memory() -> Arc<dyn Cache> {
    Arc::new(MemoryCache::new(10_000))
}

fn redis() -> Arc<dyn Cache> {
    Arc::new(redis_with_prefix(&aurora_testkit::unique_prefix("cache")))
}

fn redis_with_prefix(prefix: &str) -> RedisCache {
    RedisCache::connect(&aurora_testkit::redis_url(), prefix).unwrap()
}

const MINUTE: Duration = Duration::from_secs(60);

mod bodies {
    use super::*;

    /// Fails loudly (with how to start Redis) rather than letting the other bodies fail obscurely.
    pub async fn ping(c: &dyn Cache) {
        if let Err(e) = c.ping().await {
            panic!(
                "{} cache is unreachable at {}: {e}; start Redis (see shared/peers.md) or set \
                 AURORA_TEST_REDIS_URL",
                c.backend_name(),
                aurora_testkit::redis_url()
            );
        }
    }

    pub async fn set_get(c: &dyn Cache) {
        ping(c).await;
        assert_eq!(c.get("k1").await.unwrap(), None);
        c.set("k1", b"v1", MINUTE).await.unwrap();
        assert_eq!(c.get("k1").await.unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get("k2").await.unwrap(), None);
        c.set("empty", b"", MINUTE).await.unwrap();
        assert_eq!(c.get("empty").await.unwrap().as_deref(), Some(&b""[..]));
    }

    pub async fn ttl_expiry(c: &dyn Cache) {
        ping(c).await;
        c.set("short", b"v", Duration::from_millis(50))
            .await
            .unwrap();
        c.set("long", b"v", MINUTE).await.unwrap();
        assert!(c.get("short").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(c.get("short").await.unwrap(), None);
        assert!(c.get("long").await.unwrap().is_some());
        // A ttl under a millisecond is still a valid call.
        c.set("tiny", b"v", Duration::from_micros(1)).await.unwrap();
    }

    pub async fn overwrite(c: &dyn Cache) {
        ping(c).await;
        c.set("k", b"first", Duration::from_millis(60))
            .await
            .unwrap();
        c.set("k", b"second", MINUTE).await.unwrap();
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"second"[..]));
        // The new ttl replaced the old one.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"second"[..]));
    }

    pub async fn delete(c: &dyn Cache) {
        ping(c).await;
        c.set("k", b"v", MINUTE).await.unwrap();
        c.set("other", b"v", MINUTE).await.unwrap();
        c.delete("k").await.unwrap();
        assert_eq!(c.get("k").await.unwrap(), None);
        assert!(c.get("other").await.unwrap().is_some());
        c.delete("k").await.unwrap();
        c.delete("never-set").await.unwrap();
    }

    pub async fn delete_prefix(c: &dyn Cache) {
        ping(c).await;
        for i in 0..5 {
            c.set(&format!("cred:alice@x.io:scaleway:{i}"), b"v", MINUTE)
                .await
                .unwrap();
        }
        c.set("cred:alice@x.io:gcp:0", b"v", MINUTE).await.unwrap();
        c.set("cred:alice@x.io:scaleway2:0", b"v", MINUTE)
            .await
            .unwrap();
        c.set("cred:bob:scaleway:0", b"v", MINUTE).await.unwrap();
        // Glob characters in the prefix are literal.
        c.set("cred:st*r:0", b"v", MINUTE).await.unwrap();
        c.set("cred:stxr:0", b"v", MINUTE).await.unwrap();
        c.set("cred:q?[a]\\:0", b"v", MINUTE).await.unwrap();
        c.set("cred:qz[a]\\:0", b"v", MINUTE).await.unwrap();

        assert_eq!(
            c.delete_prefix("cred:alice@x.io:scaleway:").await.unwrap(),
            5
        );
        for i in 0..5 {
            let k = format!("cred:alice@x.io:scaleway:{i}");
            assert_eq!(c.get(&k).await.unwrap(), None);
        }
        for k in [
            "cred:alice@x.io:gcp:0",
            "cred:alice@x.io:scaleway2:0",
            "cred:bob:scaleway:0",
        ] {
            assert!(c.get(k).await.unwrap().is_some(), "{k}");
        }
        assert_eq!(c.delete_prefix("cred:st*").await.unwrap(), 1);
        assert!(c.get("cred:stxr:0").await.unwrap().is_some());
        assert_eq!(c.delete_prefix("cred:q?[a]\\").await.unwrap(), 1);
        assert!(c.get("cred:qz[a]\\:0").await.unwrap().is_some());
        assert_eq!(c.delete_prefix("nothing:").await.unwrap(), 0);
        // Expired keys are not counted.
        c.set("gone:1", b"v", Duration::from_millis(20))
            .await
            .unwrap();
        c.set("gone:2", b"v", MINUTE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(c.delete_prefix("gone:").await.unwrap(), 1);
    }

    pub async fn many_keys_delete_prefix(c: &dyn Cache) {
        ping(c).await;
        for i in 0..1200 {
            c.set(&format!("bulk:{i}"), b"v", MINUTE).await.unwrap();
        }
        c.set("bulkx", b"v", MINUTE).await.unwrap();
        assert_eq!(c.delete_prefix("bulk:").await.unwrap(), 1200);
        assert!(c.get("bulkx").await.unwrap().is_some());
    }

    pub async fn binary_values(c: &dyn Cache) {
        ping(c).await;
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        c.set("bin", &bytes, MINUTE).await.unwrap();
        assert_eq!(c.get("bin").await.unwrap(), Some(bytes));
        // Keys with spaces, colons and non-ASCII.
        c.set("ключ: a b", b"\x00", MINUTE).await.unwrap();
        assert_eq!(
            c.get("ключ: a b").await.unwrap().as_deref(),
            Some(&b"\x00"[..])
        );
    }

    pub async fn concurrent(c: Arc<dyn Cache>) {
        ping(&*c).await;
        let mut tasks = Vec::new();
        for i in 0..32 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                let k = format!("conc:{i}");
                c.set(&k, k.as_bytes(), MINUTE).await.unwrap();
                assert_eq!(c.get(&k).await.unwrap().as_deref(), Some(k.as_bytes()));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(c.delete_prefix("conc:").await.unwrap(), 32);
    }
}

macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn ping() {
                bodies::ping(&*$make()).await;
            }
            #[tokio::test]
            async fn set_get() {
                bodies::set_get(&*$make()).await;
            }
            #[tokio::test]
            async fn ttl_expiry() {
                bodies::ttl_expiry(&*$make()).await;
            }
            #[tokio::test]
            async fn overwrite() {
                bodies::overwrite(&*$make()).await;
            }
            #[tokio::test]
            async fn delete() {
                bodies::delete(&*$make()).await;
            }
            #[tokio::test]
            async fn delete_prefix() {
                bodies::delete_prefix(&*$make()).await;
            }
            #[tokio::test]
            async fn many_keys_delete_prefix() {
                bodies::many_keys_delete_prefix(&*$make()).await;
            }
            #[tokio::test]
            async fn binary_values() {
                bodies::binary_values(&*$make()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent() {
                bodies::concurrent($make()).await;
            }
        }
    };
}

conformance!(memory, super::memory);
conformance!(redis, super::redis);

mod redis_only {
    use super::*;

    #[tokio::test]
    async fn prefixes_isolate_caches() {
        let a = redis_with_prefix(&aurora_testkit::unique_prefix("iso-a"));
        let b = redis_with_prefix(&aurora_testkit::unique_prefix("iso-b"));
        bodies::ping(&a).await;
        a.set("k", b"from a", MINUTE).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        b.set("k", b"from b", MINUTE).await.unwrap();
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
        assert_eq!(b.delete_prefix("").await.unwrap(), 1);
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
        b.delete("k").await.unwrap();
        a.delete("k").await.unwrap();
    }

    /// A prefix with glob characters only ever touches its own keys.
    #[tokio::test]
    async fn glob_characters_in_the_key_prefix() {
        let base = aurora_testkit::unique_prefix("glob");
        let star = redis_with_prefix(&format!("{base}*:"));
        let plain = redis_with_prefix(&format!("{base}x:"));
        bodies::ping(&star).await;
        plain.set("k", b"v", MINUTE).await.unwrap();
        star.set("k", b"v", MINUTE).await.unwrap();
        assert_eq!(star.delete_prefix("").await.unwrap(), 1);
        assert!(plain.get("k").await.unwrap().is_some());
        assert_eq!(plain.delete_prefix("").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn keys_carry_the_prefix_and_a_ttl() {
        let prefix = aurora_testkit::unique_prefix("raw");
        let c = redis_with_prefix(&prefix);
        bodies::ping(&c).await;
        c.set("k", b"v", Duration::from_secs(30)).await.unwrap();
        let client =
            deadpool_redis::redis::Client::open(aurora_testkit::redis_url().as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pttl: i64 = deadpool_redis::redis::cmd("PTTL")
            .arg(format!("{prefix}k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=30_000).contains(&pttl), "pttl {pttl}");
        c.delete("k").await.unwrap();
    }

    #[tokio::test]
    async fn down_redis_is_unavailable_fast() {
        // Constructing succeeds while nothing listens: the gateway still starts.
        let c = RedisCache::connect("redis://127.0.0.1:1", "p:").unwrap();
        let t = Instant::now();
        let results = [
            c.ping().await,
            c.get("k").await.map(drop),
            c.set("k", b"v", MINUTE).await,
            c.delete("k").await,
            c.delete_prefix("k").await.map(drop),
        ];
        for r in results {
            assert!(
                matches!(r, Err(CacheError::Unavailable(_))),
                "expected Unavailable, got {r:?}"
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }

    /// A server that accepts connections but never answers is cut off by the timeouts.
    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let c = RedisCache::connect(&format!("redis://127.0.0.1:{port}"), "p:").unwrap();
        let t = Instant::now();
        let r = c.get("k").await;
        assert!(matches!(r, Err(CacheError::Unavailable(_))), "{r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        holder.abort();
    }
}
