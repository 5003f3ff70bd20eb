//! The OAuth 2.0 web-server flow with Google, over plain `reqwest`: PKCE (S256) and `state`, the
//! authorization URL, the code exchange, the refresh, the revocation and the account's identity.
//!
//! Nothing here logs a code, a token, a verifier or a state; errors are written for users and never
//! carry a response body (only Google's short `error` code, when it is a plain token).

use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use connector_core::{ConnectorError, Metrics};
use rand::RngCore;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::{GcpConfig, OAuthClientConfig, SCOPES};

mod exchange;
mod tokens;
pub use self::exchange::*;
pub use self::tokens::*;

/// The provider label of metrics.
pub const PROVIDER: &str = "gcp";
/// How long a login's `state` stays valid.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// A fresh random value: 32 bytes from the OS, base64url without padding (43 characters).
pub fn random_token() -> Zeroizing<String> {
    let mut buf = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(buf.as_mut());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(buf.as_ref()))
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// How a `state` is stored: the hex SHA-256 of the value, never the value.
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The name of the cookie that binds the login of `state` to its browser: one name per login (a
/// prefix of the state's hash, which is not secret), so two sign-ins started in one browser do not
/// overwrite each other's cookie.
pub fn browser_cookie_name(state: &str) -> String {
    format!("aurora_gcp_state_{}", &state_hash(state)[..16])
}

/// Equality of two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(u8::from(a.len() != b.len()), |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What a login's state row keeps sealed (the store sees only ciphertext): the PKCE verifier and,
/// when the login is bound to its browser, the SHA-256 (hex) of the browser cookie's value.
pub struct SealedLogin {
    pub verifier: Zeroizing<String>,
    pub browser_hash: Option<String>,
}

#[derive(serde::Serialize, Deserialize)]
struct SealedDoc<'a> {
    #[serde(borrow)]
    v: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<String>,
}

impl SealedLogin {
    /// The plaintext to seal: `{"v":verifier,"b":hash}`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let doc = SealedDoc {
            v: std::borrow::Cow::Borrowed(self.verifier.as_str()),
            b: self.browser_hash.clone(),
        };
        Zeroizing::new(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// The opened plaintext. A login stored before the browser binding existed holds the bare
    /// verifier (never starting with `{`): it is bound to no browser.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.first() != Some(&b'{') {
            let v = std::str::from_utf8(bytes).ok()?;
            return (!v.is_empty()).then(|| Self {
                verifier: Zeroizing::new(v.to_owned()),
                browser_hash: None,
            });
        }
        let doc: SealedDoc<'_> = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            verifier: Zeroizing::new(doc.v.into_owned()),
            browser_hash: doc.b,
        })
    }

    /// Whether `cookie` (a value the request carried) is the one this login's browser was given.
    pub fn browser_matches(&self, cookie: &str) -> bool {
        self.browser_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(state_hash(cookie).as_bytes(), h.as_bytes()))
    }
}

/// The authorization URL of §2. Every query value is form-urlencoded (so `redirect_uri`'s `:` and
/// `/` are encoded); a query already in `AURORA_GCP_AUTH_URL` is kept.
pub fn authorization_url(cfg: &GcpConfig, client_id: &str, state: &str, challenge: &str) -> String {
    let mut url = cfg.auth_url.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("include_granted_scopes", "true")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state);
    url.into()
}

pub(crate) use connector_core::kit::retry_after;

#[cfg(test)]
mod tests;
