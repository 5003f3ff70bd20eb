//! Cache entries: the key id that names the sealing key, the entry framing, and the cache keys.

use super::*;

/// The id of a cache key: [`KEY_ID_LEN`] bytes of SHA-256 over a label and the key. It names a key
/// (in the cache entries and the logs) without revealing anything of it.
pub type KeyId = [u8; KEY_ID_LEN];
pub const KEY_ID_LEN: usize = 8;
/// The first byte of a cache entry that names the key that sealed it: `ENTRY_WITH_KEY_ID ‖ key id
/// ‖ sealed`. Entries of the first format are the bare sealed blob, whose first byte is the
/// crypto module's format byte (1).
pub(super) const ENTRY_WITH_KEY_ID: u8 = b'K';
/// At most this many distinct key ids are remembered (and logged) as undecryptable.
pub(super) const UNDECRYPTABLE_LOGGED_MAX: usize = 64;

/// The [`KeyId`] of `key`.
pub fn key_id(key: &SealingKey) -> KeyId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"aurora-cache-key-id/v1\0");
    h.update(key.expose_bytes());
    let digest = h.finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// [`key_id`] in hex, for logs.
pub fn key_id_hex(key: &SealingKey) -> String {
    hex_id(&key_id(key))
}

pub(super) fn hex_id(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Split a stored entry into the id of the key that sealed it (`None` for the first format) and
/// the sealed blob.
pub(super) fn split_entry(raw: &[u8]) -> (Option<KeyId>, &[u8]) {
    match raw.split_first() {
        Some((&ENTRY_WITH_KEY_ID, rest)) if rest.len() >= KEY_ID_LEN => {
            let (id, sealed) = rest.split_at(KEY_ID_LEN);
            (id.try_into().ok(), sealed)
        }
        _ => (None, raw),
    }
}

/// The cache key of one connection's credentials for one mode.
pub fn cache_key(id: ConnectionId, mode: CredentialMode) -> String {
    format!("cred:{id}:{}", mode.as_str())
}

pub(super) fn lock_key(key: &str) -> String {
    format!("refresh:{key}")
}

pub(super) fn handoff_key(key: &str) -> String {
    format!("handoff:{key}")
}

pub(super) fn is_fresh(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match expires_at {
        None => true,
        Some(e) => e - now > chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default(),
    }
}

pub(super) fn not_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|e| e > now)
}

pub(super) fn missing_secret(conn: &ConnectionRecord) -> ApiError {
    tracing::error!(connection = %conn.id, "connection has no secret in the secret store");
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        crate::error::ErrorCode::NeedsReconnect,
        "the connection's credentials are missing; reconnect the account",
    )
}
