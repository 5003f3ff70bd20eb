//! Credentials on use: an encrypted cache in front of the connectors, refresh near expiry, and
//! single-flight so concurrent callers for one connection share one provider call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cache::Cache;
use crate::connector::{Connector, IssuedCredentials};
use crate::crypto::SealingKey;
use crate::error::ApiError;
use crate::ids::{ConnectionId, CredentialMode};
use crate::metrics::Metrics;
use crate::secret::SecretValue;
use crate::secrets::{SecretPath, SecretStore};
use crate::store::ConnectionRecord;

/// Credentials this close to expiry are refreshed before they are handed out.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long credentials that do not expire (API keys) stay cached before the secret store is read again.
pub const NON_EXPIRING_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest any entry stays cached.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);

/// Credentials as handed to a caller.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub credentials: SecretValue,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct CachedEntry {
    /// The credentials JSON document, as a string so it round-trips byte for byte.
    c: String,
    e: Option<DateTime<Utc>>,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Credentials>, ApiError>>>;

pub struct CredentialBroker {
    cache: Arc<dyn Cache>,
    secrets: Arc<dyn SecretStore>,
    key: SealingKey,
    metrics: Arc<Metrics>,
    inflight: Mutex<HashMap<String, Flight>>,
}

/// The cache key of one connection's credentials for one mode.
pub fn cache_key(id: ConnectionId, mode: CredentialMode) -> String {
    format!("cred:{id}:{}", mode.as_str())
}

fn is_fresh(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match expires_at {
        None => true,
        Some(e) => e - now > chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default(),
    }
}

impl CredentialBroker {
    pub fn new(
        cache: Arc<dyn Cache>,
        secrets: Arc<dyn SecretStore>,
        key: SealingKey,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache,
            secrets,
            key,
            metrics,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Fresh credentials for `connection`, from the cache or through the connector.
    pub async fn get(
        self: &Arc<Self>,
        connector: Arc<dyn Connector>,
        connection: &ConnectionRecord,
        mode: CredentialMode,
    ) -> Result<Arc<Credentials>, ApiError> {
        let key = cache_key(connection.id, mode);
        if let Some(hit) = self.lookup(&key).await {
            return Ok(Arc::new(hit));
        }
        let flight = {
            let mut inflight = self.inflight.lock();
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let this = Arc::clone(self);
                let conn = connection.clone();
                let k = key.clone();
                // Spawned, so a caller that goes away does not cancel the refresh for the others.
                let handle = tokio::spawn(async move {
                    let out = this.refresh(connector, &conn, mode, &k).await;
                    this.inflight.lock().remove(&k);
                    out
                });
                let fut: BoxFuture<'static, Result<Arc<Credentials>, ApiError>> = async move {
                    match handle.await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "credential refresh task failed");
                            Err(ApiError::internal())
                        }
                    }
                }
                .boxed();
                let shared = fut.shared();
                inflight.insert(key.clone(), shared.clone());
                shared
            }
        };
        flight.await
    }

    async fn lookup(&self, key: &str) -> Option<Credentials> {
        let raw = match self.cache.get(key).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.metrics
                    .cache_lookups
                    .with_label_values(&["miss"])
                    .inc();
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "credential cache unavailable; reading through");
                self.metrics
                    .cache_lookups
                    .with_label_values(&["error"])
                    .inc();
                return None;
            }
        };
        let entry = self
            .key
            .open(&raw, key.as_bytes())
            .ok()
            .and_then(|plain| serde_json::from_slice::<CachedEntry>(&plain).ok());
        match entry {
            Some(e) if is_fresh(e.e, Utc::now()) => {
                self.metrics.cache_lookups.with_label_values(&["hit"]).inc();
                let c = Zeroizing::new(e.c);
                Some(Credentials {
                    credentials: SecretValue::from_bytes(c.as_bytes().to_vec()),
                    expires_at: e.e,
                })
            }
            _ => {
                self.metrics
                    .cache_lookups
                    .with_label_values(&["miss"])
                    .inc();
                None
            }
        }
    }

    async fn refresh(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
        key: &str,
    ) -> Result<Arc<Credentials>, ApiError> {
        // Another replica may have refreshed while we queued.
        if let Some(hit) = self.lookup(key).await {
            return Ok(Arc::new(hit));
        }
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        let secret = self.secrets.get(&path).await?.ok_or_else(|| {
            tracing::error!(connection = %conn.id, "connection has no secret in the secret store");
            ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "needs_reconnect",
                "the connection's credentials are missing; reconnect the account",
            )
        })?;
        let provider = conn.provider.as_str();
        let issued: IssuedCredentials = match connector.issue_credentials(conn, &secret, mode).await
        {
            Ok(i) => {
                self.metrics
                    .credential_refreshes
                    .with_label_values(&[provider, "ok"])
                    .inc();
                i
            }
            Err(e) => {
                self.metrics
                    .credential_refreshes
                    .with_label_values(&[provider, "error"])
                    .inc();
                return Err(e.into());
            }
        };
        if let Some(updated) = &issued.updated_secret {
            self.secrets.put(&path, updated).await?;
        }
        let creds = Credentials {
            credentials: issued.credentials,
            expires_at: issued.expires_at,
        };
        self.store(key, &creds).await;
        Ok(Arc::new(creds))
    }

    async fn store(&self, key: &str, creds: &Credentials) {
        let now = Utc::now();
        let ttl = match creds.expires_at {
            None => NON_EXPIRING_TTL,
            Some(e) => match (e - now).to_std() {
                Ok(left) if left > REFRESH_MARGIN => (left - REFRESH_MARGIN).min(MAX_TTL),
                // Already inside the margin: not worth caching.
                _ => return,
            },
        };
        let Ok(text) = std::str::from_utf8(creds.credentials.expose_bytes()) else {
            return;
        };
        let entry = CachedEntry {
            c: text.to_owned(),
            e: creds.expires_at,
        };
        let plain = match serde_json::to_vec(&entry) {
            Ok(p) => Zeroizing::new(p),
            Err(_) => return,
        };
        let _wipe = Zeroizing::new(entry.c);
        match self.key.seal(&plain, key.as_bytes()) {
            Ok(sealed) => {
                if let Err(e) = self.cache.set(key, &sealed, ttl).await {
                    tracing::warn!(error = %e, "could not write the credential cache");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not seal a cache entry"),
        }
    }

    /// Drop every cached credential of a connection (disconnect, reconnect, refusal).
    pub async fn evict(&self, id: ConnectionId) {
        for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
            if let Err(e) = self.cache.delete(&cache_key(id, mode)).await {
                tracing::warn!(error = %e, connection = %id, "could not evict cached credentials");
            }
        }
    }
}
