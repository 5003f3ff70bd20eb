//! Acme, an example provider plugin written outside Aurora Connectors (no fork): a user connects an
//! Acme account with an API key; internal services get the key back as credentials.
//!
//! The crate registers itself with `connector_core::register_plugin!("acme", build)`; a gateway
//! binary links it with `use acme_provider as _;` (see `examples/custom-gateway`).
//!
//! Setting: `AURORA_ACME_API_URL` (default `https://api.acme.example`).
//!
//! The [`guide`] module holds docs/adding-a-provider.md, whose Rust snippets are this crate's
//! doc-tests.

pub mod client;
mod routes;

use std::sync::Arc;

use actix_web::web;
use async_trait::async_trait;
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::{
    AuthKind, BuildError, Capability, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, Platform, ProviderInfo, SecretValue, Validated,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use client::{Account, AcmeClient};
pub use routes::{ConnectRequest, ConnectResponse, CONNECT_PATH, DISCONNECT_PATH};

#[doc = include_str!("../../../docs/adding-a-provider.md")]
pub mod guide {}

/// The provider id.
pub const PROVIDER_ID: &str = "acme";
/// The setting that names the API base URL.
pub const API_URL_SETTING: &str = "AURORA_ACME_API_URL";

/// What the secret store keeps for an Acme connection: `{"apiKey"}`. `Debug` is derived and still
/// redacted: `SecretString` prints `[REDACTED]`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    #[serde(with = "serde_secret")]
    pub api_key: SecretString,
}

/// `encode` and `decode` (a document that does not decode asks the user to reconnect) come from
/// the core's [`StoredDocument`].
impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "Acme";
    const UNREADABLE: &'static str =
        "the stored Acme credentials are unreadable; connect the account again";
}

connector_core::provider_connector! {
    /// The Acme connector: the shared platform and the API client (the provider kit's declaration).
    pub struct AcmeConnector(AcmeClient) = PROVIDER_ID, "Acme";
}

/// Build the connector from the platform's settings (the plugin's `build`).
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    let url = p
        .settings()
        .get(API_URL_SETTING)
        .unwrap_or(client::DEFAULT_API_URL);
    let client = AcmeClient::new(url, p.http().clone(), p.metrics().clone())
        .map_err(|e| BuildError(format!("{API_URL_SETTING} {e}")))?;
    Ok(Arc::new(AcmeConnector::new(p.clone(), client)))
}

connector_core::register_plugin!("acme", build);

#[async_trait]
impl Connector for AcmeConnector {
    fn info(&self) -> ProviderInfo {
        use Capability::*;
        let (id, kind) = (self.provider.clone(), AuthKind::ApiKey);
        let caps = [Credentials, Validate];
        ProviderInfo::new(id, "Acme", kind, &caps, &[CONNECT_PATH])
    }

    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        routes::configure(web::Data::from(self), cfg);
    }

    /// Reads the account with the stored key: a refusal means the key was revoked at Acme.
    async fn validate(
        &self,
        _connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        self.client.account(&stored.api_key).await?;
        Ok(Validated {
            metadata: None,
            expires_at: None,
        })
    }

    /// The API key itself, `{"apiKey"}`, in both modes; no provider call.
    async fn issue_credentials(
        &self,
        _connection: &ConnectionRecord,
        secret: &SecretValue,
        _mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        Ok(IssuedCredentials {
            credentials: stored.encode().map_err(ConnectorError::Api)?,
            expires_at: None,
            updated_secret: None,
        })
    }

    // `revoke` is the trait's: nothing to undo at Acme, the key belongs to the user.
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const KEY: &str = "acme-key-MARKER-0123456789";

    #[test]
    fn stored_secret_round_trip_and_redaction() {
        let s = StoredSecret {
            api_key: SecretString::from(KEY),
        };
        assert!(!format!("{s:?}").contains(KEY));
        let v = s.encode().unwrap();
        let raw: serde_json::Value = v.decode().unwrap();
        assert_eq!(raw, serde_json::json!({ "apiKey": KEY }));
        assert_eq!(
            StoredSecret::decode(&v).unwrap().api_key.expose_secret(),
            KEY
        );
    }

    #[test]
    fn an_unreadable_secret_is_a_refusal_without_its_content() {
        let v = SecretValue::encode(&serde_json::json!({ "apiKey": 7, "x": KEY })).unwrap();
        let e = StoredSecret::decode(&v).unwrap_err();
        assert!(e.is_refusal());
        assert!(!e.to_string().contains(KEY));
    }

    #[test]
    fn registers_itself_under_its_id() {
        let plugins = connector_core::plugin::registered().unwrap();
        assert!(plugins.contains_key(PROVIDER_ID));
    }
}
