//! What every provider's API client repeats: a base URL with a timeout and per-call metrics, a call
//! sent and its answer read, an OAuth 2.0 token answer read and sent back as a bearer header, and the
//! user-facing meaning of a transport failure, a throttle, a 5xx or an unexpected status. Messages
//! name the service (`Scaleway`, `Azure Resource Manager`), never a body, header or secret.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::error::ConnectorError;
use crate::kit::{parse_base_url, retry_after};
use crate::metrics::Metrics;

/// A provider API's base URL, the platform's HTTP client and metrics, and the per-request timeout.
/// Cheap to clone. `Debug` shows the URL and the timeout only.
#[derive(Clone)]
pub struct ApiBase {
    provider: &'static str,
    base_url: Url,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl fmt::Debug for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiBase")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url.as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ApiBase {
    /// `provider` is the metric label (`scaleway`); `base_url` goes through [`parse_base_url`].
    pub fn new(
        provider: &'static str,
        base_url: &str,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            provider,
            base_url: parse_base_url(base_url)?,
            http,
            metrics,
            timeout,
        })
    }

    /// Use another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `{base}/{segments…}`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        join(&self.base_url, segments)
    }

    /// Run one provider call and count it in `aurora_provider_calls_total{provider,operation,outcome}`.
    pub async fn timed<T, F>(&self, op: &'static str, call: F) -> Result<T, ConnectorError>
    where
        F: Future<Output = Result<T, ConnectorError>>,
    {
        let started = Instant::now();
        let res = call.await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics
            .provider_call(self.provider, op, outcome, started.elapsed());
        res
    }
}

/// `{base}/{segments…}`, each segment percent-encoded.
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A request that got no usable answer: a timeout, an answer cut off, or no connection. `reqwest`'s
/// error names the URL (secrets travel in headers and bodies), so it is logged; the caller reads only
/// the service's name.
pub fn transport_error(
    service: &str,
    op: &str,
    timeout: Duration,
    e: &reqwest::Error,
) -> ConnectorError {
    tracing::warn!(service, operation = op, error = %e, timeout = e.is_timeout(), "provider call failed");
    if e.is_timeout() {
        ConnectorError::ProviderUnavailable(format!(
            "{service} did not answer within {} seconds; try again shortly",
            timeout.as_secs_f64()
        ))
    } else if e.is_decode() || e.is_body() {
        ConnectorError::ProviderUnavailable(format!(
            "the answer from {service} was cut off; try again shortly"
        ))
    } else {
        ConnectorError::ProviderUnavailable(format!("could not reach {service}; try again shortly"))
    }
}

/// Send `req` with `timeout`; a request that gets no answer is a [`transport_error`].
pub async fn send(
    service: &str,
    op: &str,
    timeout: Duration,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ConnectorError> {
    req.timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(service, op, timeout, &e))
}

/// The whole body of an answer; one cut off is a [`transport_error`].
pub async fn read_body(
    service: &str,
    op: &str,
    timeout: Duration,
    resp: reqwest::Response,
) -> Result<Vec<u8>, ConnectorError> {
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| transport_error(service, op, timeout, &e))
}

/// [`send`] `req`, then the body of a 2xx answer ([`read_body`]). Any other status is
/// `refusal(status, headers)`, its body not read (it is never shown).
pub async fn fetch(
    service: &str,
    op: &str,
    timeout: Duration,
    req: reqwest::RequestBuilder,
    refusal: impl FnOnce(StatusCode, &HeaderMap) -> ConnectorError,
) -> Result<Vec<u8>, ConnectorError> {
    let resp = send(service, op, timeout, req).await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(refusal(status, resp.headers()));
    }
    read_body(service, op, timeout, resp).await
}

/// An access token of an OAuth 2.0 token endpoint (client-credentials grant). No `Debug`: the
/// providers wrap it in their own redacted `AccessToken`.
pub struct GrantedToken {
    pub token: SecretString,
    /// `Bearer` unless the endpoint named another type.
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    /// The scopes granted, as the endpoint lists them.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

/// `expires_in` is a number in current token endpoints, a string in some older answers.
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(i64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Int(n)) => Some(n),
        Some(N::Text(s)) => s.trim().parse().ok(),
        None => None,
    })
}

/// The successful answer of `service`'s token endpoint: its lifetime (`expires_in`, one hour when
/// absent) held within a minute and a day. An answer that does not decode is logged by category
/// only (serde's message can quote the body, which holds the token); an empty token is refused.
pub fn read_token(service: &str, body: &[u8]) -> Result<GrantedToken, ConnectorError> {
    let t: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
        tracing::warn!(category = ?e.classify(), "undecodable token answer from {service}");
        ConnectorError::ProviderUnavailable(format!(
            "{service} returned a token answer that could not be read; try again later"
        ))
    })?;
    if t.access_token.is_empty() {
        return Err(ConnectorError::ProviderUnavailable(format!(
            "{service} returned an empty token; try again later"
        )));
    }
    let lifetime = t.expires_in.unwrap_or(3600).clamp(60, 24 * 3600);
    Ok(GrantedToken {
        token: SecretString::from(t.access_token),
        token_type: t
            .token_type
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "Bearer".into()),
        expires_at: Utc::now() + chrono::Duration::seconds(lifetime),
        scope: t.scope,
    })
}

/// The `Authorization` value of a token `service` issued, marked sensitive: `Bearer <token>`, or
/// the endpoint's own token type when it is made only of letters.
pub fn bearer_header(
    service: &str,
    token_type: &str,
    token: &SecretString,
) -> Result<HeaderValue, ConnectorError> {
    let scheme = if !token_type.is_empty() && token_type.bytes().all(|b| b.is_ascii_alphabetic()) {
        token_type
    } else {
        "Bearer"
    };
    let mut auth =
        HeaderValue::from_str(&format!("{scheme} {}", token.expose_secret())).map_err(|_| {
            ConnectorError::ProviderUnavailable(format!(
                "{service} returned a token that cannot be sent in a header"
            ))
        })?;
    auth.set_sensitive(true);
    Ok(auth)
}

/// A 429 (with its `Retry-After`) or a 5xx: the service is busy or down, whatever the call was.
/// `None` for any other status, which the provider interprets.
pub fn busy_or_down(
    service: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<ConnectorError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = retry_after(headers);
        return Some(ConnectorError::RateLimited {
            message: format!("{service} is limiting the request rate; try again in {secs} seconds"),
            retry_after_secs: secs,
        });
    }
    status.is_server_error().then(|| {
        ConnectorError::ProviderUnavailable(format!(
            "{service} answered with a server error (HTTP {}); try again shortly",
            status.as_u16()
        ))
    })
}

/// A status the provider does not expect from `op`.
pub fn unexpected_status(service: &str, op: &str, status: StatusCode) -> ConnectorError {
    ConnectorError::ProviderUnavailable(format!(
        "{service} answered {op} with an unexpected status (HTTP {})",
        status.as_u16()
    ))
}

/// Log an error status (never its body, which is not read).
pub fn log_status(service: &str, op: &str, status: StatusCode) {
    tracing::warn!(
        service,
        operation = op,
        status = status.as_u16(),
        "provider answered with an error status"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn throttles_and_outages_whatever_the_call() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        match busy_or_down("Acme", StatusCode::TOO_MANY_REQUESTS, &h) {
            Some(ConnectorError::RateLimited {
                message,
                retry_after_secs,
            }) => {
                assert_eq!(retry_after_secs, 7);
                assert_eq!(
                    message,
                    "Acme is limiting the request rate; try again in 7 seconds"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            busy_or_down("Acme", StatusCode::BAD_GATEWAY, &h),
            Some(ConnectorError::ProviderUnavailable(m)) if m.contains("HTTP 502")
        ));
        assert!(busy_or_down("Acme", StatusCode::NOT_FOUND, &h).is_none());
    }

    #[test]
    fn expires_in_as_number_or_string() {
        let t: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"3599"}"#).unwrap();
        assert_eq!(t.expires_in, Some(3599));
        let t: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"a","expires_in":3599,"token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!(t.expires_in, Some(3599));
        let t: TokenAnswer = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.expires_in, None);
    }

    #[test]
    fn token_answers_and_bearer_headers() {
        let t = read_token("Acme", br#"{"access_token":"a","expires_in":5}"#).unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert!(t.expires_at > Utc::now() + chrono::Duration::seconds(50));
        assert!(read_token("Acme", br#"{"access_token":""}"#).is_err());
        assert!(read_token("Acme", b"{").is_err());
        let tok = SecretString::from("t0k");
        let h = bearer_header("Acme", "MAC", &tok).unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "MAC t0k");
        assert_eq!(
            bearer_header("Acme", "x-y", &tok)
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer t0k"
        );
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_segments() {
        let base = ApiBase::new(
            "acme",
            "http://127.0.0.1:9/prefix/",
            reqwest::Client::new(),
            Arc::new(Metrics::new()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            base.url(&["v1", "a b/c"]).as_str(),
            "http://127.0.0.1:9/prefix/v1/a%20b%2Fc"
        );
        assert!(!format!("{base:?}").contains("Client"));
    }
}
