//! The Azure provider plugin of Aurora Connectors: connect a subscription with a service principal
//! (tenant ID, client ID, client secret), optionally a second, read-only principal, and hand
//! Resource Manager access tokens to internal services.
//!
//! It is linked into the gateway by `crates/connectors-all`; the crate registers itself with
//! `connector_core::register_plugin!("azure", build)`.
//!
//! Settings: `AURORA_AZURE_AUTHORITY_URL` (default `https://login.microsoftonline.com`),
//! `AURORA_AZURE_MANAGEMENT_URL` (default `https://management.azure.com`) and
//! `AURORA_AZURE_TIMEOUT_SECS` (per-request timeout, default 10).
//!
//! The connection's account id is the subscription id. The client secrets live in the secret store
//! only; the row keeps the tenant and client ids and the subscription's name. Credentials on use are
//! access tokens of the client-credentials grant (scope `https://management.azure.com/.default`):
//! `read_only` mode uses the read-only principal when the connection has one, else the main one.
//! Disconnecting removes our copy only: the app registration and its secrets belong to the user.

pub mod client;
pub mod flow;
mod frontend;
pub mod input;
mod routes;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::settings::ApiSettings;
use connector_core::{
    BuildError, ConnectionRecord, Connector, ConnectorError, CredentialMode, IssuedCredentials,
    Platform, SecretValue, Validated,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::{AccessToken, AzureClient, Role, Subscription};
pub use routes::{AzureApi, LoginResponse};

/// The provider id.
pub const PROVIDER_ID: &str = "azure";
/// The setting that names the Entra ID authority.
pub const AUTHORITY_URL_SETTING: &str = "AURORA_AZURE_AUTHORITY_URL";
/// The setting that names the Resource Manager endpoint.
pub const MANAGEMENT_URL_SETTING: &str = "AURORA_AZURE_MANAGEMENT_URL";
/// The setting that names the per-request timeout in seconds.
pub const TIMEOUT_SETTING: &str = "AURORA_AZURE_TIMEOUT_SECS";

/// One service principal in the secret document.
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredPrincipal {
    pub client_id: String,
    #[serde(with = "serde_secret")]
    pub client_secret: SecretString,
}

/// What the secret store keeps for an Azure connection:
/// `{"tenantId","clientId","clientSecret","readOnly"?:{"clientId","clientSecret"}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    pub tenant_id: String,
    pub client_id: String,
    #[serde(with = "serde_secret")]
    pub client_secret: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<StoredPrincipal>,
}

impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "Azure";
    const UNREADABLE: &'static str =
        "the stored Azure credentials are unreadable; connect the subscription again";
}

impl StoredSecret {
    /// The principal that serves `mode`: the read-only one in `read_only` mode when there is one.
    pub(crate) fn principal_for(&self, mode: CredentialMode) -> (Role, &str, &SecretString) {
        match (&self.read_only, mode) {
            (Some(ro), CredentialMode::ReadOnly) => {
                (Role::ReadOnly, ro.client_id.as_str(), &ro.client_secret)
            }
            _ => (Role::Main, self.client_id.as_str(), &self.client_secret),
        }
    }
}

/// The credentials document of §7: `{"accessToken","tokenType","expiresAt","tenantId","subscriptionId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsDoc<'a> {
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    access_token: &'a SecretString,
    token_type: &'a str,
    expires_at: DateTime<Utc>,
    tenant_id: &'a str,
    subscription_id: &'a str,
}

connector_core::provider_connector! {
    /// The Azure connector.
    pub struct AzureConnector(AzureClient) = PROVIDER_ID, "Azure";
}

/// Build the connector from the platform's settings (the plugin's `build`).
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    let api: ApiSettings = p.settings().extract("AURORA_AZURE_").map_err(BuildError)?;
    let authority = p.settings().get(AUTHORITY_URL_SETTING);
    let management = p.settings().get(MANAGEMENT_URL_SETTING);
    let client = AzureClient::new(
        authority.unwrap_or(client::DEFAULT_AUTHORITY_URL),
        management.unwrap_or(client::DEFAULT_MANAGEMENT_URL),
        p.http().clone(),
        p.metrics().clone(),
    )
    .map_err(|(which, e)| {
        let name = if which == "authority" {
            AUTHORITY_URL_SETTING
        } else {
            MANAGEMENT_URL_SETTING
        };
        BuildError(format!("{name} {e}"))
    })?
    .with_timeout(api.timeout);
    Ok(Arc::new(AzureConnector::new(p.clone(), client)))
}

connector_core::register_plugin!("azure", build);

#[async_trait]
impl Connector for AzureConnector {
    connector_core::provider_info!(
        "Microsoft Azure",
        ServicePrincipal,
        [MultiAccount, Credentials, ReadOnlyMode, Validate],
        [routes::LOGIN_PATH]
    );

    connector_core::connector_routes!(routes::configure, AzureApi, frontend::summary);

    /// Gets a token for each principal and reads the subscription: a refused secret (a wrong or an
    /// expired one) is a refusal, so the connection becomes `needs_reconnect`; a subscription that is
    /// no longer `Enabled` is a passing fault (`degraded`).
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let sub_id = connection.account_id.as_str();
        let token = self
            .client
            .token(
                Role::Main,
                &stored.tenant_id,
                &stored.client_id,
                &stored.client_secret,
            )
            .await?;
        let sub = self
            .client
            .get_subscription(&token, sub_id)
            .await?
            .ok_or_else(|| {
                ConnectorError::CredentialsRejected(format!(
                    "the service principal can no longer see subscription {sub_id}; give it a role \
                     on the subscription again, or connect another subscription"
                ))
            })?;
        if let Some(ro) = &stored.read_only {
            let ro_token = self
                .client
                .token(
                    Role::ReadOnly,
                    &stored.tenant_id,
                    &ro.client_id,
                    &ro.client_secret,
                )
                .await?;
            flow::check_read_only_sees(&self.client, &ro_token, sub_id)
                .await
                .map_err(|e| match e {
                    ConnectorError::InvalidRequest(m) => ConnectorError::CredentialsRejected(m),
                    other => other,
                })?;
        }
        if !sub.is_enabled() {
            return Err(ConnectorError::InvalidRequest(format!(
                "subscription {sub_id} is {} at Azure",
                if sub.state.is_empty() {
                    "not Enabled"
                } else {
                    sub.state.as_str()
                }
            )));
        }
        let mut metadata = connection.metadata.clone();
        let changed = match metadata.as_object_mut() {
            Some(m) => {
                let name = serde_json::Value::String(sub.display_name.clone());
                let state = serde_json::Value::String(sub.state.clone());
                let changed = m.get("subscriptionName") != Some(&name)
                    || m.get("subscriptionState") != Some(&state);
                m.insert("subscriptionName".into(), name);
                m.insert("subscriptionState".into(), state);
                changed
            }
            None => false,
        };
        Ok(Validated {
            metadata: changed.then_some(metadata),
            expires_at: None,
        })
    }

    /// A fresh Resource Manager token of the principal that serves `mode`. The broker caches it
    /// (encrypted) until 5 minutes before it expires.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let (role, client_id, client_secret) = stored.principal_for(mode);
        let token = self
            .client
            .token(role, &stored.tenant_id, client_id, client_secret)
            .await?;
        let doc = CredentialsDoc {
            access_token: &token.token,
            token_type: &token.token_type,
            expires_at: token.expires_at,
            tenant_id: &stored.tenant_id,
            subscription_id: &connection.account_id,
        };
        connector_core::kit::issued(&doc, Some(token.expires_at))
    }

    // `revoke` is the trait's: nothing to undo at Azure. The app registrations and their secrets
    // belong to the user, and access tokens cannot be revoked.
}

#[cfg(test)]
mod tests;
