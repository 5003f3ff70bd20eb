//! The Acme routes: connect an account with an API key, disconnect the caller's Acme connections.

use actix_web::{web, HttpResponse};
use connector_core::{Actor, ApiError, Caller, ConnectSpec, ConnectionStatus, DisconnectResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use connector_core::secret::StoredDocument;

use crate::{AcmeConnector, StoredSecret};

pub const CONNECT_PATH: &str = "/acme_api/acme/connect";
pub const DISCONNECT_PATH: &str = "/acme_api/acme/disconnect";

/// Mount the routes, with the connector as their app data.
pub(crate) fn configure(connector: web::Data<AcmeConnector>, cfg: &mut web::ServiceConfig) {
    cfg.app_data(connector)
        .service(web::resource(CONNECT_PATH).route(web::post().to(connect)))
        .service(web::resource(DISCONNECT_PATH).route(web::post().to(disconnect)));
}

/// `POST /acme_api/acme/connect`: `{"apiKey", "userId"?}` (the key's `Debug` is redacted).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    #[serde(with = "connector_core::secret::serde_secret")]
    pub api_key: SecretString,
    pub user_id: Option<String>,
}

/// The answer of a successful connect.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    pub status: &'static str,
    pub account_id: String,
    pub connection_id: String,
    /// `false` when the account was connected already (its key is replaced).
    pub created: bool,
}

async fn connect(
    connector: web::Data<AcmeConnector>,
    caller: Caller,
    body: web::Json<ConnectRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    caller.bind_owner(body.user_id.as_deref())?;
    let key = body.api_key.expose_secret().trim();
    if key.is_empty() || key.len() > 256 {
        return Err(ApiError::invalid_request(
            "apiKey is required (at most 256 characters)",
        ));
    }
    let key = SecretString::from(key.to_owned());
    let account = connector.client.account(&key).await?;
    let secret = StoredSecret { api_key: key }.encode()?;
    let spec = ConnectSpec {
        user: caller.user.clone(),
        provider: connector.provider.clone(),
        account_id: account.id.clone(),
        display_name: Some(account.name.clone()).filter(|n| !n.trim().is_empty()),
        read_only: false,
        metadata: serde_json::json!({ "accountName": account.name }),
        expires_at: None,
        status: ConnectionStatus::Active,
        secret,
    };
    let (record, created) = connector.platform.connect(spec, Actor::User).await?;
    Ok(HttpResponse::Ok().json(ConnectResponse {
        status: "success",
        account_id: account.id,
        connection_id: record.id.to_string(),
        created,
    }))
}

async fn disconnect(
    connector: web::Data<AcmeConnector>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let n = connector
        .platform
        .disconnect_all(connector.get_ref(), &caller.user, Actor::User)
        .await?;
    Ok(HttpResponse::Ok().json(DisconnectResponse::new(n, "Acme")))
}
