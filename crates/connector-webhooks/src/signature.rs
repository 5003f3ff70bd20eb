//! Webhook signatures (Stripe-like): `X-Aurora-Signature: v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`
//! where `t` is the unix timestamp sent in `X-Aurora-Timestamp`.
//!
//! Signing the timestamp with the body lets a receiver refuse replays of an old request: it checks
//! the signature, then that the timestamp is recent. A signature header may carry several
//! comma-separated `v1=` values (for a secret rotation); one matching value is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The event id header (the body's `id`): the receiver's idempotency key.
pub const EVENT_ID_HEADER: &str = "X-Aurora-Event-Id";
/// The event type header (the body's `type`), for routing without parsing.
pub const EVENT_TYPE_HEADER: &str = "X-Aurora-Event-Type";
/// Unix seconds at the time of the attempt (new on every attempt).
pub const TIMESTAMP_HEADER: &str = "X-Aurora-Timestamp";
/// `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Aurora-Signature";
/// The signature scheme's prefix.
pub const SCHEME: &str = "v1";

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The timestamp header is not an integer.
    BadTimestamp,
    /// The timestamp is further than the tolerance from now (a replay, or a skewed clock).
    Stale,
    /// No `v1=` value of the header matches the body and timestamp.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadTimestamp => "the timestamp is not unix seconds",
            Self::Stale => "the timestamp is outside the tolerance",
            Self::Mismatch => "no signature matches",
        })
    }
}

impl std::error::Error for VerifyError {}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Aurora-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("{SCHEME}={}", hex::encode(tag))
}

/// Check a request as a receiver would: the signature header against the body and the timestamp
/// header (in constant time), then, with a `tolerance` in seconds, that the timestamp is within it
/// of `now` (unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
    tolerance: Option<u64>,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let matched = signature
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .filter(|(scheme, _)| *scheme == SCHEME)
        .filter_map(|(_, value)| hex::decode(value).ok())
        .any(|tag| mac(secret, ts, body).verify_slice(&tag).is_ok());
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    if let Some(tol) = tolerance {
        if now.abs_diff(ts) > tol {
            return Err(VerifyError::Stale);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test-0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"e1","type":"connection.created","data":{"accountId":"a"}}"#;

    #[test]
    fn known_vector() {
        // Python: hmac.new(b"key", b"1.The quick brown fox jumps over the lazy dog", "sha256").
        assert_eq!(
            sign(b"key", 1, b"The quick brown fox jumps over the lazy dog"),
            "v1=3ff4d3cc115b639a16dc5b217aa5c89be41d1e4b54efc356d63d0cd2a65b30f1"
        );
    }

    #[test]
    fn round_trip() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        verify(SECRET, "1700000000", BODY, &sig, 1_700_000_100, Some(300)).unwrap();
        verify(SECRET, "1700000000", BODY, &sig, 0, None).unwrap();
    }

    #[test]
    fn tampered_body_fails() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        let tampered = br#"{"id":"e1","type":"connection.created","data":{"accountId":"b"}}"#;
        assert_eq!(
            verify(SECRET, "1700000000", tampered, &sig, 1_700_000_000, None),
            Err(VerifyError::Mismatch)
        );
        // One flipped byte anywhere.
        let mut flipped = BODY.to_vec();
        flipped[10] ^= 1;
        assert_eq!(
            verify(SECRET, "1700000000", &flipped, &sig, 1_700_000_000, None),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn tampered_timestamp_secret_or_signature_fails() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, "1700000001", BODY, &sig, 1_700_000_000, None),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"another-secret", "1700000000", BODY, &sig, 0, None),
            Err(VerifyError::Mismatch)
        );
        let mut bad = sig.clone();
        bad.pop();
        bad.push(if sig.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            verify(SECRET, "1700000000", BODY, &bad, 0, None),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, "1700000000", BODY, "v0=00", 0, None),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, "soon", BODY, &sig, 0, None),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn stale_timestamp_fails_and_rotation_list_passes() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, "1700000000", BODY, &sig, 1_700_001_000, Some(300)),
            Err(VerifyError::Stale)
        );
        let both = format!("v1=deadbeef, {sig}");
        verify(SECRET, "1700000000", BODY, &both, 1_700_000_000, Some(300)).unwrap();
    }
}
