//! The plugin's settings (§8): the OAuth client, every Google endpoint, the setup worker's knobs.

use std::fmt;
use std::time::Duration;

use connector_core::settings::Range;
use connector_core::Settings;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

mod cookie;
pub use self::cookie::*;

pub const CLIENT_ID: &str = "AURORA_GCP_CLIENT_ID";
pub const CLIENT_SECRET: &str = "AURORA_GCP_CLIENT_SECRET";
pub const AUTH_URL: &str = "AURORA_GCP_AUTH_URL";
pub const TOKEN_URL: &str = "AURORA_GCP_TOKEN_URL";
pub const REVOKE_URL: &str = "AURORA_GCP_REVOKE_URL";
pub const USERINFO_URL: &str = "AURORA_GCP_USERINFO_URL";
pub const API_URL: &str = "AURORA_GCP_API_URL";
pub const MAX_AUTO_PROJECTS: &str = "AURORA_GCP_MAX_AUTO_PROJECTS";
pub const REQUIRED_APIS: &str = "AURORA_GCP_REQUIRED_APIS";
pub const TIMEOUT_SECS: &str = "AURORA_GCP_TIMEOUT_SECS";
pub const SETUP_POLL_MS: &str = "AURORA_GCP_SETUP_POLL_MS";
pub const SETUP_LEASE_SECS: &str = "AURORA_GCP_SETUP_LEASE_SECS";
pub const SETUP_MAX_ATTEMPTS: &str = "AURORA_GCP_SETUP_MAX_ATTEMPTS";
pub const SETUP_RETRY_DELAY_MS: &str = "AURORA_GCP_SETUP_RETRY_DELAY_MS";
pub const SETUP_CONCURRENCY: &str = "AURORA_GCP_SETUP_CONCURRENCY";
pub const IAM_RETRIES: &str = "AURORA_GCP_IAM_RETRIES";
pub const IAM_RETRY_DELAY_MS: &str = "AURORA_GCP_IAM_RETRY_DELAY_MS";
pub const OPERATION_POLL_MS: &str = "AURORA_GCP_OPERATION_POLL_MS";
pub const OPERATION_MAX_POLLS: &str = "AURORA_GCP_OPERATION_MAX_POLLS";
pub const STATE_COOKIE: &str = "AURORA_GCP_STATE_COOKIE";
pub const STATE_COOKIE_DOMAIN: &str = "AURORA_GCP_STATE_COOKIE_DOMAIN";
pub const RECONCILE_GRACE_SECS: &str = "AURORA_GCP_RECONCILE_GRACE_SECS";

pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const DEFAULT_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";

/// The scopes asked for at login (§2).
pub const SCOPES: &str = "https://www.googleapis.com/auth/cloud-platform openid email";

/// The APIs enabled on every chosen project (Service Usage `batchEnable`), unless
/// `AURORA_GCP_REQUIRED_APIS` names others. What Aurora reads when it investigates: resources and
/// their IAM (Resource Manager), VMs (Compute Engine), GKE clusters (Kubernetes Engine), logs (Cloud
/// Logging) and metrics (Cloud Monitoring).
pub const DEFAULT_REQUIRED_APIS: &[&str] = &[
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
];

/// The OAuth client of the gateway.
#[derive(Clone)]
pub struct OAuthClientConfig {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

connector_core::settings_struct! {
    /// How the durable setup worker behaves (`AURORA_GCP_*`, each field's variable).
    #[derive(Debug, Clone)]
    pub struct WorkerConfig {
        /// How often an idle worker looks for a due task.
        pub poll: Duration = Duration::from_millis(500), "setup_poll_ms", "Range::<10, 60_000>::millis";
        /// How long a claim holds a task; renewed at every step, page and project.
        pub lease: Duration = Duration::from_secs(60), "setup_lease_secs", "Range::<1, 3600>::secs";
        /// Claims of one task before it ends in `FAILURE`.
        pub max_attempts: i32 = 5, "setup_max_attempts", "Range::<1, 100>::int";
        /// Back-off after a passing fault: this, doubled at every attempt, at most one minute.
        pub retry_delay: Duration = Duration::from_secs(2), "setup_retry_delay_ms", "Range::<0, 600_000>::millis";
        /// Tasks one replica works at the same time.
        pub concurrency: usize = 4, "setup_concurrency", "Range::<1, 64>::int";
        /// `testIamPermissions` retries while IAM propagates, and the pause between them.
        pub iam_retries: u32 = 5, "iam_retries", "Range::<0, 50>::int";
        pub iam_retry_delay: Duration = Duration::from_secs(3), "iam_retry_delay_ms", "Range::<0, 120_000>::millis";
        /// Polling of a Service Usage long-running operation.
        pub operation_poll: Duration = Duration::from_secs(1), "operation_poll_ms", "Range::<0, 60_000>::millis";
        pub operation_max_polls: u32 = 30, "operation_max_polls", "Range::<1, 1000>::int";
    }
}

/// The plugin's other numbers (`AURORA_GCP_*`).
#[derive(Deserialize)]
#[serde(default)]
struct Numbers {
    #[serde(deserialize_with = "Range::<1, 1000>::int")]
    max_auto_projects: usize,
    #[serde(deserialize_with = "Range::<1, 300>::secs")]
    timeout_secs: Duration,
    #[serde(deserialize_with = "Range::<1, 604_800>::secs")]
    reconcile_grace_secs: Duration,
}

impl Default for Numbers {
    fn default() -> Self {
        Self {
            max_auto_projects: 5,
            timeout_secs: Duration::from_secs(20),
            reconcile_grace_secs: Duration::from_secs(600),
        }
    }
}

/// Every setting of the plugin, checked.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    /// `None` when `AURORA_GCP_CLIENT_ID` or `AURORA_GCP_CLIENT_SECRET` is unset: the routes answer 503.
    pub client: Option<OAuthClientConfig>,
    pub auth_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub userinfo_url: Url,
    /// `AURORA_GCP_API_URL`: Google API calls go to `{api}/SERVICE/PATH` instead of
    /// `https://SERVICE.googleapis.com/PATH`.
    pub api_base: Option<Url>,
    /// `{AURORA_PUBLIC_URL}/gcp/callback`.
    pub redirect_uri: String,
    /// `AURORA_FRONTEND_URL`, without a trailing `/`.
    pub frontend_url: String,
    pub max_auto_projects: usize,
    pub required_apis: Vec<String>,
    pub timeout: Duration,
    pub worker: WorkerConfig,
    pub state_cookie: StateCookie,
    /// A `pending` connection without a live setup task is repaired by the reconciler only once it
    /// was last written this long ago (`AURORA_GCP_RECONCILE_GRACE_SECS`), so that a callback still
    /// between its two writes is left alone.
    pub reconcile_grace: Duration,
}

/// Check an endpoint URL: `http` or `https`, a host, no fragment, no credentials. A query is allowed
/// (it is kept, and our parameters are appended).
pub fn parse_endpoint(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.fragment().is_some() {
        return Err("must not carry a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url)
}

fn endpoint(s: &Settings, key: &str, default: &str) -> Result<Url, String> {
    parse_endpoint(s.get(key).unwrap_or(default)).map_err(|e| format!("{key} {e}"))
}

fn base_url(raw: &str, key: &str) -> Result<String, String> {
    let url = parse_endpoint(raw).map_err(|e| format!("{key} {e}"))?;
    if url.query().is_some() {
        return Err(format!("{key} must not carry a query"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl GcpConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        let client = match (s.get(CLIENT_ID), s.get(CLIENT_SECRET)) {
            (Some(id), Some(secret)) => Some(OAuthClientConfig {
                client_id: id.trim().to_owned(),
                client_secret: SecretString::from(secret.to_owned()),
            }),
            _ => None,
        };
        let bind = s.get("AURORA_BIND").unwrap_or("127.0.0.1:8080");
        let public = match s.get("AURORA_PUBLIC_URL") {
            Some(p) => base_url(p, "AURORA_PUBLIC_URL")?,
            None => format!("http://{bind}"),
        };
        let frontend = match s.get("AURORA_FRONTEND_URL") {
            Some(f) => base_url(f, "AURORA_FRONTEND_URL")?,
            None => public.clone(),
        };
        let api_base = match s.get(API_URL) {
            Some(a) => {
                let url = parse_endpoint(a).map_err(|e| format!("{API_URL} {e}"))?;
                if url.query().is_some() {
                    return Err(format!("{API_URL} must not carry a query"));
                }
                Some(url)
            }
            None => None,
        };
        let required_apis = match s.get(REQUIRED_APIS) {
            Some(list) => {
                let apis: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
                let ok = !apis.is_empty()
                    && apis.len() <= 20
                    && apis.iter().all(|a| {
                        a.len() <= 100
                            && a.bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'.'
                                    || b == b'-'
                            })
                    });
                if !ok {
                    return Err(format!(
                        "{REQUIRED_APIS} is a comma-separated list of 1 to 20 service names such as compute.googleapis.com"
                    ));
                }
                apis
            }
            None => DEFAULT_REQUIRED_APIS
                .iter()
                .map(|a| a.to_string())
                .collect(),
        };
        let numbers: Numbers = s.extract("AURORA_GCP_")?;
        let worker: WorkerConfig = s.extract("AURORA_GCP_")?;
        let redirect_uri = format!("{public}/gcp/callback");
        let state_cookie = StateCookie::from_settings(s, &redirect_uri)?;
        Ok(Self {
            client,
            auth_url: endpoint(s, AUTH_URL, DEFAULT_AUTH_URL)?,
            token_url: endpoint(s, TOKEN_URL, DEFAULT_TOKEN_URL)?,
            revoke_url: endpoint(s, REVOKE_URL, DEFAULT_REVOKE_URL)?,
            userinfo_url: endpoint(s, USERINFO_URL, DEFAULT_USERINFO_URL)?,
            api_base,
            redirect_uri,
            frontend_url: frontend,
            max_auto_projects: numbers.max_auto_projects,
            required_apis,
            timeout: numbers.timeout_secs,
            worker,
            state_cookie,
            reconcile_grace: numbers.reconcile_grace_secs,
        })
    }

    /// The URL of a Google API call: `https://{service}.googleapis.com/{segments…}`, or
    /// `{AURORA_GCP_API_URL}/{service}/{segments…}`. Each segment is percent-encoded as a path segment.
    pub fn api_url(&self, service: &str, segments: &[&str]) -> Url {
        let mut url = match &self.api_base {
            Some(base) => {
                let mut u = base.clone();
                if let Ok(mut p) = u.path_segments_mut() {
                    p.pop_if_empty().push(service);
                }
                u
            }
            None => Url::parse(&format!("https://{service}.googleapis.com/"))
                .unwrap_or_else(|_| Url::parse("https://googleapis.com/").expect("static URL")),
        };
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        url
    }

    /// Where the callback sends the browser: `{frontend}/chat?login=…[&task_id=…]`.
    pub fn frontend_redirect(&self, login: &str, task_id: Option<uuid::Uuid>) -> String {
        let mut out = format!("{}/chat?login={login}", self.frontend_url);
        if let Some(id) = task_id {
            out.push_str("&task_id=");
            out.push_str(&id.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests;
