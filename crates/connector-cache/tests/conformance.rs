//! One conformance suite for every `Cache` backend: the same test bodies run against the in-process
//! cache and against the real Redis at `AURORA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`),
//! each test under its own random key prefix. When Redis is unreachable the Redis tests fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_cache::{MemoryCache, RedisCache};
use connector_core::{Cache, CacheError, LockToken};

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
                "{} cache is unreachable at {}: {e}; start Redis (`cargo xtask services` does) or set \
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
        // Not synchronization: the real ttl is what is tested, so it must pass.
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
        // The new ttl replaced the old one. Not synchronization: the old ttl must really pass.
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
        // Not synchronization: the real ttl must pass.
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

    pub async fn lock_excludes_and_fences(c: &dyn Cache) {
        ping(c).await;
        let a = c.try_lock("L", MINUTE).await.unwrap().expect("free lock");
        assert_eq!(c.try_lock("L", MINUTE).await.unwrap(), None, "held");
        // Another lock name is independent, and values of the same name are not locks.
        let other = c.try_lock("L2", MINUTE).await.unwrap().expect("other lock");
        assert!(other.fence > a.fence, "fencing tokens grow");
        c.set("L", b"value", MINUTE).await.unwrap();
        assert_eq!(c.try_lock("L", MINUTE).await.unwrap(), None);
        assert_eq!(c.get("L").await.unwrap().as_deref(), Some(&b"value"[..]));
        // Only the holder's token releases it.
        let forged = LockToken {
            fence: a.fence + 1_000_000,
        };
        assert!(!c.unlock("L", forged).await.unwrap());
        assert_eq!(c.try_lock("L", MINUTE).await.unwrap(), None);
        assert!(c.unlock("L", a).await.unwrap());
        assert!(!c.unlock("L", a).await.unwrap(), "released once");
        let b = c.try_lock("L", MINUTE).await.unwrap().expect("free again");
        assert!(b.fence > other.fence);
        assert!(c.unlock("L", b).await.unwrap());
        assert!(c.unlock("L2", other).await.unwrap());
    }

    pub async fn lock_lease_expires(c: &dyn Cache) {
        ping(c).await;
        let a = c
            .try_lock("lease", Duration::from_millis(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.try_lock("lease", MINUTE).await.unwrap(), None);
        // Not synchronization: the real lease must run out (polling would accept any length).
        tokio::time::sleep(Duration::from_millis(150)).await;
        let b = c
            .try_lock("lease", MINUTE)
            .await
            .unwrap()
            .expect("the lease ran out");
        assert!(b.fence > a.fence);
        // The stale holder cannot release the new holder's lock.
        assert!(!c.unlock("lease", a).await.unwrap());
        assert_eq!(c.try_lock("lease", MINUTE).await.unwrap(), None);
        assert!(c.unlock("lease", b).await.unwrap());
    }

    /// Many contenders at once: exactly one wins.
    pub async fn lock_one_winner(c: Arc<dyn Cache>) {
        ping(&*c).await;
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                c.try_lock("race", MINUTE).await.unwrap()
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(tok) = t.await.unwrap() {
                winners.push(tok);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert!(c.unlock("race", winners[0]).await.unwrap());
    }

    pub async fn window_counts_and_resets(c: &dyn Cache) {
        ping(c).await;
        let w = Duration::from_millis(300);
        let (n, left) = c.incr_window("rl:a", w).await.unwrap();
        assert_eq!(n, 1);
        assert!(left <= w && left > Duration::from_millis(100), "{left:?}");
        assert_eq!(c.incr_window("rl:a", w).await.unwrap().0, 2);
        assert_eq!(c.incr_window("rl:a", w).await.unwrap().0, 3);
        // Separate keys count separately, and values of the same name are not counters.
        assert_eq!(c.incr_window("rl:b", w).await.unwrap().0, 1);
        assert_eq!(c.get("rl:a").await.unwrap(), None);
        // Not synchronization: the real window must pass.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (n, left) = c.incr_window("rl:a", w).await.unwrap();
        assert_eq!(n, 1, "a new window");
        assert!(left > Duration::from_millis(100));
    }

    pub async fn window_concurrent(c: Arc<dyn Cache>) {
        ping(&*c).await;
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                c.incr_window("rl:conc", MINUTE).await.unwrap().0
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=40).collect::<Vec<u64>>());
    }

    pub async fn publish_subscribe(c: &dyn Cache) {
        ping(c).await;
        // Nobody listening is fine.
        c.publish("ch", b"lost").await.unwrap();
        let mut a = c.subscribe("ch").await.unwrap();
        let mut b = c.subscribe("ch").await.unwrap();
        let mut other = c.subscribe("other").await.unwrap();
        c.publish("ch", b"one").await.unwrap();
        c.publish("ch", b"\x00two").await.unwrap();
        for sub in [&mut a, &mut b] {
            for want in [&b"one"[..], &b"\x00two"[..]] {
                let got = tokio::time::timeout(Duration::from_secs(2), sub.recv())
                    .await
                    .expect("delivered")
                    .expect("open");
                assert_eq!(got, want);
            }
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(100), other.recv())
                .await
                .is_err(),
            "another channel hears nothing"
        );
        // A dropped subscriber does not disturb the others.
        drop(a);
        c.publish("ch", b"three").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"three");
    }
}

/// The in-process backend always runs; the server one unless it is unavailable and not required
/// (see `aurora_testkit::servers_available`).
fn available(backend: &str) -> bool {
    backend == "memory" || aurora_testkit::servers_available(backend)
}

macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn ping() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::ping(&*$make()).await;
            }
            #[tokio::test]
            async fn set_get() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::set_get(&*$make()).await;
            }
            #[tokio::test]
            async fn ttl_expiry() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::ttl_expiry(&*$make()).await;
            }
            #[tokio::test]
            async fn overwrite() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::overwrite(&*$make()).await;
            }
            #[tokio::test]
            async fn delete() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::delete(&*$make()).await;
            }
            #[tokio::test]
            async fn delete_prefix() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::delete_prefix(&*$make()).await;
            }
            #[tokio::test]
            async fn many_keys_delete_prefix() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::many_keys_delete_prefix(&*$make()).await;
            }
            #[tokio::test]
            async fn binary_values() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::binary_values(&*$make()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::concurrent($make()).await;
            }
            #[tokio::test]
            async fn lock_excludes_and_fences() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::lock_excludes_and_fences(&*$make()).await;
            }
            #[tokio::test]
            async fn lock_lease_expires() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::lock_lease_expires(&*$make()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lock_one_winner() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::lock_one_winner($make()).await;
            }
            #[tokio::test]
            async fn window_counts_and_resets() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::window_counts_and_resets(&*$make()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn window_concurrent() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::window_concurrent($make()).await;
            }
            #[tokio::test]
            async fn publish_subscribe() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                bodies::publish_subscribe(&*$make()).await;
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
            c.try_lock("k", MINUTE).await.map(drop),
            c.unlock("k", LockToken { fence: 1 }).await.map(drop),
            c.incr_window("k", MINUTE).await.map(drop),
            c.publish("k", b"m").await,
            c.subscribe("k").await.map(drop),
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

    /// Two clients on one prefix (two replicas) share locks, counters and channels; another prefix
    /// (another deployment) shares none of them.
    #[tokio::test]
    async fn replicas_share_coordination() {
        let prefix = aurora_testkit::unique_prefix("shared");
        let r1 = redis_with_prefix(&prefix);
        let r2 = redis_with_prefix(&prefix);
        let elsewhere = redis_with_prefix(&aurora_testkit::unique_prefix("elsewhere"));
        bodies::ping(&r1).await;
        let t = r1.try_lock("L", MINUTE).await.unwrap().unwrap();
        assert_eq!(r2.try_lock("L", MINUTE).await.unwrap(), None);
        // Another deployment's lock of the same name is another lock.
        let e = elsewhere.try_lock("L", MINUTE).await.unwrap().unwrap();
        assert!(
            r2.unlock("L", t).await.unwrap(),
            "the token, not the client, holds it"
        );
        assert_eq!(r1.incr_window("w", MINUTE).await.unwrap().0, 1);
        assert_eq!(r2.incr_window("w", MINUTE).await.unwrap().0, 2);
        assert_eq!(elsewhere.incr_window("w", MINUTE).await.unwrap().0, 1);
        let mut sub = r2.subscribe("ch").await.unwrap();
        let mut foreign = elsewhere.subscribe("ch").await.unwrap();
        r1.publish("ch", b"hello").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"hello");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), foreign.recv())
                .await
                .is_err()
        );
        // The lock and counter keys carry the prefix and a ttl.
        let client =
            deadpool_redis::redis::Client::open(aurora_testkit::redis_url().as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pttl: i64 = deadpool_redis::redis::cmd("PTTL")
            .arg(format!("{prefix}window:w"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=60_000).contains(&pttl), "pttl {pttl}");
        assert!(elsewhere.unlock("L", e).await.unwrap());
    }

    /// A subscription whose connection is cut closes, so the subscriber knows it missed messages.
    /// The cut is made by a TCP relay in front of Redis, so no other client is touched.
    #[tokio::test]
    async fn cut_subscription_closes() {
        let upstream = url::Url::parse(&aurora_testkit::redis_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            upstream.host_str().unwrap(),
            upstream.port().unwrap_or(6379)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let held = Arc::clone(&links);
        let relay = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                held.lock().push(tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        let c = RedisCache::connect(
            &format!("redis://127.0.0.1:{port}"),
            &aurora_testkit::unique_prefix("cut"),
        )
        .unwrap();
        bodies::ping(&c).await;
        let mut sub = c.subscribe("ch").await.unwrap();
        c.publish("ch", b"before").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"before");
        for link in links.lock().drain(..) {
            link.abort();
        }
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while sub.recv().await.is_some() {}
        })
        .await;
        assert!(end.is_ok(), "the subscription did not close");
        relay.abort();
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

    /// `host:port` of the test Redis.
    fn redis_upstream() -> String {
        let url = url::Url::parse(&aurora_testkit::redis_url()).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(6379))
    }

    fn assert_unavailable<T: std::fmt::Debug>(r: Result<T, CacheError>) {
        assert!(matches!(r, Err(CacheError::Unavailable(_))), "{r:?}");
    }

    /// A Redis that accepts but never answers opens the breaker after three timeouts; while it is
    /// open calls are answered at once and nothing reaches Redis; once Redis answers again a probe
    /// closes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn black_hole_opens_the_breaker_and_an_answer_closes_it() {
        use aurora_testkit::{Relay, RelayMode};
        use connector_cache::BreakerConfig;
        let relay = Relay::start(&redis_upstream(), RelayMode::Forward)
            .await
            .unwrap();
        let metrics = Arc::new(connector_core::Metrics::new());
        let c = RedisCache::connect(&relay.redis_url(), &aurora_testkit::unique_prefix("bh"))
            .unwrap()
            .with_breaker(BreakerConfig {
                failures: 3,
                open_for: Duration::from_millis(500),
                open_max: Duration::from_secs(1),
            });
        c.report_to(metrics.clone());
        bodies::ping(&c).await;
        c.set("k", b"v", MINUTE).await.unwrap();
        assert_eq!(metrics.cache_breaker_open.get(), 0);

        relay.set(RelayMode::HoldAll);
        let (a, b, d) = tokio::join!(c.get("k"), c.get("k"), c.get("k"));
        for r in [a, b, d] {
            assert_unavailable(r);
        }
        assert!(c.breaker_open());
        assert_eq!(metrics.cache_breaker_open.get(), 1);

        // Between two probes nothing reaches the relay. A window during which a probe went out
        // proves nothing and is tried again.
        let mut clean = 0;
        for _ in 0..20 {
            let before = (relay.counts(), metrics.cache_breaker_probes.get());
            let skipped = metrics.cache_breaker_skipped.get();
            for _ in 0..50 {
                assert_unavailable(c.get("k").await);
            }
            if metrics.cache_breaker_probes.get() == before.1 {
                assert_eq!(
                    relay.counts(),
                    before.0,
                    "a call reached Redis while the breaker was open"
                );
                assert_eq!(metrics.cache_breaker_skipped.get() - skipped, 50);
                clean += 1;
                break;
            }
        }
        assert_eq!(clean, 1, "no window without a probe");

        relay.set(RelayMode::Forward);
        aurora_testkit::eventually(
            "the breaker to close",
            Duration::from_secs(20),
            async || c.ping().await.is_ok(),
        )
        .await;
        assert!(!c.breaker_open());
        assert_eq!(metrics.cache_breaker_open.get(), 0);
        assert!(metrics.cache_breaker_probes.get() >= 1);
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    /// Opening the breaker ends subscriptions, even one whose own connection still answers: its
    /// subscriber must stop trusting that it hears everything. While open, subscribing is refused
    /// at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opening_the_breaker_ends_subscriptions() {
        use aurora_testkit::{Relay, RelayMode};
        use connector_cache::BreakerConfig;
        let relay = Relay::start(&redis_upstream(), RelayMode::Forward)
            .await
            .unwrap();
        let prefix = aurora_testkit::unique_prefix("trip");
        let c = RedisCache::connect(&relay.redis_url(), &prefix)
            .unwrap()
            .with_breaker(BreakerConfig {
                failures: 3,
                open_for: Duration::from_secs(600),
                open_max: Duration::from_secs(600),
            });
        let direct = redis_with_prefix(&prefix);
        // The subscription has its own connection; the pool has none yet.
        let mut sub = c.subscribe("ch").await.unwrap();
        // New connections are held from now on; the subscription's is still relayed.
        relay.set(RelayMode::HoldNew);
        direct.publish("ch", b"still heard").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"still heard");

        let (a, b, d) = tokio::join!(c.get("k"), c.get("k"), c.get("k"));
        for r in [a, b, d] {
            assert_unavailable(r);
        }
        assert!(c.breaker_open());
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while sub.recv().await.is_some() {}
        })
        .await;
        assert!(
            end.is_ok(),
            "the subscription outlived the breaker's opening"
        );
        let before = relay.counts();
        assert_unavailable(c.subscribe("ch").await.map(drop));
        assert_eq!(relay.counts(), before);
    }
}
