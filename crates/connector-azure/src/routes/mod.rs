//! The Azure routes (§4): login and disconnect; and their OpenAPI description.

use actix_web::HttpResponse;
use connector_core::error::ErrorBody;
use connector_core::kit::{display_name_or, BodyRefusals, CallerHeader, UpstreamRefusals};
use connector_core::secret::StoredDocument;
use connector_core::{Actor, ConnectSpec, ConnectionStatus, DisconnectResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::input::{DisconnectRequest, LoginRequest, ReadOnlyCredentials};
use crate::{flow, AzureConnector, StoredPrincipal, StoredSecret};

/// Answer of a successful login.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// The connected subscription (the connection's `accountId`).
    #[schema(format = Uuid)]
    pub subscription_id: String,
    pub subscription_name: String,
    pub connection_id: uuid::Uuid,
}

connector_core::provider_routes! {
    AzureConnector;
    post LOGIN_PATH = "/azure/login" => login,
    post DISCONNECT_PATH = "/azure/disconnect" => disconnect,
}

connector_core::connect_route! {
    /// Connect an Azure subscription with a service principal.
    login: AzureConnector, LoginRequest => LoginResponse, "/azure/login", "azure",
    ok "The service principal works and sees the subscription; the connection is stored (or updated for a subscription already connected)",
    bad "A malformed field (`tenantId`, `clientId` and `subscriptionId` are GUIDs), a requested subscription that does not exist or is not `Enabled`, no enabled subscription, or a read-only principal that cannot see the subscription (`invalid_request`)",
    rejected "Azure refused a principal: a wrong secret (AADSTS7000215), an unknown tenant (AADSTS90002), an unknown application (AADSTS700016), an expired secret (AADSTS7000222), … (`credentials_rejected`)";
    |connector, caller, input| {
        let resolved = flow::resolve(&connector.client, &input).await?;
        let sub = &resolved.subscription;
        let subscription_id = sub.subscription_id.to_ascii_lowercase();
        let mut metadata = serde_json::json!({
            "tenantId": input.tenant_id,
            "clientId": input.principal.client_id,
            "subscriptionName": sub.display_name,
            "subscriptionState": sub.state,
            "subscriptionsVisible": resolved.subscriptions_count,
        });
        if let Some(ro) = &input.read_only {
            metadata["readOnlyClientId"] = serde_json::Value::String(ro.client_id.clone());
        }
        let secret = StoredSecret {
            tenant_id: input.tenant_id.clone(),
            client_id: input.principal.client_id.clone(),
            client_secret: input.principal.client_secret.clone(),
            read_only: input.read_only.as_ref().map(|ro| StoredPrincipal {
                client_id: ro.client_id.clone(),
                client_secret: ro.client_secret.clone(),
            }),
        }
        .encode()?;
        let display_name = display_name_or(&sub.display_name, &subscription_id);
        let spec = ConnectSpec {
            user: caller.user.clone(),
            provider: connector.provider.clone(),
            account_id: subscription_id.clone(),
            display_name: Some(display_name.clone()),
            read_only: input.read_only.is_some(),
            metadata,
            expires_at: None,
            status: ConnectionStatus::Active,
            secret,
        };
        let (record, created) = connector.platform.connect(spec, Actor::User).await?;
        let message = format!(
            "Azure subscription {display_name} {}{}",
            if created { "connected" } else { "reconnected" },
            if input.read_only.is_some() {
                ", with a read-only service principal for read-only use"
            } else {
                ""
            }
        );
        Ok(HttpResponse::Ok().json(LoginResponse {
            status: "success",
            message,
            tenant_id: input.tenant_id,
            subscription_id,
            subscription_name: sub.display_name.clone(),
            connection_id: record.id.0,
        }))
    }
}

connector_core::disconnect_route!(
    /// Remove the caller's Azure connections (or one of them). The app registrations stay at Azure.
    disconnect: AzureConnector, DisconnectRequest, "/azure/disconnect", "azure", "Azure",
    "Optional; without a connection or subscription id every Azure connection of the caller is removed",
    "Malformed body, connectionId or subscriptionId, or different connection ids in body and query",
);

/// The OpenAPI description of the Azure routes.
#[derive(OpenApi)]
#[openapi(
    paths(login, disconnect),
    components(schemas(LoginRequest, ReadOnlyCredentials, LoginResponse, DisconnectRequest, DisconnectResponse, ErrorBody)),
    tags((name = "azure", description = "Azure subscriptions connected with a service principal (client credentials)"))
)]
pub struct AzureApi;

#[cfg(test)]
mod tests;
