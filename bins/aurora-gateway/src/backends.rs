//! Builds the backends the configuration names: PostgreSQL or embedded SQLite, OpenBao/Vault or the
//! embedded encrypted store, Redis or the in-process cache.

use std::sync::Arc;

use anyhow::Context;
use connector_cache::{BreakerConfig, MemoryCache, RedisCache};
use connector_core::{Cache, Platform, SecretStore};
use connector_store::{DbConfig, SqlStore};
use secrecy::ExposeSecret;
use secret_store::{EmbeddedSecretStore, VaultConfig, VaultSecretStore};

use crate::config::GatewayConfig;

/// In-process cache size when no Redis is configured.
const MEMORY_CACHE_ENTRIES: usize = 100_000;

/// Open the relational store (no migration).
pub async fn open_store(cfg: &GatewayConfig) -> anyhow::Result<Arc<SqlStore>> {
    let url = cfg
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned());
    let mut db =
        DbConfig::from_url(url.as_deref(), &cfg.data_dir).context("AURORA_DATABASE_URL")?;
    if let DbConfig::Postgres { pool_size, .. } = &mut db {
        *pool_size = cfg.database_pool_size;
    }
    let store = SqlStore::connect(&db)
        .await
        .context("opening the database")?;
    Ok(Arc::new(store))
}

/// Open the secret store the configuration names.
pub async fn open_secrets(cfg: &GatewayConfig) -> anyhow::Result<Arc<dyn SecretStore>> {
    Ok(match &cfg.vault {
        Some(v) => Arc::new(
            VaultSecretStore::new(VaultConfig {
                addr: v.addr.clone(),
                token: v.token.clone(),
                mount: v.mount.clone(),
                prefix: v.prefix.clone(),
            })
            .context("configuring the Vault/OpenBao client")?,
        ),
        None => Arc::new(
            EmbeddedSecretStore::open(&cfg.data_dir.join("secrets"))
                .context("opening the embedded secret store")?,
        ),
    })
}

/// Open the cache the configuration names. Redis is connected lazily, so a Redis that is down does
/// not stop the gateway (readiness reports it).
pub async fn open_cache(cfg: &GatewayConfig) -> anyhow::Result<Arc<dyn Cache>> {
    Ok(match open_redis(cfg)? {
        Some(redis) => Arc::new(redis),
        None => Arc::new(MemoryCache::new(MEMORY_CACHE_ENTRIES)),
    })
}

/// The Redis client, with its circuit breaker configured (`AURORA_REDIS_BREAKER_*`), if Redis is
/// configured.
fn open_redis(cfg: &GatewayConfig) -> anyhow::Result<Option<RedisCache>> {
    let Some(url) = &cfg.redis_url else {
        return Ok(None);
    };
    let breaker = BreakerConfig::from_settings(&cfg.settings).map_err(anyhow::Error::msg)?;
    let redis = RedisCache::connect(url.expose_secret(), &cfg.redis_prefix)
        .context("configuring the Redis client")?
        .with_breaker(breaker);
    Ok(Some(redis))
}

/// Every backend, migrated, assembled into the platform.
pub async fn build_platform(cfg: &GatewayConfig) -> anyhow::Result<(Platform, Arc<SqlStore>)> {
    let store = open_store(cfg).await?;
    let applied = store.migrate().await.context("applying migrations")?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "applied database migrations");
    }
    let secrets = open_secrets(cfg).await?;
    let redis = open_redis(cfg)?;
    let cache: Arc<dyn Cache> = match &redis {
        Some(redis) => Arc::new(redis.clone()),
        None => Arc::new(MemoryCache::new(MEMORY_CACHE_ENTRIES)),
    };
    let platform = Platform::new(store.clone(), secrets, cache, cfg.settings.clone())
        .await
        .context("preparing the credential cache key in the secret store")?;
    if let Some(redis) = &redis {
        // Clones share the breaker: this one reports for the platform's.
        redis.report_to(platform.metrics().clone());
    }
    tracing::info!(
        database = platform.store().backend_name(),
        secret_store = platform.secrets().backend_name(),
        cache = platform.cache().backend_name(),
        "backends ready"
    );
    Ok((platform, store))
}
