//! The Scaleway provider plugin of Aurora Connectors: connect an organization with an IAM API key
//! (access key + secret key), list its projects, hand the key to internal services.
//!
//! Link it into the gateway with `use connector_scaleway as _;`: the crate registers itself with
//! `connector_core::register_plugin!("scaleway", build)`.
//!
//! Settings: `AURORA_SCALEWAY_API_URL` (default `https://api.scaleway.com`) and
//! `AURORA_SCALEWAY_TIMEOUT_SECS` (per-request timeout, default 10).
//!
//! Scaleway has no session credentials: the credentials handed out, in `read_only` as in `full` mode,
//! are the API key itself, whose rights are those of its IAM user or application. Disconnecting does
//! not delete the key at Scaleway (it belongs to the user); it removes our copy only.

pub mod client;
pub mod flow;
mod frontend;
pub mod input;
mod routes;
mod selection;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::{
    BuildError, ConnectionRecord, Connector, ConnectorError, CredentialMode, IssuedCredentials,
    Platform, SecretValue, Validated,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::ScalewayClient;
pub use routes::{ConnectResponse, ProjectView, ProjectsResponse, ScalewayApi};

/// The provider id.
pub const PROVIDER_ID: &str = "scaleway";
/// The setting that names the API base URL.
pub const API_URL_SETTING: &str = "AURORA_SCALEWAY_API_URL";
/// The setting that names the per-request timeout in seconds.
pub const TIMEOUT_SETTING: &str = "AURORA_SCALEWAY_TIMEOUT_SECS";

/// What the secret store keeps for a Scaleway connection: `{"accessKey","secretKey"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    pub access_key: String,
    #[serde(with = "serde_secret")]
    pub secret_key: SecretString,
}

impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "Scaleway";
    const UNREADABLE: &'static str =
        "the stored Scaleway credentials are unreadable; connect the account again";
}

/// The credentials document of §7: `{"accessKey","secretKey","organizationId","projectId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsDoc<'a> {
    access_key: &'a str,
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    secret_key: &'a SecretString,
    organization_id: &'a str,
    project_id: Option<&'a str>,
}

/// The project a connection uses (metadata `projectId`).
pub(crate) fn connection_project(conn: &ConnectionRecord) -> Option<&str> {
    conn.metadata
        .get("projectId")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

connector_core::provider_connector! {
    /// The Scaleway connector.
    pub struct ScalewayConnector(ScalewayClient) = PROVIDER_ID, "Scaleway";
    pick_connection or "no Scaleway connection; connect a Scaleway API key first";
}

/// Build the connector from the platform's settings (the plugin's `build`).
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    let client = ScalewayClient::from_settings(p, "AURORA_SCALEWAY_", client::DEFAULT_API_URL)?;
    Ok(Arc::new(ScalewayConnector::new(p.clone(), client)))
}

connector_core::register_plugin!("scaleway", build);

#[async_trait]
impl Connector for ScalewayConnector {
    connector_core::provider_info!(
        "Scaleway",
        ApiKey,
        [MultiAccount, Credentials, Validate],
        [routes::CONNECT_PATH]
    );

    connector_core::connector_routes!(routes::mount, ScalewayApi, frontend::summary);

    /// Reads the API key with its own secret: a refusal means the key was deleted, expired or its
    /// secret changed. Refreshes `keyExpiresAt` in the metadata.
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let key = self
            .client
            .get_api_key(&stored.secret_key, &stored.access_key)
            .await?;
        flow::check_not_expired(key.expires_at, Utc::now())?;
        let expiry = key
            .expires_at
            .map(|t| serde_json::Value::String(t.to_rfc3339()));
        let mut metadata = connection.metadata.clone();
        let metadata = match (metadata.as_object_mut(), expiry) {
            (Some(m), Some(e)) if m.get("keyExpiresAt") != Some(&e) => {
                m.insert("keyExpiresAt".into(), e);
                Some(metadata)
            }
            (Some(m), None) if m.contains_key("keyExpiresAt") => {
                m.remove("keyExpiresAt");
                Some(metadata)
            }
            _ => None,
        };
        Ok(Validated {
            metadata,
            expires_at: key.expires_at,
        })
    }

    /// The API key itself, in both modes: Scaleway has no session credentials and no read-only
    /// variant of a key. No provider call is made.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        _mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        flow::check_not_expired(connection.expires_at, Utc::now())?;
        let doc = CredentialsDoc {
            access_key: &stored.access_key,
            secret_key: &stored.secret_key,
            organization_id: &connection.account_id,
            project_id: connection_project(connection),
        };
        connector_core::kit::issued(&doc, connection.expires_at)
    }

    // `revoke` is the trait's: nothing to undo at Scaleway, the API key belongs to the user and is
    // not deleted.
}

#[cfg(test)]
mod tests;
