//! A stand-in connector for connections whose provider plugin is no longer linked: disconnect still
//! cleans up the gateway's side; every provider call is refused.

use std::sync::Arc;

use actix_web::web;
use connector_core::{
    async_trait, AuthKind, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, ProviderId, ProviderInfo, SecretValue, Validated,
};

pub struct Unlinked(pub ProviderId);

#[async_trait]
impl Connector for Unlinked {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: self.0.clone(),
            display_name: self.0.to_string(),
            auth_kind: AuthKind::ApiKey,
            capabilities: vec![],
            open_paths: vec![],
            connect_paths: vec![],
        }
    }
    fn configure(self: Arc<Self>, _cfg: &mut web::ServiceConfig) {}
    async fn validate(
        &self,
        _c: &ConnectionRecord,
        _s: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        Err(ConnectorError::ProviderUnavailable(
            "the provider's plugin is not installed".into(),
        ))
    }
    async fn issue_credentials(
        &self,
        _c: &ConnectionRecord,
        _s: &SecretValue,
        _m: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        Err(ConnectorError::ProviderUnavailable(
            "the provider's plugin is not installed".into(),
        ))
    }
}
