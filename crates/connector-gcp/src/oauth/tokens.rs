//! What Google's token endpoint answers: tokens (never in `Debug`), the identity in the ID token, and OAuth error codes.

use super::*;

/// A token endpoint answer. `Debug` shows no token.
#[derive(Deserialize)]
pub struct TokenResponse {
    #[serde(with = "connector_core::secret::serde_secret")]
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default, deserialize_with = "opt_secret")]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default, deserialize_with = "opt_secret")]
    pub id_token: Option<SecretString>,
}

pub(super) fn opt_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(SecretString::from))
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    /// When the access token stops working (`expires_in`, default one hour).
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let secs = self.expires_in.unwrap_or(3600).clamp(0, 7 * 24 * 3600);
        now + chrono::Duration::seconds(secs)
    }

    pub fn token_type(&self) -> &str {
        self.token_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("Bearer")
    }
}

/// The account behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: Option<String>,
}

impl Identity {
    /// The connection's `accountId`: the e-mail, else the subject (oauth2-mock-server's userinfo and
    /// id_token carry no e-mail).
    pub fn account_id(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.sub)
    }
}

#[derive(Deserialize)]
pub(super) struct UserInfo {
    #[serde(default)]
    pub(super) sub: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct IdTokenClaims {
    #[serde(default)]
    pub(super) sub: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) aud: Option<serde_json::Value>,
}

/// The `sub` and `email` claims of an id_token received straight from the token endpoint (over TLS
/// from Google, which OpenID Connect Core §3.1.3.7 accepts in place of a signature check). Claims of
/// a token issued to another client (`aud`), or naming no audience at all (`aud` is REQUIRED by
/// OpenID Connect Core §2), are ignored.
pub fn id_token_identity(id_token: &str, client_id: &str) -> Option<Identity> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let claims: IdTokenClaims = serde_json::from_slice(&bytes).ok()?;
    let aud_ok = match &claims.aud {
        None => false,
        Some(serde_json::Value::String(a)) => a == client_id,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a == client_id),
        Some(_) => false,
    };
    if !aud_ok {
        return None;
    }
    Some(Identity {
        sub: claims.sub.filter(|s| !s.is_empty())?,
        email: claims.email.filter(|e| !e.trim().is_empty()),
    })
}

/// Google's error code (`invalid_grant`, …) if it is a plain token, safe to show and log.
pub(super) fn oauth_error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct E {
        error: serde_json::Value,
    }
    let e: E = serde_json::from_slice(body).ok()?;
    let code = e.error.as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    plain.then(|| code.to_owned())
}
