//! The Acme API client: one call, `GET {base}/v1/account` with the API key as a bearer token.

use std::time::{Duration, Instant};

use connector_core::{ConnectorError, Metrics};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;

/// The Acme API of production; `AURORA_ACME_API_URL` replaces it (tests point it at a mock).
pub const DEFAULT_API_URL: &str = "https://api.acme.example";

/// What Acme says about the account an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The client: the base URL, the platform's HTTP client and its metrics.
#[derive(Clone)]
pub struct AcmeClient {
    base: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("base", &self.base)
            .finish()
    }
}

impl AcmeClient {
    /// A client of the API at `base` (`http://` or `https://`, a trailing `/` is dropped).
    pub fn new(base: &str, http: reqwest::Client, metrics: Arc<Metrics>) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/');
        let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
        if !scheme_ok || base.contains(char::is_whitespace) {
            return Err(format!("must be an http(s) URL, not `{base}`"));
        }
        Ok(Self {
            base: base.to_owned(),
            http,
            metrics,
        })
    }

    /// The account of `key`. A refused key is `CredentialsRejected`; a throttle is `RateLimited`;
    /// anything else that fails is `ProviderUnavailable`. Acme's answer body is never quoted.
    pub async fn account(&self, key: &SecretString) -> Result<Account, ConnectorError> {
        let started = Instant::now();
        let result = self.fetch_account(key).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_refusal() => "rejected",
            Err(_) => "error",
        };
        self.metrics
            .provider_call("acme", "get_account", outcome, started.elapsed());
        result
    }

    async fn fetch_account(&self, key: &SecretString) -> Result<Account, ConnectorError> {
        let resp = self
            .http
            .get(format!("{}/v1/account", self.base))
            .bearer_auth(key.expose_secret())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|_| ConnectorError::ProviderUnavailable("Acme could not be reached".into()))?;
        match resp.status() {
            s if s.is_success() => resp.json::<Account>().await.map_err(|_| {
                ConnectorError::ProviderUnavailable("Acme answered an unreadable account".into())
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(
                ConnectorError::CredentialsRejected("Acme refused the API key".into()),
            ),
            StatusCode::TOO_MANY_REQUESTS => Err(ConnectorError::RateLimited {
                message: "Acme is throttling requests; retry later".into(),
                retry_after_secs: retry_after(resp.headers()),
            }),
            s => Err(ConnectorError::ProviderUnavailable(format!(
                "Acme answered {}",
                s.as_u16()
            ))),
        }
    }
}

/// `Retry-After` as every provider reads it (the core's provider kit).
use connector_core::kit::retry_after;

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<AcmeClient, String> {
        AcmeClient::new(base, reqwest::Client::new(), Arc::new(Metrics::new()))
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            client("https://a.example/").unwrap().base,
            "https://a.example"
        );
        assert_eq!(
            client(" http://127.0.0.1:9 ").unwrap().base,
            "http://127.0.0.1:9"
        );
        assert!(client("ftp://a.example").is_err());
        assert!(client("a.example").is_err());
        assert!(client("https://a example").is_err());
    }
}
