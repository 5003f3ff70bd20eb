//! A real `connector_core::Platform` on the embedded, in-process backends (SQLite and the embedded
//! secret store in a temporary folder, the in-process cache), and the app data a provider's routes
//! need in an `actix_web::test` app (feature `platform`).

use connector_core::store::ConnectionStore;
use std::sync::Arc;

use actix_web::web;
use anyhow::Context;
use connector_cache::MemoryCache;
use connector_core::{
    ApiError, AuthConfig, ConnectionId, ConnectionRecord, Connector, Platform, SecretPath,
    SecretStore, Settings, UserId,
};
use connector_store::{DbConfig, SqlStore};
use secret_store::EmbeddedSecretStore;
use tempfile::TempDir;

/// Entries of the in-process cache (the gateway uses 100 000; tests need few).
const CACHE_ENTRIES: usize = 10_000;
/// The JSON body limit of the gateway (`app.rs`).
const BODY_LIMIT: usize = 64 * 1024;

/// A platform on the embedded backends. The backends are also held directly, so a test can look at
/// what the platform wrote (rows, secrets) without going through it. Keep it alive for the test:
/// dropping it removes the temporary folder.
pub struct TestPlatform {
    pub platform: Platform,
    pub store: Arc<SqlStore>,
    pub secrets: Arc<EmbeddedSecretStore>,
    pub cache: Arc<MemoryCache>,
    /// Holds the database file and the sealed secrets.
    pub dir: TempDir,
}

impl TestPlatform {
    /// Migrated SQLite, the embedded secret store and the in-process cache in a fresh temporary
    /// folder, assembled into a platform with `settings`.
    pub async fn new(settings: Settings) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary data folder")?;
        let db = DbConfig::from_url(None, dir.path()).context("the SQLite configuration")?;
        let store = Arc::new(
            SqlStore::connect(&db)
                .await
                .context("opening the SQLite store")?,
        );
        store.migrate().await.context("applying the migrations")?;
        let secrets = Arc::new(
            EmbeddedSecretStore::open(&dir.path().join("secrets"))
                .context("opening the embedded secret store")?,
        );
        let cache = Arc::new(MemoryCache::new(CACHE_ENTRIES));
        let platform = Platform::new(store.clone(), secrets.clone(), cache.clone(), settings)
            .await
            .context("assembling the platform")?;
        Ok(Self {
            platform,
            store,
            secrets,
            cache,
            dir,
        })
    }

    /// The row of `user`'s connection `id`, read from the database itself.
    pub async fn row(
        &self,
        user: &str,
        id: ConnectionId,
    ) -> anyhow::Result<Option<ConnectionRecord>> {
        let user = UserId::parse(user).context("a valid user id")?;
        Ok(self.store.get_connection(&user, id).await?)
    }

    /// Every row of `user`, read from the database itself.
    pub async fn rows(&self, user: &str) -> anyhow::Result<Vec<ConnectionRecord>> {
        let user = UserId::parse(user).context("a valid user id")?;
        Ok(self.store.list_connections(&user, None).await?)
    }

    /// Whether the secret store holds a document at the row's `secret_ref`.
    pub async fn has_secret(&self, secret_ref: &str) -> anyhow::Result<bool> {
        let path = SecretPath::from_stored(secret_ref).context("a stored secret path")?;
        Ok(self.secrets.get(&path).await?.is_some())
    }

    /// The configuration of an app that serves `connector`'s own routes as the gateway mounts them
    /// (`bins/aurora-gateway/src/app.rs`, `configure`): `Data<AuthConfig>` with `internal_secret`,
    /// `Data<Platform>`, the body limits and the JSON error answers. Use it as
    /// `App::new().configure(tp.configure(connector, None))`.
    pub fn configure(
        &self,
        connector: Arc<dyn Connector>,
        internal_secret: Option<&str>,
    ) -> impl FnOnce(&mut web::ServiceConfig) {
        let platform = self.platform.clone();
        let auth = AuthConfig {
            internal_secret: internal_secret.map(|s| s.to_owned().into()),
        };
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(auth))
                .app_data(web::Data::new(platform))
                .app_data(web::JsonConfig::default().limit(BODY_LIMIT).error_handler(
                    |err, _req| {
                        ApiError::invalid_request(format!("invalid JSON body: {err}")).into()
                    },
                ))
                .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
                .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                    ApiError::invalid_request(format!("malformed query string: {err}")).into()
                }));
            connector.configure(cfg);
        }
    }
}

/// The connector a linked plugin `id` builds from `platform`, as the gateway's registry builds it.
pub fn build_plugin(id: &str, platform: &Platform) -> anyhow::Result<Arc<dyn Connector>> {
    let registry = connector_core::plugin::registered().context("folding the plugin registry")?;
    let descriptor = registry
        .get(id)
        .with_context(|| format!("no plugin `{id}` is linked into this test binary"))?;
    (descriptor.build)(platform).map_err(|e| anyhow::anyhow!("building `{id}`: {}", e.0))
}
