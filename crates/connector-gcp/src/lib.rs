//! The Google Cloud provider plugin of Aurora Connectors (§2 of the HTTP contract).
//!
//! - **Sign-in**: the OAuth 2.0 authorization-code flow with PKCE (S256). `POST /gcp/login` stores the
//!   `state` as its SHA-256 with the sealed PKCE verifier (single use, 10 minutes, bound to the user)
//!   and answers the authorization URL; `GET|POST /gcp/callback` (open) takes the state, exchanges
//!   the code with the verifier, reads the account's identity, stores the refresh token in the
//!   secret store, creates the connection in `pending` and queues the setup task.
//! - **Setup**: a durable task in the database (`setup_tasks`), worked by a background worker in every
//!   replica under a lease; seven idempotent steps, each persisting its progress (see [`setup`]).
//! - **Credentials on use**: an access token refreshed with the refresh token; `invalid_grant` makes
//!   the connection `needs_reconnect`.
//! - **Force-disconnect**: revokes at Google, deletes every GCP secret of the user, evicts the cache,
//!   removes the connections and cancels running setup tasks.
//!
//! The OAuth calls are plain `reqwest` (see `docs/providers/gcp.md` for why not the `oauth2` crate).
//! Without `AURORA_GCP_CLIENT_ID` and `AURORA_GCP_CLIENT_SECRET` the plugin is still listed, its
//! routes answer 503 `not_configured`, and no worker runs.

pub mod api;
pub mod config;
mod frontend;
pub mod oauth;
mod reconcile;
mod routes;
pub mod setup;

use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::{
    Actor, ApiError, AuthKind, BuildError, Capability, ConnectionId, ConnectionRecord,
    ConnectionStatus, Connector, ConnectorError, CredentialMode, IssuedCredentials, Platform,
    ProviderId, ProviderInfo, SealingKey, SecretPath, SecretValue, StatusUpdate, UserId, Validated,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

pub use api::GcpApi;
pub use config::GcpConfig;
pub use oauth::OAuthClient;
pub use routes::{GcpApiDoc, CALLBACK_PATH};

/// The provider id, as registered and as it appears in the routes.
pub const PROVIDER_ID: &str = "gcp";
/// Where the key that seals PKCE verifiers lives in the secret store (shared by every replica).
const STATE_KEY_PATH: &str = "gcp-oauth-state-key";

/// What the secret store keeps for a GCP connection:
/// `{"refreshToken","scope","sub","email","obtainedAt"}`. No access token is stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    #[serde(with = "serde_secret")]
    pub refresh_token: SecretString,
    #[serde(default)]
    pub scope: Option<String>,
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    pub obtained_at: DateTime<Utc>,
}

impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "GCP";
    const UNREADABLE: &'static str =
        "the stored Google authorization is unreadable; connect the Google account again";
}

/// The credentials document of §7: `{"accessToken","tokenType","expiresAt"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsDoc<'a> {
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    access_token: &'a SecretString,
    token_type: &'a str,
    expires_at: DateTime<Utc>,
}

/// A fresh access token, and the secret document to store when Google rotated the refresh token.
pub(crate) struct Refreshed {
    pub access_token: SecretString,
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub updated_secret: Option<SecretValue>,
}

/// The Google Cloud connector.
pub struct GcpConnector {
    platform: Platform,
    cfg: Arc<GcpConfig>,
    oauth: OAuthClient,
    api: GcpApi,
    provider: ProviderId,
    /// This replica's worker name in `setup_tasks.lease_owner`.
    worker_id: String,
    state_key: RwLock<Option<SealingKey>>,
}

impl fmt::Debug for GcpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpConnector")
            .field("configured", &self.cfg.client.is_some())
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// Build the connector from the platform's settings (the plugin's `build`).
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    Ok(Arc::new(GcpConnector::new(p)?))
}

connector_core::register_plugin!("gcp", build);

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        connector_core::error::ErrorCode::NotConfigured,
        "Google Cloud is not configured on this gateway: the operator must set \
         AURORA_GCP_CLIENT_ID and AURORA_GCP_CLIENT_SECRET",
    )
}

impl GcpConnector {
    pub fn new(p: &Platform) -> Result<Self, BuildError> {
        let cfg = Arc::new(GcpConfig::from_settings(p.settings()).map_err(BuildError)?);
        if cfg.client.is_none() {
            tracing::info!(
                "AURORA_GCP_CLIENT_ID / AURORA_GCP_CLIENT_SECRET unset: the GCP routes answer 503"
            );
        } else if !cfg.state_cookie.required {
            tracing::warn!(
                "AURORA_GCP_STATE_COOKIE=off: a Google sign-in is not bound to the browser that \
                 started it, so whoever completes the consent on a login link that a user obtained \
                 connects their Google account to that user's (login CSRF, RFC 9700 §4.7)"
            );
        }
        Ok(Self {
            platform: p.clone(),
            oauth: OAuthClient::new(p.http().clone(), p.metrics().clone(), cfg.clone()),
            api: GcpApi::new(p.http().clone(), p.metrics().clone(), cfg.clone()),
            cfg,
            provider: ProviderId::from_static(PROVIDER_ID),
            worker_id: format!("gcp-{}", uuid::Uuid::new_v4().simple()),
            state_key: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &GcpConfig {
        &self.cfg
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The OAuth client, or 503 when it is not configured.
    pub(crate) fn client(&self) -> Result<&config::OAuthClientConfig, ApiError> {
        self.cfg.client.as_ref().ok_or_else(not_configured)
    }

    /// The key sealing PKCE verifiers: read from the secret store once, or again with `reload`
    /// (the stored key was replaced, e.g. restored from a backup). Created with a create-only write
    /// ([`connector_core::SecretStore::get_or_create`]), so replicas racing to create it all keep
    /// the one that was stored.
    pub(crate) async fn state_key(&self, reload: bool) -> Result<SealingKey, ApiError> {
        if !reload {
            if let Some(k) = self.state_key.read().await.as_ref() {
                return Ok(k.clone());
            }
        }
        let mut slot = self.state_key.write().await;
        let path = SecretPath::system(STATE_KEY_PATH);
        let candidate = SealingKey::generate();
        let stored = self
            .platform
            .secrets()
            .get_or_create(
                &path,
                &SecretValue::from_bytes(candidate.expose_bytes().to_vec()),
            )
            .await?;
        let key = SealingKey::from_slice(stored.expose_bytes()).map_err(|_| {
            tracing::error!("the GCP state key in the secret store has the wrong length");
            ApiError::internal()
        })?;
        *slot = Some(key.clone());
        Ok(key)
    }

    /// Refresh the access token of a connection's stored grant. A rotated refresh token comes back
    /// as `updated_secret`.
    pub(crate) async fn refresh(&self, secret: &SecretValue) -> Result<Refreshed, ConnectorError> {
        let client = self.client().map_err(ConnectorError::Api)?;
        let stored = StoredSecret::decode(secret)?;
        let now = Utc::now();
        let t = self.oauth.refresh(client, &stored.refresh_token).await?;
        let updated_secret = match &t.refresh_token {
            Some(new) if new.expose_secret() != stored.refresh_token.expose_secret() => {
                let doc = StoredSecret {
                    refresh_token: new.clone(),
                    scope: t.scope.clone().or(stored.scope.clone()),
                    obtained_at: now,
                    ..stored
                };
                Some(doc.encode()?)
            }
            _ => None,
        };
        Ok(Refreshed {
            expires_at: t.expires_at(now),
            token_type: t.token_type().to_owned(),
            access_token: t.access_token,
            updated_secret,
        })
    }

    /// Write a rotated refresh token back (validate and the setup worker; the broker does it for
    /// credentials on use), over `read` (the secret the refresh used) only: with check-and-set
    /// against the version holding `read`, so a newer secret (a reconnect, another replica's
    /// rotation) stored meanwhile is never overwritten. A failure is logged: the old token keeps
    /// working at Google.
    pub(crate) async fn store_rotated(
        &self,
        conn: &ConnectionRecord,
        read: &SecretValue,
        updated: &SecretValue,
    ) {
        // A connection removed meanwhile (force-disconnect) must not get its secret back.
        match self
            .platform
            .store()
            .get_connection(&conn.user_id, conn.id)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::error!(connection = %conn.id, error = %e, "could not store a rotated Google refresh token");
                return;
            }
        }
        let res = async {
            let path = SecretPath::from_stored(&conn.secret_ref)?;
            let Some(current) = self.platform.secrets().get_versioned(&path).await? else {
                return Ok(false); // deleted meanwhile: nothing to rotate
            };
            if current.value.expose_bytes() != read.expose_bytes() {
                return Ok(false); // a newer secret is stored: it wins
            }
            self.platform
                .secrets()
                .put_cas(&path, updated, current.version)
                .await
                .map(|_| true)
        }
        .await;
        match res {
            Ok(true) => self.platform.broker().evict(conn.id).await,
            Ok(false) | Err(connector_core::SecretStoreError::Conflict(_)) => {
                tracing::info!(connection = %conn.id, "a newer Google authorization was stored meanwhile; the rotated token was not written over it");
            }
            Err(e) => {
                tracing::error!(connection = %conn.id, error = %e, "could not store a rotated Google refresh token")
            }
        }
    }

    /// Google refused the grant: the connection needs a reconnect (also from credentials on use,
    /// where the core does not change the status itself).
    /// The cached credentials go with the status write's one invalidation.
    pub(crate) async fn mark_needs_reconnect(&self, conn: &ConnectionRecord, reason: &str) {
        let update = StatusUpdate {
            status: ConnectionStatus::NeedsReconnect,
            status_reason: Some(reason.to_owned()),
            last_validated_at: Some(Utc::now()),
        };
        match self
            .platform
            .update_status_and_evict(&conn.user_id, conn.id, update)
            .await
        {
            Ok(Some(_)) if conn.status != ConnectionStatus::NeedsReconnect => {
                self.platform
                    .audit(
                        &conn.user_id,
                        Some(conn),
                        connector_core::AuditAction::StatusChanged,
                        Actor::System,
                        serde_json::json!({"from": conn.status, "to": ConnectionStatus::NeedsReconnect, "reason": reason}),
                    )
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(connection = %conn.id, error = %e, "could not mark the connection needs_reconnect")
            }
        }
    }

    /// §2 force-disconnect: cancel the user's setup tasks, disconnect every GCP connection (revoke,
    /// secret, cache, row), then revoke and delete any GCP secret left in the user's folder.
    pub(crate) async fn force_disconnect(&self, user: &UserId) -> Result<usize, ApiError> {
        let cancelled = self
            .platform
            .store()
            .cancel_setup_tasks(
                user,
                &self.provider,
                None,
                "cancelled: the Google Cloud account was disconnected",
            )
            .await?;
        let n = self
            .platform
            .disconnect_all(self, user, Actor::User)
            .await?;
        let folder = SecretPath::user_provider_folder(user, &self.provider);
        let mut orphans = 0usize;
        for name in self.platform.secrets().list(&folder).await? {
            let path = folder.child(&name)?;
            if let Some(v) = self.platform.secrets().get(&path).await? {
                if let Ok(stored) = StoredSecret::decode(&v) {
                    if let Err(e) = self.oauth.revoke(&stored.refresh_token).await {
                        tracing::warn!(error = %e, "could not revoke a leftover Google grant; deleting it anyway");
                    }
                }
            }
            self.platform.secrets().delete(&path).await?;
            if let Ok(id) = name.trim_end_matches('/').parse::<ConnectionId>() {
                self.platform.broker().evict(id).await;
            }
            orphans += 1;
        }
        self.platform
            .audit(
                user,
                None,
                connector_core::AuditAction::Plugin("force_disconnect"),
                Actor::User,
                serde_json::json!({"provider": PROVIDER_ID, "disconnected": n, "cancelledTasks": cancelled, "leftoverSecrets": orphans}),
            )
            .await;
        Ok(n)
    }
}

#[async_trait]
impl Connector for GcpConnector {
    /// C4 removes a user's Google Cloud connections as `POST /api/gcp/force-disconnect` does.
    async fn disconnect_all(
        &self,
        user: &connector_core::UserId,
    ) -> Option<Result<usize, connector_core::ApiError>> {
        Some(self.force_disconnect(user).await)
    }

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: self.provider.clone(),
            display_name: "Google Cloud".into(),
            auth_kind: AuthKind::OAuth2,
            capabilities: vec![
                Capability::MultiAccount,
                Capability::Credentials,
                Capability::Validate,
                Capability::ProviderRevoke,
                Capability::AsyncSetup,
            ],
            open_paths: vec![CALLBACK_PATH],
            connect_paths: vec![routes::LOGIN_PATH, routes::RETRY_PATH],
        }
    }

    connector_core::connector_routes!(routes::configure, GcpApiDoc, frontend::summary);

    /// Refreshes the access token and reads the account's identity with it.
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let client = self.client().map_err(ConnectorError::Api)?;
        let r = self.refresh(secret).await?;
        if let Some(updated) = &r.updated_secret {
            self.store_rotated(connection, secret, updated).await;
        }
        let identity = self
            .oauth
            .identity(&r.access_token, None, &client.client_id)
            .await?;
        let sub = connection.metadata.get("sub").and_then(|v| v.as_str());
        if sub.is_some_and(|s| s != identity.sub) {
            return Err(ConnectorError::CredentialsRejected(
                "the stored authorization now belongs to another Google account; reconnect".into(),
            ));
        }
        Ok(Validated::default())
    }

    /// An access token for the account (the same in both modes: Google's user tokens cannot be
    /// narrowed on refresh). `invalid_grant` marks the connection `needs_reconnect`.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        _mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let r = match self.refresh(secret).await {
            Ok(r) => r,
            Err(e) => {
                if e.is_refusal() {
                    self.mark_needs_reconnect(connection, &e.to_string()).await;
                }
                return Err(e);
            }
        };
        let doc = CredentialsDoc {
            access_token: &r.access_token,
            token_type: &r.token_type,
            expires_at: r.expires_at,
        };
        let credentials =
            SecretValue::encode(&doc).map_err(|_| ConnectorError::Api(ApiError::internal()))?;
        Ok(IssuedCredentials {
            credentials,
            expires_at: Some(r.expires_at),
            updated_secret: r.updated_secret,
        })
    }

    /// Repairs GCP connections that a crash left `pending` without a setup task (see the
    /// `reconcile` module): queues the task again, or marks the connection `needs_reconnect`.
    async fn reconcile(&self) -> Result<u64, ConnectorError> {
        self.reconcile_pending().await
    }

    fn spawn_background(self: Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        if self.cfg.client.is_none() {
            return Vec::new();
        }
        vec![tokio::spawn(setup::run_worker(self))]
    }

    /// Revokes the refresh token (and with it the whole grant) at Google.
    async fn revoke(
        &self,
        _connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<(), ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        self.oauth.revoke(&stored.refresh_token).await
    }
}

#[cfg(test)]
mod tests;
