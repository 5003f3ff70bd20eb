//! Test support for Aurora Connectors: real OpenBao, moto and oauth2-mock-server peers, fresh PostgreSQL schemas, the Redis
//! URL, unique key prefixes, free loopback ports, and a TCP relay that can black-hole (fault tests).
//!
//! Everything here is for tests: failures are reported as `anyhow` errors with a sentence saying what
//! is missing and how to get it, or as panics in the `&'static` helpers.

use std::time::{Duration, Instant};

#[cfg(feature = "fakes")]
pub mod fakes;
mod openbao;
mod peers;
#[cfg(feature = "platform")]
mod platform;
mod postgres;
mod relay;
#[cfg(feature = "platform")]
mod stub;

pub use openbao::{shared_openbao, OpenBao};
pub use peers::{moto, oauth2_mock, Peer};
#[cfg(feature = "platform")]
pub use platform::{build_plugin, TestPlatform};
pub use postgres::{postgres_schema_url, PgSchema};
pub use relay::{Relay, RelayCounts, RelayMode};
#[cfg(feature = "platform")]
pub use stub::{refused, unavailable, Answer, DelayFn, StubBuilder, StubConnector};

/// The Redis URL of the tests: `AURORA_TEST_REDIS_URL`, or `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("AURORA_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// Whether the servers half of a suite should run. With `AURORA_TEST_REQUIRE_SERVERS=1` (set by
/// `cargo xtask test` and CI) always: a missing server then fails the test that needs it, loudly.
/// Without it (a plain `cargo test` on a machine without the servers) the servers half runs only
/// when PostgreSQL and Redis answer and OpenBao is at hand; otherwise `what` is skipped with a
/// printed notice saying what is missing.
pub fn servers_available(what: &str) -> bool {
    if std::env::var("AURORA_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v == "true") {
        return true;
    }
    let mut missing = Vec::new();
    let reachable = |url: &str, default_port: u16| {
        let rest = url.split("://").nth(1).unwrap_or(url);
        let host_port = rest
            .rsplit('@')
            .next()
            .unwrap_or(rest)
            .split(['/', '?'])
            .next()
            .unwrap_or("");
        let addr = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| {
                std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).is_ok()
            })
    };
    let pg = std::env::var("AURORA_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if !reachable(&pg, 5432) {
        missing.push("PostgreSQL");
    }
    if !reachable(&redis_url(), 6379) {
        missing.push("Redis");
    }
    let external_bao = std::env::var("AURORA_TEST_VAULT_ADDR").is_ok_and(|v| !v.trim().is_empty());
    if !external_bao && openbao::bao_binary().is_err() {
        missing.push("OpenBao");
    }
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "NOTICE: skipped {what} (servers backend): {} not available. `cargo xtask test` starts and \
         installs them and fails instead of skipping (AURORA_TEST_REQUIRE_SERVERS=1).",
        missing.join(", ")
    );
    false
}

/// The longest pause between two polls of [`poll_until`] and [`poll_until_blocking`].
const MAX_POLL_PAUSE: Duration = Duration::from_millis(50);

/// Polls `cond` until it holds and returns how long that took, or `None` once `timeout` has passed
/// without it holding. The pauses between polls start at 2 ms and double up to 50 ms. Use it (or
/// [`eventually`]) instead of a `sleep` that waits for something to happen: a background task, an
/// invalidation, a server coming up.
pub async fn poll_until(
    timeout: Duration,
    mut cond: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if cond().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        // The pause between two polls: `cond` decides, not the time slept.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL_PAUSE);
    }
}

/// [`poll_until`] that panics naming `what` when `timeout` passes first; how long it took.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    cond: impl AsyncFnMut() -> bool,
) -> Duration {
    poll_until(timeout, cond)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// [`poll_until`] for code outside a runtime (starting a child process, a `#[test]` that drives
/// one).
pub fn poll_until_blocking(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        // The pause between two polls: `cond` decides, not the time slept.
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_POLL_PAUSE);
    }
}

/// [`eventually`] for code outside a runtime.
pub fn eventually_blocking(what: &str, timeout: Duration, cond: impl FnMut() -> bool) -> Duration {
    poll_until_blocking(timeout, cond)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A key prefix that no other test (or test run) uses: `test:<tag>:<uuid>:`.
pub fn unique_prefix(tag: &str) -> String {
    format!("test:{tag}:{}:", uuid::Uuid::new_v4().simple())
}

/// A loopback TCP port that was free a moment ago (bound, then released). Another process may take it
/// before the caller binds it: callers that start a server retry on "address in use".
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port to find a free one")
}

/// A random lowercase hex string of `bytes * 2` characters.
pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique() {
        let a = unique_prefix("x");
        let b = unique_prefix("x");
        assert_ne!(a, b);
        assert!(a.starts_with("test:x:") && a.ends_with(':'));
    }

    #[test]
    fn free_port_is_bindable() {
        let p = free_port();
        assert!(p > 0);
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }

    #[tokio::test]
    async fn eventually_polls_until_the_condition_holds() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            setter.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut polls = 0;
        let took = eventually("the flag", Duration::from_secs(5), async || {
            polls += 1;
            flag.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(polls > 1);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for nothing")]
    async fn eventually_panics_at_the_deadline() {
        eventually("nothing", Duration::from_millis(50), async || false).await;
    }

    #[test]
    fn eventually_blocking_polls_and_gives_up() {
        let start = Instant::now();
        let took = eventually_blocking("a tenth of a second", Duration::from_secs(5), || {
            start.elapsed() > Duration::from_millis(100)
        });
        assert!(took >= Duration::from_millis(100));
        let r = std::panic::catch_unwind(|| {
            eventually_blocking("never", Duration::from_millis(20), || false)
        });
        assert!(r.is_err());
    }

    #[test]
    fn redis_url_has_a_default() {
        assert!(redis_url().starts_with("redis"));
    }
}
