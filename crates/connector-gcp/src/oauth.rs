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

fn opt_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
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
struct UserInfo {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct IdTokenClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
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
fn oauth_error_code(body: &[u8]) -> Option<String> {
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

pub(crate) use connector_core::kit::retry_after;

/// The OAuth calls against Google's (or the configured) endpoints.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    metrics: std::sync::Arc<Metrics>,
    cfg: std::sync::Arc<GcpConfig>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.cfg.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        metrics: std::sync::Arc<Metrics>,
        cfg: std::sync::Arc<GcpConfig>,
    ) -> Self {
        Self { http, metrics, cfg }
    }

    fn record(&self, op: &str, ok: bool, started: Instant) {
        self.metrics.provider_call(
            PROVIDER,
            op,
            if ok { "ok" } else { "error" },
            started.elapsed(),
        );
    }

    fn transport(&self, op: &str, e: &reqwest::Error) -> ConnectorError {
        tracing::warn!(operation = op, timeout = e.is_timeout(), error = %e, "Google OAuth call failed");
        if e.is_timeout() {
            ConnectorError::ProviderUnavailable(format!(
                "Google did not answer within {} seconds; try again shortly",
                self.cfg.timeout.as_secs()
            ))
        } else {
            ConnectorError::ProviderUnavailable(
                "could not reach Google's sign-in service; try again shortly".into(),
            )
        }
    }

    async fn token_request(
        &self,
        op: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, ConnectorError> {
        let started = Instant::now();
        let res = self.token_request_inner(op, form).await;
        self.record(op, res.is_ok(), started);
        res
    }

    async fn token_request_inner(
        &self,
        op: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, ConnectorError> {
        let resp = self
            .http
            .post(self.cfg.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(form)
            .timeout(self.cfg.timeout)
            .send()
            .await
            .map_err(|e| self.transport(op, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| self.transport(op, &e))?
                .to_vec(),
        );
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                tracing::warn!(operation = op, category = ?e.classify(), "undecodable token answer from Google");
                ConnectorError::ProviderUnavailable(
                    "Google's token answer could not be read; try again later".into(),
                )
            });
        }
        let code = oauth_error_code(&body);
        tracing::warn!(
            operation = op,
            status = status.as_u16(),
            error_code = code.as_deref().unwrap_or("-"),
            "Google refused a token request"
        );
        Err(token_error(status, code.as_deref(), &headers))
    }

    /// Exchange an authorization code, with the PKCE verifier and the redirect URI of the login.
    pub async fn exchange_code(
        &self,
        client: &OAuthClientConfig,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ConnectorError> {
        self.token_request(
            "exchange_code",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", &client.client_id),
                ("client_secret", client.client_secret.expose_secret()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// A new access token from the refresh token. `invalid_grant` is a refusal (the grant was
    /// revoked or expired): the connection needs a reconnect.
    pub async fn refresh(
        &self,
        client: &OAuthClientConfig,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, ConnectorError> {
        self.token_request(
            "refresh_token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("client_id", &client.client_id),
                ("client_secret", client.client_secret.expose_secret()),
            ],
        )
        .await
    }

    /// Revoke a token (the refresh token revokes the whole grant). A token Google no longer knows
    /// (`invalid_token`) counts as revoked.
    pub async fn revoke(&self, token: &SecretString) -> Result<(), ConnectorError> {
        let started = Instant::now();
        let res = async {
            let resp = self
                .http
                .post(self.cfg.revoke_url.clone())
                .form(&[("token", token.expose_secret())])
                .timeout(self.cfg.timeout)
                .send()
                .await
                .map_err(|e| self.transport("revoke", &e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body = resp.bytes().await.unwrap_or_default();
            let code = oauth_error_code(&body);
            if status == StatusCode::BAD_REQUEST && code.as_deref() == Some("invalid_token") {
                return Ok(());
            }
            tracing::warn!(
                status = status.as_u16(),
                error_code = code.as_deref().unwrap_or("-"),
                "Google refused the revocation"
            );
            Err(ConnectorError::ProviderUnavailable(format!(
                "Google did not revoke the token (HTTP {})",
                status.as_u16()
            )))
        }
        .await;
        self.record("revoke", res.is_ok(), started);
        res
    }

    /// The account behind an access token: userinfo, then the id_token's claims for a missing
    /// e-mail (oauth2-mock-server answers only `sub`).
    pub async fn identity(
        &self,
        access_token: &SecretString,
        id_token: Option<&SecretString>,
        client_id: &str,
    ) -> Result<Identity, ConnectorError> {
        let started = Instant::now();
        let res = self.userinfo(access_token).await;
        self.record("userinfo", res.is_ok(), started);
        let info = res?;
        let from_id = id_token.and_then(|t| id_token_identity(t.expose_secret(), client_id));
        let sub = info
            .sub
            .filter(|s| !s.is_empty())
            .or_else(|| from_id.as_ref().map(|i| i.sub.clone()))
            .ok_or_else(|| {
                ConnectorError::ProviderUnavailable(
                    "Google did not say which account signed in; try again".into(),
                )
            })?;
        let email = info
            .email
            .filter(|e| !e.trim().is_empty())
            .or_else(|| from_id.and_then(|i| i.email));
        Ok(Identity { sub, email })
    }

    async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, ConnectorError> {
        let mut auth = reqwest::header::HeaderValue::from_str(&format!(
            "Bearer {}",
            access_token.expose_secret()
        ))
        .map_err(|_| {
            ConnectorError::CredentialsRejected(
                "Google returned an access token that cannot be used".into(),
            )
        })?;
        auth.set_sensitive(true);
        let resp = self
            .http
            .get(self.cfg.userinfo_url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .timeout(self.cfg.timeout)
            .send()
            .await
            .map_err(|e| self.transport("userinfo", &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ConnectorError::CredentialsRejected(
                "Google refused the access token when reading the account's identity; reconnect the Google account".into(),
            ));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let secs = retry_after(resp.headers());
            return Err(ConnectorError::RateLimited {
                message: format!(
                    "Google is limiting the request rate; try again in {secs} seconds"
                ),
                retry_after_secs: secs,
            });
        }
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                "userinfo answered with an error status"
            );
            return Err(ConnectorError::ProviderUnavailable(format!(
                "Google's userinfo endpoint answered HTTP {}; try again shortly",
                status.as_u16()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport("userinfo", &e))?;
        serde_json::from_slice(&body).map_err(|_| {
            ConnectorError::ProviderUnavailable(
                "Google's userinfo answer could not be read; try again later".into(),
            )
        })
    }
}

/// What a refused token request means.
fn token_error(
    status: StatusCode,
    code: Option<&str>,
    headers: &reqwest::header::HeaderMap,
) -> ConnectorError {
    match (status, code) {
        (_, Some("invalid_grant")) => ConnectorError::CredentialsRejected(
            "Google refused the stored authorization (invalid_grant): it was revoked, expired, or \
             the account's password changed. Reconnect the Google account"
                .into(),
        ),
        (_, Some("invalid_client" | "unauthorized_client")) => ConnectorError::ProviderUnavailable(
            "Google refused the gateway's OAuth client; the operator must check AURORA_GCP_CLIENT_ID \
             and AURORA_GCP_CLIENT_SECRET"
                .into(),
        ),
        (StatusCode::TOO_MANY_REQUESTS, _) => {
            let secs = retry_after(headers);
            ConnectorError::RateLimited {
                message: format!("Google is limiting the request rate; try again in {secs} seconds"),
                retry_after_secs: secs,
            }
        }
        (s, _) if s.is_server_error() => ConnectorError::ProviderUnavailable(format!(
            "Google's token endpoint answered HTTP {}; try again shortly",
            s.as_u16()
        )),
        (s, Some(code)) => ConnectorError::InvalidRequest(format!(
            "Google refused the token request ({code}, HTTP {})",
            s.as_u16()
        )),
        (s, None) => ConnectorError::InvalidRequest(format!(
            "Google refused the token request (HTTP {})",
            s.as_u16()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Settings;

    #[test]
    fn pkce_rfc7636_vector() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_long_url_safe_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(*a, *b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(state_hash("abc").len(), 64);
        assert_ne!(state_hash("abc"), "abc");
    }

    #[test]
    fn authorization_url_is_form_encoded() {
        let cfg = GcpConfig::from_settings(
            &Settings::new()
                .with("AURORA_PUBLIC_URL", "https://aurora.example")
                .with(crate::config::AUTH_URL, "https://auth.example/o/auth?hd=x"),
        )
        .unwrap();
        let url = authorization_url(&cfg, "client.apps", "st-ate", "chal");
        assert!(url.starts_with("https://auth.example/o/auth?hd=x&response_type=code&"));
        assert!(url.contains("client_id=client.apps"));
        assert!(url.contains("redirect_uri=https%3A%2F%2Faurora.example%2Fgcp%2Fcallback"));
        assert!(url.contains(
            "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform+openid+email"
        ));
        assert!(url.contains("access_type=offline"));
        assert!(url.contains("prompt=consent"));
        assert!(url.contains("code_challenge=chal&code_challenge_method=S256"));
        assert!(url.ends_with("state=st-ate"));
    }

    #[test]
    fn sealed_login_round_trip_and_browser_binding() {
        let cookie = random_token();
        let l = SealedLogin {
            verifier: random_token(),
            browser_hash: Some(state_hash(&cookie)),
        };
        let back = SealedLogin::from_bytes(&l.to_bytes()).unwrap();
        assert_eq!(*back.verifier, *l.verifier);
        assert!(back.browser_matches(&cookie));
        assert!(
            !back.browser_matches(&random_token()),
            "another browser's cookie"
        );
        assert!(!back.browser_matches(""));
        // Unbound (the setting off) and the older format (the bare verifier): no cookie matches.
        let unbound = SealedLogin {
            verifier: random_token(),
            browser_hash: None,
        };
        let back = SealedLogin::from_bytes(&unbound.to_bytes()).unwrap();
        assert!(back.browser_hash.is_none() && !back.browser_matches(&cookie));
        let legacy =
            SealedLogin::from_bytes(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            *legacy.verifier,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert!(legacy.browser_hash.is_none());
        assert!(SealedLogin::from_bytes(b"").is_none());
        assert!(SealedLogin::from_bytes(b"{not json").is_none());
        // One cookie name per login, not revealing the state.
        let st = random_token();
        let name = browser_cookie_name(&st);
        assert!(name.starts_with("aurora_gcp_state_") && name.len() == 33);
        assert_ne!(name, browser_cookie_name(&random_token()));
        assert!(!name.contains(st.as_str()));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn id_token_claims() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"123","email":"a@example.com","aud":"cid","iss":"x"}"#);
        let t = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig");
        assert_eq!(
            id_token_identity(&t, "cid"),
            Some(Identity {
                sub: "123".into(),
                email: Some("a@example.com".into())
            })
        );
        assert_eq!(
            id_token_identity(&t, "other"),
            None,
            "another client's token"
        );
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"johndoe","aud":["cid"]}"#);
        let t = format!("h.{payload}.s");
        let i = id_token_identity(&t, "cid").unwrap();
        assert_eq!(i.account_id(), "johndoe", "falls back to sub");
        // `aud` is required (OpenID Connect Core §2): without it, or empty, the token names nobody.
        for claims in [
            br#"{"sub":"123","email":"a@example.com"}"#.as_slice(),
            br#"{"sub":"123","email":"a@example.com","aud":null}"#,
            br#"{"sub":"123","email":"a@example.com","aud":[]}"#,
            br#"{"sub":"123","email":"a@example.com","aud":""}"#,
        ] {
            let t = format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims));
            assert_eq!(
                id_token_identity(&t, "cid"),
                None,
                "{}",
                String::from_utf8_lossy(claims)
            );
        }
        assert_eq!(id_token_identity("garbage", "cid"), None);
        assert_eq!(id_token_identity("a.!!!.c", "cid"), None);
    }

    #[test]
    fn token_errors() {
        let h = reqwest::header::HeaderMap::new();
        let code =
            oauth_error_code(br#"{"error":"invalid_grant","error_description":"Bad Request"}"#);
        assert_eq!(code.as_deref(), Some("invalid_grant"));
        assert!(token_error(StatusCode::BAD_REQUEST, code.as_deref(), &h).is_refusal());
        assert_eq!(oauth_error_code(br#"{"error":"<script>"}"#), None);
        assert_eq!(oauth_error_code(br#"{"error":{"code":400}}"#), None);
        assert!(matches!(
            token_error(StatusCode::UNAUTHORIZED, Some("invalid_client"), &h),
            ConnectorError::ProviderUnavailable(_)
        ));
        assert!(matches!(
            token_error(StatusCode::TOO_MANY_REQUESTS, None, &h),
            ConnectorError::RateLimited { .. }
        ));
        assert!(matches!(
            token_error(StatusCode::BAD_GATEWAY, None, &h),
            ConnectorError::ProviderUnavailable(_)
        ));
        assert!(matches!(
            token_error(StatusCode::BAD_REQUEST, Some("invalid_request"), &h),
            ConnectorError::InvalidRequest(_)
        ));
    }

    #[test]
    fn token_response_debug_is_redacted() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ya29.secret","expires_in":3599,"refresh_token":"1//rt-secret","scope":"a b","token_type":"Bearer","id_token":"x.y.z"}"#,
        )
        .unwrap();
        let d = format!("{t:?}");
        assert!(
            !d.contains("ya29.secret") && !d.contains("rt-secret"),
            "{d}"
        );
        let now = Utc::now();
        assert_eq!(t.expires_at(now), now + chrono::Duration::seconds(3599));
        assert_eq!(t.token_type(), "Bearer");
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","refresh_token":""}"#).unwrap();
        assert!(t.refresh_token.is_none());
    }
}
