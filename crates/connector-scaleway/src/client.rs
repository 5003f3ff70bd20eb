//! A small client of the Scaleway public API: IAM v1alpha1 (API keys, users, applications) and
//! Account v3 (projects), authenticated with `X-Auth-Token: <secret key>`.
//!
//! Errors are [`ConnectorError`]s whose messages are written for users: they never hold the secret
//! key, the request headers or a response body. Every HTTP call is recorded in the
//! `provider_call_duration_seconds` histogram with provider `scaleway`.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_core::upstream;
use connector_core::ConnectorError;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The provider id used in metric labels and connection rows.
pub const PROVIDER: &str = "scaleway";
/// The service's name in messages.
const SERVICE: &str = "Scaleway";
/// The public API, used when `AURORA_SCALEWAY_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.scaleway.com";
/// The per-request timeout, unless [`ScalewayClient::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest page the Account API serves.
pub const PAGE_SIZE: u32 = 100;
/// A backstop against a provider whose pagination never ends (100 000 projects).
const MAX_PAGES: u32 = 1000;

/// The header Scaleway reads the secret key from.
pub const AUTH_HEADER: &str = "X-Auth-Token";

/// An IAM API key as `GET /iam/v1alpha1/api-keys/{access_key}` describes it. The secret key is never
/// part of this answer (Scaleway shows it only once, at creation) and is not read from it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiKey {
    pub access_key: String,
    /// The IAM user that bears the key (one of `user_id` / `application_id`).
    #[serde(default, deserialize_with = "non_empty")]
    pub user_id: Option<String>,
    /// The IAM application that bears the key.
    #[serde(default, deserialize_with = "non_empty")]
    pub application_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An IAM user or application: only what the connector needs from either.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Principal {
    pub id: String,
    pub organization_id: String,
}

/// An Account v3 project.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Project {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub organization_id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct ListProjectsPage {
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    projects: Vec<Project>,
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

connector_core::api_operations! {
    /// The API calls, for metric labels and for what a 404 means.
    enum Op {
        GetApiKey = "get_api_key",
        GetUser = "get_user",
        GetApplication = "get_application",
        ListProjects = "list_projects",
    }
}

connector_core::api_client! {
    /// The Scaleway API client. Cheap to clone; `Debug` shows the base URL and the timeout.
    pub struct ScalewayClient = PROVIDER, DEFAULT_TIMEOUT;
}

/// The API base URL setting's check, shared by every provider.
pub use connector_core::kit::parse_base_url;

impl ScalewayClient {
    /// `GET /iam/v1alpha1/api-keys/{access_key}`. Proves that the secret key works; an unknown access
    /// key (404) is a refusal too.
    pub async fn get_api_key(
        &self,
        secret_key: &SecretString,
        access_key: &str,
    ) -> Result<ApiKey, ConnectorError> {
        let url = self.url(&["iam", "v1alpha1", "api-keys", access_key]);
        self.get_json(Op::GetApiKey, url, secret_key).await
    }

    /// `GET /iam/v1alpha1/users/{id}`.
    pub async fn get_user(
        &self,
        secret_key: &SecretString,
        id: &str,
    ) -> Result<Principal, ConnectorError> {
        self.get_principal(secret_key, Op::GetUser, id).await
    }

    /// `GET /iam/v1alpha1/users/{id}` (`Op::GetUser`) or `/applications/{id}`
    /// (`Op::GetApplication`).
    async fn get_principal(
        &self,
        secret_key: &SecretString,
        op: Op,
        id: &str,
    ) -> Result<Principal, ConnectorError> {
        let collection = if op == Op::GetUser {
            "users"
        } else {
            "applications"
        };
        let url = self.url(&["iam", "v1alpha1", collection, id]);
        self.get_json(op, url, secret_key).await
    }

    /// The organization of the key's bearer (its user, else its application); `None` when Scaleway
    /// names neither.
    pub async fn key_organization(
        &self,
        secret_key: &SecretString,
        key: &ApiKey,
    ) -> Result<Option<String>, ConnectorError> {
        let (op, id) = match (&key.user_id, &key.application_id) {
            (Some(user), _) => (Op::GetUser, user),
            (None, Some(app)) => (Op::GetApplication, app),
            (None, None) => return Ok(None),
        };
        Ok(Some(
            self.get_principal(secret_key, op, id)
                .await?
                .organization_id,
        ))
    }

    /// Every project of the organization: `GET /account/v3/projects` page after page, until the
    /// collected count reaches `total_count` or a page is empty.
    pub async fn list_projects(
        &self,
        secret_key: &SecretString,
        organization_id: &str,
    ) -> Result<Vec<Project>, ConnectorError> {
        let mut all: Vec<Project> = Vec::new();
        let mut seen = HashSet::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["account", "v3", "projects"]);
            url.query_pairs_mut()
                .append_pair("organization_id", organization_id)
                .append_pair("page", &page.to_string())
                .append_pair("page_size", &PAGE_SIZE.to_string());
            let batch: ListProjectsPage = self.get_json(Op::ListProjects, url, secret_key).await?;
            if batch.projects.is_empty() {
                return Ok(all);
            }
            let before = all.len();
            for mut p in batch.projects {
                if p.organization_id.is_empty() {
                    p.organization_id = organization_id.to_owned();
                }
                if seen.insert(p.id.clone()) {
                    all.push(p);
                }
            }
            // A page that brings nothing new means the server ignores `page`: stop rather than loop.
            if all.len() == before || all.len() as u64 >= batch.total_count {
                return Ok(all);
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "Scaleway's project list did not end; giving up"
        );
        Err(ConnectorError::ProviderUnavailable(
            "Scaleway's project list did not end; try again later".into(),
        ))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        op: Op,
        url: Url,
        secret_key: &SecretString,
    ) -> Result<T, ConnectorError> {
        self.base
            .timed(op.as_str(), self.get_json_inner(op, url, secret_key))
            .await
    }

    async fn get_json_inner<T: DeserializeOwned>(
        &self,
        op: Op,
        url: Url,
        secret_key: &SecretString,
    ) -> Result<T, ConnectorError> {
        let mut token = HeaderValue::from_str(secret_key.expose_secret()).map_err(|_| {
            ConnectorError::CredentialsRejected(
                "the secret key contains characters that cannot be sent to Scaleway; check it"
                    .into(),
            )
        })?;
        token.set_sensitive(true);
        let req = self
            .base
            .http()
            .get(url)
            .header(AUTH_HEADER, token)
            .header(ACCEPT, "application/json");
        let body = upstream::fetch(SERVICE, op.as_str(), self.base.timeout(), req, |s, h| {
            status_error(op, s, h)
        })
        .await?;
        serde_json::from_slice(&body).map_err(|e| {
            // The decode error can quote the body; it goes to the log only, never to the caller.
            tracing::warn!(operation = op.as_str(), error = %e, "undecodable answer from Scaleway");
            ConnectorError::ProviderUnavailable(
                "Scaleway returned an answer that could not be read; try again later".into(),
            )
        })
    }
}

/// What a non-2xx status means for the user. The body is not read: it is never shown.
fn status_error(op: Op, status: StatusCode, headers: &HeaderMap) -> ConnectorError {
    upstream::log_status(SERVICE, op.as_str(), status);
    if let Some(e) = upstream::busy_or_down(SERVICE, status, headers) {
        return e;
    }
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            ConnectorError::CredentialsRejected(format!(
                "Scaleway refused the API key (HTTP {}). Check that the access key and the secret key \
                 belong to the same API key, that the key has not expired or been deleted, and that \
                 its user or application may read IAM (for example with the IAMReadOnly permission \
                 set) and list the organization's projects",
                status.as_u16()
            ))
        }
        StatusCode::NOT_FOUND => match op {
            Op::GetApiKey => ConnectorError::CredentialsRejected(
                "Scaleway does not know this access key. Check that it is copied correctly and that \
                 the API key has not been deleted"
                    .into(),
            ),
            Op::GetUser | Op::GetApplication => ConnectorError::CredentialsRejected(
                "the user or application that holds this API key no longer exists at Scaleway".into(),
            ),
            Op::ListProjects => ConnectorError::InvalidRequest(
                "Scaleway does not know this organization, or the API key cannot see it".into(),
            ),
        },
        s => upstream::unexpected_status(SERVICE, op.as_str(), s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Metrics;
    use std::sync::Arc;

    #[test]
    fn urls_keep_a_prefix_and_encode_segments() {
        let c = ScalewayClient::new(
            "http://h:1/pre/",
            reqwest::Client::new(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        assert_eq!(
            c.url(&["iam", "v1alpha1", "users", "a/b?c"]).as_str(),
            "http://h:1/pre/iam/v1alpha1/users/a%2Fb%3Fc"
        );
        let c = ScalewayClient::new(
            "https://api.scaleway.com",
            reqwest::Client::new(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        assert_eq!(
            c.url(&["account", "v3", "projects"]).as_str(),
            "https://api.scaleway.com/account/v3/projects"
        );
    }

    #[test]
    fn api_key_decodes_nulls_and_empties() {
        let k: ApiKey = serde_json::from_str(
            r#"{"access_key":"SCWABCDEFGHIJKLMNOPQ","secret_key":null,"user_id":"","application_id":"a1",
                "default_project_id":null,"description":"d","created_at":"2024-01-02T03:04:05.123456Z",
                "expires_at":null,"editable":true,"creation_ip":"1.2.3.4"}"#,
        )
        .unwrap();
        assert_eq!(k.user_id, None);
        assert_eq!(k.application_id.as_deref(), Some("a1"));
        assert_eq!(k.default_project_id, None);
        assert_eq!(k.expires_at, None);
        assert!(k.created_at.is_some());
    }
}
