//! The Tailscale provider plugin of Aurora Connectors: connect a tailnet with an OAuth client
//! (client id + secret, client-credentials grant), give each connection its own Ed25519 SSH key
//! pair, and hand API access tokens to internal services.
//!
//! It is linked into the gateway by `crates/connectors-all`; the crate registers itself with
//! `connector_core::register_plugin!("tailscale", build)`.
//!
//! Settings: `AURORA_TAILSCALE_API_URL` (default `https://api.tailscale.com`) and
//! `AURORA_TAILSCALE_TIMEOUT_SECS` (per-request timeout, default 10).
//!
//! The connector only reads the tailnet (a token, the device list). It never modifies the tailnet's
//! policy file (ACL), keys or devices: the user authorizes the SSH public key on their machines and
//! edits their policy themselves, following `/ssh-setup`.

pub mod client;
mod frontend;
pub mod input;
mod routes;
pub mod ssh;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::{
    BuildError, ConnectionRecord, Connector, ConnectorError, CredentialMode, IssuedCredentials,
    Platform, SecretValue, Validated,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::{AccessToken, Device, TailscaleClient};
pub use routes::{ConnectResponse, SshSetupResponse, TailscaleApi};

/// The provider id.
pub const PROVIDER_ID: &str = "tailscale";
/// The setting that names the API base URL.
pub const API_URL_SETTING: &str = "AURORA_TAILSCALE_API_URL";
/// The setting that names the per-request timeout in seconds.
pub const TIMEOUT_SETTING: &str = "AURORA_TAILSCALE_TIMEOUT_SECS";

/// What the secret store keeps for a Tailscale connection:
/// `{"clientId","clientSecret","sshPrivateKey","sshPublicKey"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    pub client_id: String,
    #[serde(with = "serde_secret")]
    pub client_secret: SecretString,
    /// OpenSSH format, unencrypted (the secret store encrypts it).
    #[serde(with = "serde_secret")]
    pub ssh_private_key: SecretString,
    pub ssh_public_key: String,
}

impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "Tailscale";
    const UNREADABLE: &'static str =
        "the stored Tailscale credentials are unreadable; connect the tailnet again";
}

/// The credentials document of §7: `{"accessToken","tokenType","expiresAt","tailnet"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsDoc<'a> {
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    access_token: &'a SecretString,
    token_type: &'a str,
    expires_at: DateTime<Utc>,
    tailnet: &'a str,
}

/// The tailnet as the API path takes it for this connection (metadata `tailnet`: `-` or the name
/// the user gave), else its account id.
pub(crate) fn api_tailnet(conn: &ConnectionRecord) -> &str {
    conn.metadata
        .get("tailnet")
        .and_then(|v| v.as_str())
        .filter(|s| input::is_tailnet(s))
        .unwrap_or(&conn.account_id)
}

connector_core::provider_connector! {
    /// The Tailscale connector.
    pub struct TailscaleConnector(TailscaleClient) = PROVIDER_ID, "Tailscale";
    pick_connection or "no Tailscale connection; connect a Tailscale OAuth client first";
}

/// Build the connector from the platform's settings (the plugin's `build`).
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    let client = TailscaleClient::from_settings(p, "AURORA_TAILSCALE_", client::DEFAULT_API_URL)?;
    Ok(Arc::new(TailscaleConnector::new(p.clone(), client)))
}

connector_core::register_plugin!("tailscale", build);

#[async_trait]
impl Connector for TailscaleConnector {
    connector_core::provider_info!(
        "Tailscale",
        OAuthClientCredentials,
        [MultiAccount, Credentials, Validate],
        [routes::CONNECT_PATH]
    );

    connector_core::connector_routes!(routes::configure, TailscaleApi, frontend::summary);

    /// A fresh grant and the device list: a refused OAuth client is a refusal (`needs_reconnect`).
    /// Refreshes `deviceCount` in the metadata.
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let token = self
            .client
            .token(&stored.client_id, &stored.client_secret)
            .await?;
        let devices = self
            .client
            .list_devices(&token, api_tailnet(connection))
            .await?;
        let count = serde_json::Value::from(devices.len());
        let mut metadata = connection.metadata.clone();
        let metadata = match metadata.as_object_mut() {
            Some(m) if m.get("deviceCount") != Some(&count) => {
                m.insert("deviceCount".into(), count);
                Some(metadata)
            }
            _ => None,
        };
        Ok(Validated {
            metadata,
            expires_at: None,
        })
    }

    /// A fresh client-credentials grant (Tailscale issues no refresh token). The broker calls this
    /// only on a cache miss or inside 5 minutes of expiry. Both modes get the same token: its rights
    /// are the OAuth client's scopes.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        _mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let token = self
            .client
            .token(&stored.client_id, &stored.client_secret)
            .await?;
        let doc = CredentialsDoc {
            access_token: &token.token,
            token_type: &token.token_type,
            expires_at: token.expires_at,
            tailnet: api_tailnet(connection),
        };
        connector_core::kit::issued(&doc, Some(token.expires_at))
    }

    // `revoke` is the trait's: nothing to undo at Tailscale. The OAuth client belongs to the user,
    // its access tokens expire within the hour, and the tailnet was never changed. The SSH private
    // key goes with the secret, which the core deletes.
}

#[cfg(test)]
mod tests;
