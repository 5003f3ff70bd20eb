//! A small client of the Google Cloud APIs the setup uses, authenticated with the user's access token:
//! Cloud Resource Manager v3 (`projects:search`, `testIamPermissions`), Cloud Billing v1
//! (`billingInfo`) and Service Usage v1 (`services:batchEnable`, operations). Every URL goes through
//! [`GcpConfig::api_url`], so `AURORA_GCP_API_URL` redirects them all.
//!
//! Errors carry the HTTP status and Google's status token (`PERMISSION_DENIED`, …), never a body.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use connector_core::{ConnectorError, Metrics};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::GcpConfig;
use crate::oauth::{retry_after, PROVIDER};

/// The page size asked of `projects:search` (its maximum).
pub const PAGE_SIZE: u32 = 100;

/// A failed Google API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoogleError {
    /// 401: the access token was refused.
    Unauthorized,
    /// 403, with Google's status token.
    Denied(Option<String>),
    /// 404.
    NotFound,
    /// Another 4xx (a failed precondition, a bad argument), with Google's status token.
    Rejected(u16, Option<String>),
    /// 429, with the seconds to wait.
    RateLimited(u64),
    /// 5xx, a timeout, a transport error or an unreadable answer.
    Unavailable(String),
}

impl GoogleError {
    /// A passing fault, worth a retry later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited(_) | Self::Unavailable(_))
    }

    /// A short reason for users: `PERMISSION_DENIED (HTTP 403)`.
    pub fn reason(&self) -> String {
        match self {
            Self::Unauthorized => "the access token was refused (HTTP 401)".into(),
            Self::Denied(s) => {
                format!("{} (HTTP 403)", s.as_deref().unwrap_or("permission denied"))
            }
            Self::NotFound => "not found (HTTP 404)".into(),
            Self::Rejected(code, s) => {
                format!("{} (HTTP {code})", s.as_deref().unwrap_or("refused"))
            }
            Self::RateLimited(secs) => format!("rate limited; retry in {secs} seconds"),
            Self::Unavailable(m) => m.clone(),
        }
    }

    /// As a connector error, for `what` (`listing the projects`).
    pub fn into_connector(self, what: &str) -> ConnectorError {
        match self {
            Self::Unauthorized => ConnectorError::CredentialsRejected(format!(
                "Google refused the access token while {what}; reconnect the Google account"
            )),
            Self::RateLimited(secs) => ConnectorError::RateLimited {
                message: format!(
                    "Google is limiting the request rate while {what}; try again in {secs} seconds"
                ),
                retry_after_secs: secs,
            },
            Self::Unavailable(m) => {
                ConnectorError::ProviderUnavailable(format!("{m} (while {what})"))
            }
            other => {
                ConnectorError::InvalidRequest(format!("Google refused {what}: {}", other.reason()))
            }
        }
    }
}

impl fmt::Display for GoogleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

/// A project the account can see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
    /// The display name (the project id when it has none).
    pub name: String,
    /// The project number (from `projects/{number}`), when Google gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchPage {
    #[serde(default)]
    projects: Vec<RawProject>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BillingInfo {
    #[serde(default)]
    billing_enabled: bool,
}

/// A Service Usage long-running operation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Operation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub error: Option<OperationError>,
}

/// The `error` of a finished operation (`google.rpc.Status`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OperationError {
    #[serde(default)]
    pub code: Option<i64>,
}

#[derive(Deserialize)]
struct Permissions {
    #[serde(default)]
    permissions: Vec<String>,
}

/// The Google Cloud API client. Cheap to clone.
#[derive(Clone)]
pub struct GcpApi {
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    cfg: Arc<GcpConfig>,
}

impl fmt::Debug for GcpApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpApi")
            .field("api_base", &self.cfg.api_base.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

fn status_token(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = v.get("error")?.get("status")?.as_str()?;
    let plain =
        !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plain.then(|| s.to_owned())
}

impl GcpApi {
    pub fn new(http: reqwest::Client, metrics: Arc<Metrics>, cfg: Arc<GcpConfig>) -> Self {
        Self { http, metrics, cfg }
    }

    /// One page of `GET cloudresourcemanager/v3/projects:search` (active projects only); returns the
    /// projects and the next page's token.
    pub async fn search_projects_page(
        &self,
        token: &SecretString,
        page_token: Option<&str>,
    ) -> Result<(Vec<Project>, Option<String>), GoogleError> {
        let mut url = self
            .cfg
            .api_url("cloudresourcemanager", &["v3", "projects:search"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("pageSize", &PAGE_SIZE.to_string());
            q.append_pair("query", "state:ACTIVE");
            if let Some(t) = page_token {
                q.append_pair("pageToken", t);
            }
        }
        let page: SearchPage = self
            .call("search_projects", Method::GET, url, token, None)
            .await?;
        let projects = page
            .projects
            .into_iter()
            .filter(|p| p.state.as_deref().is_none_or(|s| s == "ACTIVE"))
            .filter_map(|p| {
                let id = p.project_id.filter(|i| !i.is_empty())?;
                let number = p
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_prefix("projects/"))
                    .map(str::to_owned);
                let name = p
                    .display_name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| id.clone());
                Some(Project {
                    project_id: id,
                    name,
                    number,
                })
            })
            .collect();
        let next = page.next_page_token.filter(|t| !t.is_empty());
        Ok((projects, next))
    }

    /// `GET cloudbilling/v1/projects/{id}/billingInfo` → `billingEnabled`.
    pub async fn billing_enabled(
        &self,
        token: &SecretString,
        project_id: &str,
    ) -> Result<bool, GoogleError> {
        let url = self.cfg.api_url(
            "cloudbilling",
            &["v1", "projects", project_id, "billingInfo"],
        );
        let info: BillingInfo = self
            .call("billing_info", Method::GET, url, token, None)
            .await?;
        Ok(info.billing_enabled)
    }

    /// `POST serviceusage/v1/projects/{id}/services:batchEnable` with `serviceIds` (idempotent:
    /// enabling an enabled service changes nothing).
    pub async fn batch_enable(
        &self,
        token: &SecretString,
        project_id: &str,
        services: &[String],
    ) -> Result<Operation, GoogleError> {
        let url = self.cfg.api_url(
            "serviceusage",
            &["v1", "projects", project_id, "services:batchEnable"],
        );
        let body = serde_json::json!({ "serviceIds": services });
        self.call("batch_enable", Method::POST, url, token, Some(body))
            .await
    }

    /// `GET serviceusage/v1/{operation name}`.
    pub async fn operation(
        &self,
        token: &SecretString,
        name: &str,
    ) -> Result<Operation, GoogleError> {
        let mut segments = vec!["v1"];
        segments.extend(
            name.split('/')
                .filter(|s| !s.is_empty() && *s != "." && *s != ".."),
        );
        let url = self.cfg.api_url("serviceusage", &segments);
        self.call("get_operation", Method::GET, url, token, None)
            .await
    }

    /// `POST cloudresourcemanager/v3/projects/{id}:testIamPermissions` → the granted subset.
    pub async fn test_iam_permissions(
        &self,
        token: &SecretString,
        project_id: &str,
        permissions: &[&str],
    ) -> Result<Vec<String>, GoogleError> {
        let last = format!("{project_id}:testIamPermissions");
        let url = self
            .cfg
            .api_url("cloudresourcemanager", &["v3", "projects", &last]);
        let body = serde_json::json!({ "permissions": permissions });
        let p: Permissions = self
            .call("test_iam_permissions", Method::POST, url, token, Some(body))
            .await?;
        Ok(p.permissions)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        token: &SecretString,
        body: Option<serde_json::Value>,
    ) -> Result<T, GoogleError> {
        let started = Instant::now();
        let res = self.call_inner(op, method, url, token, body).await;
        self.metrics.provider_call(
            PROVIDER,
            op,
            if res.is_ok() { "ok" } else { "error" },
            started.elapsed(),
        );
        res
    }

    async fn call_inner<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        token: &SecretString,
        body: Option<serde_json::Value>,
    ) -> Result<T, GoogleError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| GoogleError::Unauthorized)?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .timeout(self.cfg.timeout);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(op, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| self.transport(op, &e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                tracing::warn!(operation = op, category = ?e.classify(), "undecodable answer from a Google API");
                GoogleError::Unavailable("a Google API answered something that could not be read".into())
            });
        }
        let token = status_token(&bytes);
        tracing::warn!(
            operation = op,
            status = status.as_u16(),
            google_status = token.as_deref().unwrap_or("-"),
            "a Google API answered with an error status"
        );
        Err(match status {
            StatusCode::UNAUTHORIZED => GoogleError::Unauthorized,
            StatusCode::FORBIDDEN => GoogleError::Denied(token),
            StatusCode::NOT_FOUND => GoogleError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => GoogleError::RateLimited(retry_after(&headers)),
            s if s.is_server_error() => GoogleError::Unavailable(format!(
                "a Google API answered with a server error (HTTP {})",
                s.as_u16()
            )),
            s => GoogleError::Rejected(s.as_u16(), token),
        })
    }

    fn transport(&self, op: &str, e: &reqwest::Error) -> GoogleError {
        tracing::warn!(operation = op, timeout = e.is_timeout(), error = %e, "a Google API call failed");
        if e.is_timeout() {
            GoogleError::Unavailable(format!(
                "a Google API did not answer within {} seconds",
                self.cfg.timeout.as_secs()
            ))
        } else {
            GoogleError::Unavailable("a Google API could not be reached".into())
        }
    }
}

#[cfg(test)]
mod tests;
