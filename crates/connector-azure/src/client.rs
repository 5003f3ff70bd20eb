//! A small client of Microsoft Entra ID (the OAuth 2.0 client-credentials grant of the v2.0 token
//! endpoint) and of Azure Resource Manager (the subscriptions of a service principal).
//!
//! It is plain `reqwest` rather than `azure_identity`: the token endpoint's refusals have to be told
//! apart by their AADSTS code (a wrong secret, an unknown tenant, an expired secret), which
//! `azure_identity` folds into one message string; the core already caches and refreshes tokens; and
//! each call needs the configured per-request timeout.
//!
//! Errors are [`ConnectorError`]s whose messages are written for users: they never hold a secret, a
//! token or a response body. Every HTTP call is recorded in the `provider_call_duration_seconds`
//! histogram with provider `azure`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connector_core::upstream;
use connector_core::{ConnectorError, Metrics};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The provider id used in metric labels.
pub const PROVIDER: &str = "azure";
/// Microsoft Entra ID's global authority, used when `AURORA_AZURE_AUTHORITY_URL` is not set.
pub const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
/// Azure Resource Manager, used when `AURORA_AZURE_MANAGEMENT_URL` is not set.
pub const DEFAULT_MANAGEMENT_URL: &str = "https://management.azure.com";
/// The scope of a Resource Manager token (client-credentials grants ask for `/.default`).
pub const MANAGEMENT_SCOPE: &str = "https://management.azure.com/.default";
/// The Subscriptions API version.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// The per-request timeout, unless [`AzureClient::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A backstop against a `nextLink` chain that never ends.
const MAX_PAGES: usize = 200;

/// Which of a connection's service principals a call is made for; it only changes the wording of
/// the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The principal of `tenantId` / `clientId` / `clientSecret`.
    Main,
    /// The principal of `readOnlyCredentials`.
    ReadOnly,
}

impl Role {
    fn principal(self) -> &'static str {
        match self {
            Role::Main => "the service principal",
            Role::ReadOnly => "the read-only service principal (readOnlyCredentials)",
        }
    }
    fn secret_field(self) -> &'static str {
        match self {
            Role::Main => "clientSecret",
            Role::ReadOnly => "readOnlyCredentials.clientSecret",
        }
    }
    fn client_field(self) -> &'static str {
        match self {
            Role::Main => "clientId",
            Role::ReadOnly => "readOnlyCredentials.clientId",
        }
    }
}

/// An access token for Resource Manager. `Debug` hides the token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The error document of the token endpoint. `error_description` is read only for its AADSTS code.
#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// An Azure subscription as the Subscriptions API describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    #[serde(default)]
    pub display_name: String,
    /// `Enabled`, `Warned`, `PastDue`, `Disabled` or `Deleted`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl Subscription {
    pub fn is_enabled(&self) -> bool {
        self.state.eq_ignore_ascii_case("Enabled")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionPage {
    #[serde(default)]
    value: Vec<Subscription>,
    #[serde(default)]
    next_link: Option<String>,
}

connector_core::api_operations! {
    /// The calls, for metric labels and for what an error status means.
    enum Op {
        Token = "token",
        ListSubscriptions = "list_subscriptions",
        GetSubscription = "get_subscription",
    }
}

impl Op {
    fn service(self) -> &'static str {
        match self {
            Op::Token => "Microsoft Entra ID",
            _ => "Azure Resource Manager",
        }
    }
}

/// The Entra ID and Resource Manager client. Cheap to clone.
#[derive(Clone)]
pub struct AzureClient {
    authority: Url,
    management: Url,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureClient")
            .field("authority", &self.authority.as_str())
            .field("management", &self.management.as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The API base URL setting's check, shared by every provider.
pub use connector_core::kit::parse_base_url;

use connector_core::upstream::join;

/// Resource Manager's name in messages.
const ARM: &str = "Azure Resource Manager";

impl AzureClient {
    /// A client of the authority and Resource Manager at the given base URLs (see
    /// [`parse_base_url`]), sharing the platform's HTTP client and metrics.
    pub fn new(
        authority: &str,
        management: &str,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
    ) -> Result<Self, (&'static str, String)> {
        Ok(Self {
            authority: parse_base_url(authority).map_err(|e| ("authority", e))?,
            management: parse_base_url(management).map_err(|e| ("management", e))?,
            http,
            metrics,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Use another per-request timeout (the default is [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant_id: &str) -> Url {
        join(&self.authority, &[tenant_id, "oauth2", "v2.0", "token"])
    }

    /// A Resource Manager token for a service principal: the client-credentials grant with the
    /// scope `https://management.azure.com/.default`.
    pub async fn token(
        &self,
        role: Role,
        tenant_id: &str,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<AccessToken, ConnectorError> {
        let started = Instant::now();
        let res = self
            .token_inner(role, tenant_id, client_id, client_secret)
            .await;
        self.record(Op::Token, &res, started);
        res
    }

    async fn token_inner(
        &self,
        role: Role,
        tenant_id: &str,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<AccessToken, ConnectorError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose_secret()),
            ("scope", MANAGEMENT_SCOPE),
        ];
        let req = self
            .http
            .post(self.token_url(tenant_id))
            .header(ACCEPT, "application/json")
            .form(&form);
        let (service, op) = (Op::Token.service(), Op::Token.as_str());
        let resp = upstream::send(service, op, self.timeout, req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = upstream::read_body(service, op, self.timeout, resp).await?;
        if !status.is_success() {
            let parsed: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(token_error(
                role, tenant_id, client_id, status, &headers, &parsed,
            ));
        }
        let t = upstream::read_token(service, &body)?;
        Ok(AccessToken {
            token: t.token,
            token_type: t.token_type,
            expires_at: t.expires_at,
        })
    }

    /// Every subscription the token's principal can see: `GET /subscriptions`, following
    /// `nextLink` to the last page. A `nextLink` that leaves the configured Resource Manager origin is
    /// not followed (the token would go with it).
    pub async fn list_subscriptions(
        &self,
        token: &AccessToken,
    ) -> Result<Vec<Subscription>, ConnectorError> {
        let mut url = join(&self.management, &["subscriptions"]);
        url.query_pairs_mut()
            .append_pair("api-version", SUBSCRIPTIONS_API_VERSION);
        let mut all = Vec::new();
        let mut seen_ids = HashSet::new();
        let mut seen_links = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page: SubscriptionPage = self
                .get_json(Op::ListSubscriptions, url.clone(), token)
                .await?
                .ok_or_else(|| {
                    ConnectorError::ProviderUnavailable(
                        "Azure Resource Manager does not serve the subscription list at the configured URL"
                            .into(),
                    )
                })?;
            for s in page.value {
                if seen_ids.insert(s.subscription_id.to_ascii_lowercase()) {
                    all.push(s);
                }
            }
            let Some(next) = page.next_link.filter(|l| !l.trim().is_empty()) else {
                return Ok(all);
            };
            let next = self.next_link(&next)?;
            if !seen_links.insert(next.as_str().to_owned()) {
                tracing::warn!("Azure Resource Manager's nextLink repeats; stopping");
                return Ok(all);
            }
            url = next;
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "Azure's subscription list did not end; giving up"
        );
        Err(ConnectorError::ProviderUnavailable(
            "Azure's subscription list did not end; try again later".into(),
        ))
    }

    /// One subscription: `GET /subscriptions/{id}`. `None` when Resource Manager answers 404 (it
    /// does not exist, or the principal has no role on it).
    pub async fn get_subscription(
        &self,
        token: &AccessToken,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, ConnectorError> {
        let mut url = join(&self.management, &["subscriptions", subscription_id]);
        url.query_pairs_mut()
            .append_pair("api-version", SUBSCRIPTIONS_API_VERSION);
        self.get_json(Op::GetSubscription, url, token).await
    }

    /// Accept a `nextLink` only on the configured Resource Manager origin.
    fn next_link(&self, raw: &str) -> Result<Url, ConnectorError> {
        let next = Url::parse(raw.trim()).map_err(|_| {
            ConnectorError::ProviderUnavailable(
                "Azure Resource Manager returned a malformed nextLink; try again later".into(),
            )
        })?;
        if next.origin() != self.management.origin() {
            tracing::warn!(
                host = next.host_str().unwrap_or(""),
                "Azure Resource Manager's nextLink points to another origin; not following it"
            );
            return Err(ConnectorError::ProviderUnavailable(
                "Azure Resource Manager's subscription list points to another host; the gateway does not follow it"
                    .into(),
            ));
        }
        Ok(next)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        op: Op,
        url: Url,
        token: &AccessToken,
    ) -> Result<Option<T>, ConnectorError> {
        let started = Instant::now();
        let res = self.get_json_inner(op, url, token).await;
        self.record(op, &res, started);
        res
    }

    async fn get_json_inner<T: DeserializeOwned>(
        &self,
        op: Op,
        url: Url,
        token: &AccessToken,
    ) -> Result<Option<T>, ConnectorError> {
        let auth = upstream::bearer_header("Microsoft Entra ID", &token.token_type, &token.token)?;
        let req = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json");
        let resp = upstream::send(op.service(), op.as_str(), self.timeout, req).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && op == Op::GetSubscription {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(arm_error(op, status, resp.headers()));
        }
        let body = upstream::read_body(op.service(), op.as_str(), self.timeout, resp).await?;
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            tracing::warn!(operation = op.as_str(), category = ?e.classify(), "undecodable answer from Azure Resource Manager");
            ConnectorError::ProviderUnavailable(
                "Azure Resource Manager returned an answer that could not be read; try again later"
                    .into(),
            )
        })
    }

    fn record<T>(&self, op: Op, res: &Result<T, ConnectorError>, started: Instant) {
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics
            .provider_call(PROVIDER, op.as_str(), outcome, started.elapsed());
    }
}

/// The AADSTS code of a token refusal: `error_codes[0]`, else the digits after `AADSTS` in the
/// description.
fn aadsts_code(e: &TokenError) -> Option<u64> {
    if let Some(c) = e.error_codes.first() {
        return Some(*c);
    }
    let at = e.error_description.find("AADSTS")? + "AADSTS".len();
    let digits: String = e.error_description[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What a refusal of the token endpoint means, in plain words. The description is never shown.
fn token_error(
    role: Role,
    tenant_id: &str,
    client_id: &str,
    status: StatusCode,
    headers: &HeaderMap,
    e: &TokenError,
) -> ConnectorError {
    let code = aadsts_code(e);
    tracing::warn!(
        status = status.as_u16(),
        error = %e.error.chars().take(64).collect::<String>(),
        aadsts = code.unwrap_or_default(),
        "Microsoft Entra ID refused a token request"
    );
    if let Some(e) = upstream::busy_or_down("Microsoft Entra ID", status, headers) {
        return e;
    }
    let who = role.principal();
    let message = match code {
        Some(7000215) => format!(
            "Azure refused the client secret of {who} (AADSTS7000215: invalid client secret). \
             Check {}: it must be the secret's Value, not its Secret ID",
            role.secret_field()
        ),
        Some(7000222) => format!(
            "the client secret of {who} has expired (AADSTS7000222). Create a new client secret \
             for application {client_id} and connect again"
        ),
        Some(90002) | Some(900023) | Some(90072) => format!(
            "Azure does not know tenant {tenant_id} (AADSTS{}). Check tenantId: it is the \
             Directory (tenant) ID of the app registration",
            code.unwrap_or_default()
        ),
        Some(700016) => format!(
            "Azure found no application with client ID {client_id} in tenant {tenant_id} \
             (AADSTS700016). Check {}, and that the application is registered in this tenant",
            role.client_field()
        ),
        Some(7000112) => format!(
            "application {client_id} is disabled in tenant {tenant_id} (AADSTS7000112); enable it \
             and connect again"
        ),
        Some(70011) => format!(
            "Azure will not issue {who} a token for Azure Resource Manager (AADSTS70011: invalid \
             scope)"
        ),
        Some(c) => format!(
            "Azure refused the credentials of {who} (AADSTS{c}). Check the tenant ID, the client \
             ID and the client secret"
        ),
        None => format!(
            "Azure refused the credentials of {who} (HTTP {}). Check the tenant ID, the client ID \
             and the client secret",
            status.as_u16()
        ),
    };
    ConnectorError::CredentialsRejected(message)
}

/// What a non-2xx status of Resource Manager means for the user. The body is not read.
fn arm_error(op: Op, status: StatusCode, headers: &HeaderMap) -> ConnectorError {
    tracing::warn!(
        operation = op.as_str(),
        status = status.as_u16(),
        "Azure Resource Manager answered with an error status"
    );
    match status {
        StatusCode::UNAUTHORIZED => ConnectorError::CredentialsRejected(
            "Azure Resource Manager refused the service principal's token (HTTP 401)".into(),
        ),
        StatusCode::FORBIDDEN => ConnectorError::CredentialsRejected(
            "Azure Resource Manager does not let the service principal read subscriptions \
             (HTTP 403); give it a role such as Reader on the subscription"
                .into(),
        ),
        s => upstream::busy_or_down(ARM, s, headers)
            .unwrap_or_else(|| upstream::unexpected_status(ARM, op.as_str(), s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn client() -> AzureClient {
        AzureClient::new(
            "http://127.0.0.1:9/login/",
            "http://127.0.0.1:9/arm",
            reqwest::Client::new(),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    #[test]
    fn token_url_keeps_a_prefix() {
        assert_eq!(
            client()
                .token_url("72f988bf-86f1-41af-91ab-2d7cd011db47")
                .as_str(),
            "http://127.0.0.1:9/login/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
    }

    #[test]
    fn next_link_stays_on_the_management_origin() {
        let c = client();
        assert!(c
            .next_link("http://127.0.0.1:9/arm/subscriptions?api-version=1&$skiptoken=x")
            .is_ok());
        assert!(c.next_link("https://evil.example/subscriptions?x").is_err());
        assert!(c
            .next_link("http://127.0.0.1:10/arm/subscriptions")
            .is_err());
        assert!(c.next_link("::").is_err());
    }

    #[test]
    fn aadsts_codes() {
        let e = TokenError {
            error: "invalid_client".into(),
            error_description: "AADSTS7000215: Invalid client secret provided.".into(),
            error_codes: vec![],
        };
        assert_eq!(aadsts_code(&e), Some(7000215));
        let e = TokenError {
            error_codes: vec![90002],
            ..TokenError::default()
        };
        assert_eq!(aadsts_code(&e), Some(90002));
        assert_eq!(aadsts_code(&TokenError::default()), None);
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = AccessToken {
            token: SecretString::from("eyJ-secret-token"),
            token_type: "Bearer".into(),
            expires_at: Utc::now(),
        };
        assert!(!format!("{t:?}").contains("secret-token"));
    }

    #[test]
    fn token_errors_are_plain_words_without_the_description() {
        let h = HeaderMap::new();
        let e = |codes: Vec<u64>| TokenError {
            error: "invalid_client".into(),
            error_description: "AADSTS-DESCRIPTION-MARKER trace".into(),
            error_codes: codes,
        };
        for (code, needle) in [
            (7000215, "Value, not its Secret ID"),
            (7000222, "expired"),
            (90002, "does not know tenant"),
            (700016, "no application"),
            (12345, "AADSTS12345"),
        ] {
            let err = token_error(
                Role::Main,
                "t",
                "c",
                StatusCode::BAD_REQUEST,
                &h,
                &e(vec![code]),
            );
            assert!(err.is_refusal());
            let text = err.to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains("MARKER"), "{text}");
        }
        let err = token_error(
            Role::ReadOnly,
            "t",
            "c",
            StatusCode::UNAUTHORIZED,
            &h,
            &e(vec![7000215]),
        );
        assert!(err.to_string().contains("readOnlyCredentials.clientSecret"));
        assert!(matches!(
            token_error(
                Role::Main,
                "t",
                "c",
                StatusCode::SERVICE_UNAVAILABLE,
                &h,
                &e(vec![])
            ),
            ConnectorError::ProviderUnavailable(_)
        ));
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert!(matches!(
            token_error(
                Role::Main,
                "t",
                "c",
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                &e(vec![])
            ),
            ConnectorError::RateLimited {
                retry_after_secs: 7,
                ..
            }
        ));
    }
}
