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

mod connect;
mod rows;
mod usage;

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
