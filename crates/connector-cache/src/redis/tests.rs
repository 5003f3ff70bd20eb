//! Unit tests of the Redis cache's helpers.

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
