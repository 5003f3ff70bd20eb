//! The Tailscale routes (§6): connect, SSH setup, disconnect; and their OpenAPI description.

use actix_web::{web, HttpRequest, HttpResponse};
use connector_core::error::ErrorBody;
use connector_core::kit::{BodyRefusals, CallerHeader, PickParams, PickRefusals, UpstreamRefusals};
use connector_core::secret::StoredDocument;
use connector_core::{
    Actor, ApiError, Caller, ConnectSpec, ConnectionRecord, ConnectionStatus, DisconnectResponse,
    UserId,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::client::tailnet_dns_name;
use crate::input::{ConnectRequest, DisconnectRequest, DEFAULT_TAILNET};
use crate::ssh::{self, SshKeyPair};
use crate::{StoredSecret, TailscaleConnector};

/// Answer of a successful connect.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    /// The connected tailnet (the connection's `accountId`): the name given, else the tailnet DNS
    /// name its devices reveal (`tail1234.ts.net`), else `-`.
    pub tailnet: String,
    /// How many devices the tailnet has.
    pub device_count: usize,
    pub connection_id: uuid::Uuid,
    /// The connection's SSH public key (OpenSSH format); see `/ssh-setup`.
    pub ssh_public_key: String,
}

/// What the user does so that Aurora can reach their machines over SSH.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshSetupResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    /// The connection's public key, `ssh-ed25519 AAAA… aurora-connectors`.
    pub ssh_public_key: String,
    /// `SHA256:…`.
    pub ssh_key_fingerprint: String,
    /// The connection's tailnet (its `accountId`).
    pub tailnet: String,
    /// The steps, in order.
    pub instructions: Vec<String>,
    /// A shell command that authorizes the key for the user who runs it (safe to run twice).
    pub command: String,
    pub connection_id: uuid::Uuid,
}

connector_core::provider_routes! {
    TailscaleConnector;
    post CONNECT_PATH = "/tailscale_api/tailscale/connect" => connect,
    get SSH_SETUP_PATH = "/tailscale_api/tailscale/ssh-setup" => ssh_setup,
    post DISCONNECT_PATH = "/tailscale_api/tailscale/disconnect" => disconnect,
}

fn key_error(e: ssh::KeyError) -> ApiError {
    tracing::error!(error = %e, "SSH key pair");
    ApiError::internal()
}

/// The key pair of the user's existing connection to this tailnet, so a reconnect keeps the key the
/// user already installed; else a new one.
async fn key_pair_for(
    connector: &TailscaleConnector,
    user: &UserId,
    account_id: &str,
) -> Result<SshKeyPair, ApiError> {
    let existing = connector
        .platform
        .store()
        .find_connection(user, &connector.provider, account_id)
        .await?;
    if let Some(conn) = existing {
        if let Some(secret) = connector.platform.load_secret(&conn).await? {
            match StoredSecret::decode(&secret)
                .ok()
                .map(|s| ssh::from_private(s.ssh_private_key.expose_secret()))
            {
                Some(Ok(pair)) => return Ok(pair),
                _ => {
                    tracing::warn!(connection = %conn.id, "the stored SSH key is unusable; making a new one")
                }
            }
        }
    }
    ssh::generate().map_err(key_error)
}

connector_core::connect_route! {
    /// Connect a tailnet with an OAuth client.
    connect: TailscaleConnector, ConnectRequest => ConnectResponse,
    "/tailscale_api/tailscale/connect", "tailscale",
    ok "The OAuth client works and lists the tailnet's devices; the connection is stored (or updated for a tailnet already connected, keeping its SSH key)",
    bad "A malformed field, or a tailnet Tailscale does not know (`invalid_request`)",
    rejected "Tailscale refused the OAuth client, or it may not list devices (`credentials_rejected`)";
    |connector, caller, input| {
        let token = connector
            .client
            .token(&input.client_id, &input.client_secret)
            .await?;
        let devices = connector
            .client
            .list_devices(&token, &input.tailnet)
            .await?;
        let account_id = if input.tailnet == DEFAULT_TAILNET {
            tailnet_dns_name(&devices).unwrap_or_else(|| DEFAULT_TAILNET.to_owned())
        } else {
            input.tailnet.clone()
        };
        let keys = key_pair_for(&connector, &caller.user, &account_id).await?;
        let metadata = serde_json::json!({
            "clientId": input.client_id,
            "tailnet": input.tailnet,
            "deviceCount": devices.len(),
            "sshPublicKey": keys.public,
            "sshKeyFingerprint": keys.fingerprint,
            "scope": token.scope,
        });
        let secret = StoredSecret {
            client_id: input.client_id.clone(),
            client_secret: input.client_secret.clone(),
            ssh_private_key: SecretString::from(keys.private.to_string()),
            ssh_public_key: keys.public.clone(),
        }
        .encode()?;
        let spec = ConnectSpec {
            user: caller.user.clone(),
            provider: connector.provider.clone(),
            account_id: account_id.clone(),
            display_name: Some(if account_id == DEFAULT_TAILNET {
                "Tailscale (default tailnet)".to_owned()
            } else {
                account_id.clone()
            }),
            read_only: false,
            metadata,
            expires_at: None,
            status: ConnectionStatus::Active,
            secret,
        };
        let (record, created) = connector.platform.connect(spec, Actor::User).await?;
        let message = format!(
            "Tailscale tailnet {account_id} {} ({} device{}); see ssh-setup to authorize its SSH key",
            if created { "connected" } else { "reconnected" },
            devices.len(),
            if devices.len() == 1 { "" } else { "s" },
        );
        Ok(HttpResponse::Ok().json(ConnectResponse {
            status: "success",
            message,
            tailnet: account_id,
            device_count: devices.len(),
            connection_id: record.id.0,
            ssh_public_key: keys.public,
        }))
    }
}

fn instructions(tailnet: &str) -> Vec<String> {
    vec![
        format!(
            "Choose the machines of tailnet {tailnet} that Aurora may reach over SSH, and the \
             account Aurora should log in as on each."
        ),
        "On each machine, as that account, run the command below: it adds Aurora's public key to \
         ~/.ssh/authorized_keys (running it twice adds nothing)."
            .to_owned(),
        "Make sure each machine runs an SSH server that listens on its Tailscale address \
         (port 22)."
            .to_owned(),
        "Make sure your tailnet policy file lets the machine Aurora runs on reach those machines on \
         port 22. Aurora never changes your tailnet's policy file (ACL): review and edit it \
         yourself in the Tailscale admin console."
            .to_owned(),
        format!(
            "To withdraw access, delete the line ending in {} from ~/.ssh/authorized_keys, or \
             disconnect Tailscale in Aurora (which deletes the private key).",
            ssh::KEY_COMMENT
        ),
    ]
}

/// The SSH public key of the caller's Tailscale connection, and how to authorize it.
#[utoipa::path(
    get,
    path = "/tailscale_api/tailscale/ssh-setup",
    tag = "tailscale",
    params(PickParams<TailscaleConnector>),
    responses(
        (status = 200, description = "The public key, the steps and the command", body = SshSetupResponse),
        (status = 409, description = "The stored key is missing (`needs_reconnect`)", body = ErrorBody),
        PickRefusals<TailscaleConnector>,
    )
)]
pub(crate) async fn ssh_setup(
    connector: web::Data<TailscaleConnector>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let conn = connector.pick_connection(&caller.user, &req).await?;
    let (public, fingerprint) = public_key_of(&connector, &conn).await?;
    let tailnet = conn.account_id.clone();
    Ok(HttpResponse::Ok().json(SshSetupResponse {
        status: "success",
        command: ssh::install_command(&public),
        ssh_public_key: public,
        ssh_key_fingerprint: fingerprint,
        instructions: instructions(&tailnet),
        tailnet,
        connection_id: conn.id.0,
    }))
}

/// The public key from the row's metadata, else from the stored private key.
async fn public_key_of(
    connector: &TailscaleConnector,
    conn: &ConnectionRecord,
) -> Result<(String, String), ApiError> {
    let meta = |k: &str| {
        conn.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if let (Some(public), Some(fp)) = (meta("sshPublicKey"), meta("sshKeyFingerprint")) {
        if ssh::is_public_key(&public) {
            return Ok((public, fp));
        }
    }
    let missing = || {
        ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            connector_core::error::ErrorCode::NeedsReconnect,
            "the connection's SSH key is missing; connect the tailnet again",
        )
    };
    let secret = connector
        .platform
        .load_secret(conn)
        .await?
        .ok_or_else(missing)?;
    let stored = StoredSecret::decode(&secret).map_err(|_| missing())?;
    let pair = ssh::from_private(stored.ssh_private_key.expose_secret()).map_err(|_| missing())?;
    Ok((pair.public, pair.fingerprint))
}

/// The end of the answer once connections are removed: the user takes the key off their machines.
fn ssh_key_note(n: usize, resp: &mut DisconnectResponse) {
    if n > 0 {
        resp.message.push_str(&format!(
            "; its SSH private key is deleted. Remove the public key ending in {} from the \
             machines' ~/.ssh/authorized_keys",
            ssh::KEY_COMMENT
        ));
    }
}

connector_core::disconnect_route!(
    /// Remove the caller's Tailscale connections (or one of them): the stored OAuth client, the SSH key
    /// pair, cached tokens and the row. The tailnet itself is not touched.
    disconnect: TailscaleConnector, DisconnectRequest, "/tailscale_api/tailscale/disconnect", "tailscale", "Tailscale",
    "Optional; without a connection id every Tailscale connection of the caller is removed",
    "Malformed body or connectionId, or different ids in body and query",
    then ssh_key_note,
);

/// The OpenAPI description of the Tailscale routes.
#[derive(OpenApi)]
#[openapi(
    paths(connect, ssh_setup, disconnect),
    components(schemas(ConnectRequest, ConnectResponse, SshSetupResponse, DisconnectRequest, DisconnectResponse, ErrorBody)),
    tags((name = "tailscale", description = "Tailscale tailnets connected with an OAuth client (client credentials); read-only towards the tailnet"))
)]
pub struct TailscaleApi;

#[cfg(test)]
mod tests;
