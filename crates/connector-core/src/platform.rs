//! The platform handed to every plugin: backends, settings, metrics, the credential broker, and the
//! connection flows that every provider shares (connect, disconnect, validate, credentials).
//!
//! Its fields are private. A connection row is written only through its methods
//! ([`Platform::connect`], [`Platform::disconnect`], [`Platform::update_status`],
//! [`Platform::update_metadata`], …), each of which tells the credential broker once, after the
//! write, so the copies of the row (and of its credentials) that replicas keep in process are
//! dropped everywhere ([`CredentialBroker::row_changed`], [`CredentialBroker::evict`]). The store
//! itself ([`Platform::store`]) is for reads and for the tables a plugin owns (setup tasks, external
//! ids, OAuth states): a connection-row write through it would tell no replica.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::broker::{CredentialBroker, Credentials};
use crate::cache::Cache;
use crate::connector::Connector;
use crate::crypto::SealingKey;
use crate::error::{ApiError, ConnectorError, SecretStoreError, StoreError};
use crate::ids::{ConnectionId, ConnectionStatus, CredentialMode, ProviderId, UserId};
use crate::metrics::Metrics;
use crate::secret::SecretValue;
use crate::secrets::{SecretPath, SecretStore};
use crate::settings::Settings;
use crate::store::{AuditEvent, ConnectionRecord, NewConnection, StatusUpdate, Store};

/// Shared services. Cheap to clone (every field is an `Arc` or a handle). See the module docs for
/// why the fields are private.
#[derive(Clone)]
pub struct Platform {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    cache: Arc<dyn Cache>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    broker: Arc<CredentialBroker>,
    /// Batched audit writes for the credential hot path.
    audit_buffer: crate::audit_buffer::AuditBuffer,
    /// An HTTP client for provider APIs (connect and request timeouts set).
    http: reqwest::Client,
}

/// What a provider's connect hands to [`Platform::connect`] once the provider accepted the credentials.
#[derive(Debug)]
pub struct ConnectSpec {
    pub user: UserId,
    pub provider: ProviderId,
    pub account_id: String,
    pub display_name: Option<String>,
    pub read_only: bool,
    pub metadata: serde_json::Value,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    pub status: ConnectionStatus,
    pub secret: SecretValue,
}

/// Who caused an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User,
    Internal,
    System,
}
impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Internal => "internal",
            Actor::System => "system",
        }
    }
}

/// The cache key's location in the secret store, shared by every replica.
const CACHE_KEY_PATH: &str = "cache-key";

impl Platform {
    /// Assemble the platform. The cache key is read from (or created in) the secret store, so every
    /// replica that shares the secret store can read what another cached.
    pub async fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        cache: Arc<dyn Cache>,
        settings: Settings,
    ) -> Result<Self, SecretStoreError> {
        let key = load_or_create_cache_key(secrets.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        let broker = Arc::new(CredentialBroker::new(
            cache.clone(),
            secrets.clone(),
            key,
            metrics.clone(),
        ));
        // The embedded default (SQLite beside an in-process cache) is one process that every change
        // goes through; with servers, rows are kept only while the invalidation channel is heard.
        broker.keep_rows_without_channel(store.backend_name() == "sqlite" && !cache.is_shared());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("aurora-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SecretStoreError::Refused(format!("http client: {e}")))?;
        let audit_buffer = crate::audit_buffer::AuditBuffer::spawn(store.clone());
        Ok(Self {
            audit_buffer,
            store,
            secrets,
            cache,
            settings: Arc::new(settings),
            metrics,
            broker,
            http,
        })
    }

    /// The store: for reads, and for the tables a plugin keeps itself (setup tasks, external ids,
    /// OAuth states, audit). Connection rows are written through the platform's methods
    /// ([`Platform::update_status`], [`Platform::update_metadata`], [`Platform::connect`],
    /// [`Platform::disconnect`]), which tell every replica; a row write through this store would not.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The secret store.
    pub fn secrets(&self) -> &Arc<dyn SecretStore> {
        &self.secrets
    }

    /// The shared (or in-process) cache.
    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    /// The settings the process was started with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The credential broker (cache, single-flight refresh, in-process tier).
    pub fn broker(&self) -> &Arc<CredentialBroker> {
        &self.broker
    }

    /// Batched audit writes for the credential hot path.
    pub fn audit_buffer(&self) -> &crate::audit_buffer::AuditBuffer {
        &self.audit_buffer
    }

    /// An HTTP client for provider APIs (connect and request timeouts set).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// This platform with other settings (the same backends, broker and metrics): another
    /// replica's view, in tests.
    pub fn with_settings(&self, settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            ..self.clone()
        }
    }

    /// Replace the store by `wrap(store)`, e.g. to inject faults in a test. The audit buffer keeps
    /// the store it was started with.
    pub fn wrap_store(&mut self, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>) {
        self.store = wrap(self.store.clone());
    }

    /// Write a connection's status, then tell every replica once
    /// ([`CredentialBroker::row_changed`]), whatever the write's result (a write that failed may
    /// still have been applied). The cached credentials stay: a status is not a credential change.
    /// `None` when `user` has no such connection.
    pub async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self.store.update_status(user, id, update).await;
        self.broker.row_changed(id).await;
        res
    }

    /// [`Platform::update_status`] for a provider that refused the credentials: the cached
    /// credentials are dropped as well, here and in the shared cache, with the one invalidation
    /// after the write ([`CredentialBroker::evict`]).
    pub async fn update_status_and_evict(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self.store.update_status(user, id, update).await;
        self.broker.evict(id).await;
        res
    }

    /// Write a connection's metadata and expiry, then tell every replica once
    /// ([`CredentialBroker::row_changed`]), whatever the write's result. `None` when `user` has no
    /// such connection.
    pub async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self
            .store
            .update_metadata(user, id, metadata, expires_at)
            .await;
        self.broker.row_changed(id).await;
        res
    }

    /// A connection of `user`, or 404 (also when it belongs to someone else).
    pub async fn owned_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<ConnectionRecord, ApiError> {
        self.store
            .get_connection(user, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such connection"))
    }

    /// A connection of `user` for the credentials route: from the in-process tier when it holds the
    /// row (kept current on every replica by the platform's row writes), else from the
    /// store, then kept. 404 as [`Platform::owned_connection`].
    pub async fn connection_for_use(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Arc<ConnectionRecord>, ApiError> {
        if let Some(row) = self.broker.local_row(id) {
            return if &row.user_id == user {
                Ok(row)
            } else {
                Err(ApiError::not_found("no such connection"))
            };
        }
        let generation = self.broker.local_generation();
        let row = Arc::new(self.owned_connection(user, id).await?);
        self.broker.keep_row(&row, generation);
        Ok(row)
    }

    /// A connection of `user` with this provider, or 404 ("no such {what} connection") — also for another
    /// user's connection or another provider's.
    pub async fn owned_connection_of(
        &self,
        user: &UserId,
        id: ConnectionId,
        provider: &ProviderId,
        what: &str,
    ) -> Result<ConnectionRecord, ApiError> {
        let conn = self.owned_connection(user, id).await?;
        if &conn.provider != provider {
            return Err(ApiError::not_found(format!("no such {what} connection")));
        }
        Ok(conn)
    }

    /// The connection named by `id`, else the user's most recently updated one of this provider;
    /// 404 with `none_message` when there is none.
    pub async fn pick_connection(
        &self,
        user: &UserId,
        id: Option<ConnectionId>,
        provider: &ProviderId,
        what: &str,
        none_message: &str,
    ) -> Result<ConnectionRecord, ApiError> {
        if let Some(id) = id {
            return self.owned_connection_of(user, id, provider, what).await;
        }
        self.store
            .list_connections(user, Some(provider))
            .await?
            .into_iter()
            .max_by_key(|c| c.updated_at)
            .ok_or_else(|| ApiError::not_found(none_message))
    }

    /// Store a connection whose credentials the provider accepted: the secret first, then the row.
    /// If the row cannot be written the secret is removed again (or, on a reconnect, the previous
    /// secret is put back), so a failed connect leaves nothing half-written.
    pub async fn connect(
        &self,
        spec: ConnectSpec,
        actor: Actor,
    ) -> Result<(ConnectionRecord, bool), ApiError> {
        let existing = self
            .store
            .find_connection(&spec.user, &spec.provider, &spec.account_id)
            .await?;
        let id = existing.as_ref().map(|c| c.id).unwrap_or_default();
        let path = match &existing {
            Some(c) => SecretPath::from_stored(&c.secret_ref)?,
            None => SecretPath::connection(&spec.user, &spec.provider, id),
        };
        let previous = match &existing {
            Some(_) => self.secrets.get(&path).await?,
            None => None,
        };
        self.secrets.put(&path, &spec.secret).await?;
        let now = Utc::now();
        let row = NewConnection {
            id,
            user_id: spec.user.clone(),
            provider: spec.provider.clone(),
            account_id: spec.account_id.clone(),
            display_name: spec.display_name,
            status: spec.status,
            status_reason: None,
            read_only: spec.read_only,
            secret_ref: path.as_str().to_owned(),
            metadata: spec.metadata,
            last_validated_at: Some(now),
            expires_at: spec.expires_at,
        };
        let (record, created) = match self.store.upsert_connection(row).await {
            Ok(r) => r,
            Err(e) => {
                let undo = match previous {
                    Some(prev) => self.secrets.put(&path, &prev).await,
                    None => self.secrets.delete(&path).await,
                };
                if let Err(undo_err) = undo {
                    tracing::error!(error = %undo_err, path = %path, "could not roll back the secret of a failed connect");
                }
                if existing.is_some() {
                    // The write may have been applied, and credentials may have been issued from
                    // the secret that was just rolled back. (A new id is known to nobody yet.)
                    self.broker.evict(id).await;
                }
                return Err(e.into());
            }
        };
        if record.secret_ref != path.as_str() {
            // Another connect of the same account won the race to insert the row (a double click, a
            // client retry): the row keeps its own secret path, so this connect's secret moves
            // there (its credentials are the latest) and the copy under its own path goes. A crash
            // in between leaves a secret no row references, which the reconciler removes.
            self.move_secret(&path, &record, &spec.secret).await?;
        }
        // The one invalidation of this connect, after the row write: the row and its credentials.
        self.broker.evict(record.id).await;
        self.audit(
            &record.user_id,
            Some(&record),
            if created {
                crate::AuditAction::Connect
            } else {
                crate::AuditAction::Reconnect
            },
            actor,
            serde_json::json!({"accountId": record.account_id, "previousStatus": existing.as_ref().map(|c| c.status)}),
        )
        .await;
        tracing::info!(connection = %record.id, provider = %record.provider, created, "connection stored");
        Ok((record, created))
    }

    /// Put `secret` under the row's own secret path and delete the copy at `ours`.
    async fn move_secret(
        &self,
        ours: &SecretPath,
        record: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<(), ApiError> {
        let theirs = SecretPath::from_stored(&record.secret_ref)?;
        tracing::info!(connection = %record.id, "a concurrent connect stored this account first; its secret path is kept");
        let put = self.secrets.put(&theirs, secret).await;
        // Ours goes whatever the put did: no row will ever point at it.
        if let Err(e) = self.secrets.delete(ours).await {
            tracing::warn!(error = %e, path = %ours, "could not delete the secret of a connect that lost the race; the reconciler will");
        }
        put?;
        Ok(())
    }

    /// The connection's stored secret.
    pub async fn load_secret(
        &self,
        conn: &ConnectionRecord,
    ) -> Result<Option<SecretValue>, ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        Ok(self.secrets.get(&path).await?)
    }

    /// Remove one connection: revoke at the provider (best effort), delete the secret, evict the cache,
    /// delete the row, audit. A secret-store failure stops before the row is deleted, so a retry can
    /// finish the job and no secret is orphaned.
    pub async fn disconnect(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
    ) -> Result<(), ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        if let Some(secret) = self.secrets.get(&path).await? {
            let started = std::time::Instant::now();
            let res = connector.revoke(conn, &secret).await;
            let outcome = if res.is_ok() { "ok" } else { "error" };
            self.metrics.provider_call(
                conn.provider.as_str(),
                "revoke",
                outcome,
                started.elapsed(),
            );
            if let Err(e) = res {
                tracing::warn!(connection = %conn.id, error = %e, "provider-side revoke failed; removing our side anyway");
            }
        }
        self.secrets.delete(&path).await?;
        let deleted = self.store.delete_connection(&conn.user_id, conn.id).await;
        // The one invalidation of this disconnect, after the row write (whatever its result: it may
        // have been applied), so no replica keeps the row read before it.
        self.broker.evict(conn.id).await;
        deleted?;
        self.audit(
            &conn.user_id,
            Some(conn),
            crate::AuditAction::Disconnect,
            actor,
            serde_json::json!({"accountId": conn.account_id}),
        )
        .await;
        Ok(())
    }

    /// Disconnect every connection of `user` with this connector's provider; returns how many.
    pub async fn disconnect_all(
        &self,
        connector: &dyn Connector,
        user: &UserId,
        actor: Actor,
    ) -> Result<usize, ApiError> {
        let provider = connector.info().id;
        let conns = self.store.list_connections(user, Some(&provider)).await?;
        let mut n = 0;
        for c in &conns {
            self.disconnect(connector, c, actor).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Check a connection live and record the outcome in its status.
    pub async fn validate(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
    ) -> Result<ConnectionRecord, ApiError> {
        self.validate_gated(connector, conn, actor, None).await
    }

    /// [`Platform::validate`], with the provider call (only it) holding a permit of `gate`: the
    /// status checker bounds provider calls at once without idling a permit during the secret read
    /// and the status writes.
    pub async fn validate_gated(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
        gate: Option<&tokio::sync::Semaphore>,
    ) -> Result<ConnectionRecord, ApiError> {
        let Some(secret) = self.load_secret(conn).await? else {
            return self
                .set_status(
                    conn,
                    ConnectionStatus::NeedsReconnect,
                    Some("the stored credentials are missing; reconnect the account".into()),
                    actor,
                    false,
                )
                .await;
        };
        let permit = match gate {
            Some(g) => g.acquire().await.ok(),
            None => None,
        };
        let started = std::time::Instant::now();
        let res = connector.validate(conn, &secret).await;
        drop(permit);
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics.provider_call(
            conn.provider.as_str(),
            "validate",
            outcome,
            started.elapsed(),
        );
        match res {
            Ok(v) => {
                let mut conn = conn.clone();
                if v.metadata.is_some() || v.expires_at.is_some() {
                    let meta = v.metadata.unwrap_or_else(|| conn.metadata.clone());
                    let exp = v.expires_at.or(conn.expires_at);
                    if let Some(c) = self
                        .update_metadata(&conn.user_id, conn.id, meta, exp)
                        .await?
                    {
                        conn = c;
                    }
                }
                self.set_status(&conn, ConnectionStatus::Active, None, actor, false)
                    .await
            }
            Err(e) => {
                let status = match &e {
                    ConnectorError::CredentialsRejected(_) => ConnectionStatus::NeedsReconnect,
                    _ => ConnectionStatus::Degraded,
                };
                // Refused credentials are dropped with the status write's one invalidation.
                let evict = status == ConnectionStatus::NeedsReconnect;
                self.set_status(conn, status, Some(e.to_string()), actor, evict)
                    .await
            }
        }
    }

    /// Write the status (dropping the cached credentials too when `evict`) and audit a change.
    async fn set_status(
        &self,
        conn: &ConnectionRecord,
        status: ConnectionStatus,
        reason: Option<String>,
        actor: Actor,
        evict: bool,
    ) -> Result<ConnectionRecord, ApiError> {
        let update = StatusUpdate {
            status,
            status_reason: reason.clone(),
            last_validated_at: Some(Utc::now()),
        };
        let written = if evict {
            self.update_status_and_evict(&conn.user_id, conn.id, update)
                .await
        } else {
            self.update_status(&conn.user_id, conn.id, update).await
        };
        let updated = written?.ok_or_else(|| ApiError::not_found("no such connection"))?;
        if conn.status != status {
            self.audit(
                &conn.user_id,
                Some(conn),
                crate::AuditAction::StatusChanged,
                actor,
                serde_json::json!({"from": conn.status, "to": status, "reason": reason}),
            )
            .await;
        }
        Ok(updated)
    }

    /// Credentials for an internal caller, through the cache and the single-flight refresh.
    pub async fn credentials(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
    ) -> Result<Arc<Credentials>, ApiError> {
        if conn.status == ConnectionStatus::NeedsReconnect {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                crate::error::ErrorCode::NeedsReconnect,
                "the provider refused this connection's credentials; reconnect the account",
            ));
        }
        if conn.status == ConnectionStatus::Pending {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                crate::error::ErrorCode::Conflict,
                "the connection's setup has not finished yet",
            ));
        }
        let res = self.broker.get(connector, conn, mode).await;
        if res.is_ok() {
            // Every issue is audited; on this hot path issues are counted in process and written
            // in a batch (no webhook maps to them, so the outbox is not involved).
            self.audit_buffer.push_issue(conn, mode);
        }
        if let Ok(creds) = &res {
            // Noted for the lifecycle scheduler, which refreshes credentials used lately just as
            // they enter the broker's refresh margin (a second in), before a caller has to wait.
            let now = Utc::now();
            let margin = chrono::Duration::from_std(crate::broker::REFRESH_MARGIN)
                .unwrap_or_default()
                - chrono::Duration::seconds(1);
            let refresh_at = creds.expires_at.map(|e| e - margin).filter(|r| *r > now);
            if let Err(e) = self
                .store
                .record_credential_use(conn.id, mode, now, refresh_at)
                .await
            {
                tracing::warn!(error = %e, connection = %conn.id, "could not record credential use");
            }
        }
        res
    }

    /// Append to the audit trail. A failure is logged, never fatal: the action already happened.
    pub async fn audit(
        &self,
        user: &UserId,
        conn: Option<&ConnectionRecord>,
        action: crate::audit::AuditAction,
        actor: Actor,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: user.clone(),
            connection_id: conn.map(|c| c.id),
            provider: conn.map(|c| c.provider.clone()),
            action: action.as_str().to_owned(),
            actor: actor.as_str().to_owned(),
            detail,
            created_at: Utc::now(),
        };
        // With webhooks on, an action that maps to an event enqueues it in the audit's transaction.
        let outbox = crate::outbox::webhooks_enabled(&self.settings)
            .then(|| crate::outbox::event_for_audit(&event, conn))
            .flatten();
        if let Err(e) = self.store.append_audit_and_outbox(event, outbox).await {
            tracing::error!(error = %e, action = action.as_str(), "could not write the audit trail");
        }
    }
}

/// The cache key every replica shares: read, or created once with a create-only write
/// ([`SecretStore::get_or_create`]), so replicas starting together all keep the one stored. Its
/// id (never the key) is logged, so a split shows in the logs as well.
async fn load_or_create_cache_key(
    secrets: &dyn SecretStore,
) -> Result<SealingKey, SecretStoreError> {
    let path = SecretPath::system(CACHE_KEY_PATH);
    // A create-only write: of replicas starting together, one key is stored and all read it.
    let candidate = SealingKey::generate();
    let stored = secrets
        .get_or_create(
            &path,
            &SecretValue::from_bytes(candidate.expose_bytes().to_vec()),
        )
        .await?;
    let key = SealingKey::from_slice(stored.expose_bytes())
        .map_err(|_| SecretStoreError::Corrupt("the cache key has the wrong length".into()))?;
    tracing::info!(
        key_id = %crate::broker::key_id_hex(&key),
        created = key.expose_bytes() == candidate.expose_bytes(),
        "credential cache key loaded"
    );
    Ok(key)
}
