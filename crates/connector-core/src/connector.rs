//! The `Connector` trait every provider plugin implements, and the values it exchanges with the core.

use std::sync::Arc;

use actix_web::web;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ApiError, ConnectorError};
use crate::frontend::FrontendSummary;
use crate::ids::{CredentialMode, ProviderId, UserId};
use crate::secret::SecretValue;
use crate::store::ConnectionRecord;

/// How a provider authenticates the user's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[serde(rename = "oauth2")]
    OAuth2,
    RoleAssumption,
    ServicePrincipal,
    ApiKey,
    #[serde(rename = "oauth_client_credentials")]
    OAuthClientCredentials,
}

/// What a provider can do, as listed by `GET /api/providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Several accounts per user.
    MultiAccount,
    /// Hands out short-lived credentials through `/api/connections/{id}/credentials`.
    Credentials,
    /// A distinct read-only mode.
    ReadOnlyMode,
    /// Can check a connection live.
    Validate,
    /// Revokes at the provider on disconnect.
    ProviderRevoke,
    /// Setup continues asynchronously after connect.
    AsyncSetup,
}

/// A provider's self-description.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    #[schema(value_type = String)]
    pub id: ProviderId,
    pub display_name: String,
    pub auth_kind: AuthKind,
    pub capabilities: Vec<Capability>,
    /// Paths of this provider's routes that need no caller identity (an OAuth callback).
    #[serde(skip)]
    pub open_paths: Vec<&'static str>,
    /// Route patterns (as mounted, e.g. `/scaleway_api/scaleway/connect`) that connect an account or
    /// start an authorization: the gateway rate-limits them per user (`AURORA_RATE_LIMIT_CONNECT_PER_MIN`).
    #[serde(skip)]
    pub connect_paths: Vec<&'static str>,
}

/// Usable credentials produced for an internal caller.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    /// The provider-specific JSON object of §7 (`accessKeyId`…, `accessToken`…).
    pub credentials: SecretValue,
    /// When they stop working; `None` for credentials that do not expire (an API key).
    pub expires_at: Option<DateTime<Utc>>,
    /// A replacement for the connection's stored secret (a rotated refresh token), written back by
    /// the core before the credentials are returned.
    pub updated_secret: Option<SecretValue>,
}

/// The outcome of a successful live check.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// New metadata to store, if the check learned something (project list, key expiry).
    pub metadata: Option<serde_json::Value>,
    /// When the long-lived secret itself ends, if the provider says.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A provider plugin. Built once at start-up from a [`crate::Platform`], shared by every worker.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn info(&self) -> ProviderInfo;

    /// Mount the provider's own routes (connect, disconnect, provider-specific reads).
    /// Called once per HTTP worker.
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig);

    /// The OpenAPI description of the routes mounted by [`Connector::configure`].
    fn openapi(&self) -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApiBuilder::new().build()
    }

    /// Check live that the stored credentials still work.
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError>;

    /// Produce usable credentials for `mode`.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError>;

    /// Start the plugin's background work (a setup-task worker, …) on the current runtime. Called
    /// once after start-up; the gateway aborts the returned tasks at shutdown. Default: none.
    fn spawn_background(self: Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }

    /// Undo what the provider allows at disconnect (revoke a token, delete a key we created).
    /// Best effort: the core logs a failure and goes on deleting our side.
    async fn revoke(
        &self,
        _connection: &ConnectionRecord,
        _secret: &SecretValue,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Repair what a crash can leave half-done in this provider's own state (for example a
    /// connection left `pending` without the task that would finish it). Called by the reconciler
    /// that one replica at a time runs under a lease; returns how many things it repaired (each one
    /// logged by the plugin). Default: nothing to repair.
    async fn reconcile(&self) -> Result<u64, ConnectorError> {
        Ok(0)
    }

    /// How Aurora's frontend shows this connection when it is connected (§9.1: C1, C2, C3): stored
    /// state only, no provider call. Default: [`FrontendSummary::generic`].
    fn frontend_summary(&self, connection: &ConnectionRecord) -> FrontendSummary {
        FrontendSummary::generic(&self.info(), connection)
    }

    /// C4 (§9.1): remove every connection of `user` with this provider's own clean-up, answering how
    /// many went. `None` (the default): the gateway removes each through
    /// [`crate::Platform::disconnect`] (revoke, secret, row).
    async fn disconnect_all(&self, _user: &UserId) -> Option<Result<usize, ApiError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_kinds_serialize_as_the_api_spells_them() {
        let names: Vec<String> = [
            AuthKind::OAuth2,
            AuthKind::RoleAssumption,
            AuthKind::ServicePrincipal,
            AuthKind::ApiKey,
            AuthKind::OAuthClientCredentials,
        ]
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(
            names,
            [
                "oauth2",
                "role_assumption",
                "service_principal",
                "api_key",
                "oauth_client_credentials"
            ]
        );
    }
}
