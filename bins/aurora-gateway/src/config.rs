//! Gateway configuration: typed values read from `AURORA_*` settings (environment over config file).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use connector_core::settings::{AtLeast, Range};
use connector_core::Settings;
use secrecy::SecretString;
use serde::Deserialize;

/// Where each backend lives. `None` means the embedded default.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub bind: String,
    pub data_dir: PathBuf,
    /// May hold a password: never logged.
    pub database_url: Option<SecretString>,
    pub database_pool_size: usize,
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub vault: Option<VaultSettings>,
    pub internal_secret: Option<SecretString>,
    pub public_url: String,
    pub frontend_url: String,
    pub workers: usize,
    /// `AURORA_BODY_TIMEOUT_SECS` (10): a request body must arrive within this, else 408.
    pub body_timeout: Duration,
    /// `AURORA_MAX_CONNECTIONS`: open client connections at once, all workers together. Unset:
    /// derived from the file-descriptor limit at start (see [`crate::limits`]).
    pub max_connections: Option<usize>,
    /// `AURORA_CREDENTIALS_LOCAL_TTL_SECS` (at most 300): how long a replica keeps decrypted
    /// credentials in process (invalidated across replicas through the shared cache); 0 turns that
    /// tier off. Only used with Redis.
    pub credentials_local_ttl: Duration,
    pub settings: Settings,
}

#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub addr: String,
    pub token: SecretString,
    pub mount: String,
    pub prefix: String,
}

impl GatewayConfig {
    /// The process environment over the optional file named by `AURORA_CONFIG_FILE`.
    pub fn load() -> anyhow::Result<Self> {
        let env = Settings::from_env();
        let settings = match env.get("AURORA_CONFIG_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading AURORA_CONFIG_FILE {path}"))?;
                Settings::parse_file(&text)
                    .map_err(|e| anyhow::anyhow!("{path}: {e}"))?
                    .overlay(env)
            }
            None => env,
        };
        Self::from_settings(settings)
    }

    pub fn from_settings(settings: Settings) -> anyhow::Result<Self> {
        let raw: Raw = settings.extract("AURORA_").map_err(anyhow::Error::msg)?;
        let vault = match (raw.vault_addr, raw.vault_token) {
            (Some(addr), Some(token)) => Some(VaultSettings {
                addr: addr.trim_end_matches('/').to_owned(),
                token,
                mount: raw.vault_mount,
                prefix: raw.vault_prefix,
            }),
            (Some(_), None) => bail!("AURORA_VAULT_ADDR is set but AURORA_VAULT_TOKEN is not"),
            (None, Some(_)) => bail!("AURORA_VAULT_TOKEN is set but AURORA_VAULT_ADDR is not"),
            (None, None) => None,
        };
        let public_url = match raw.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", raw.bind),
        };
        let frontend_url = match raw.frontend_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => public_url.clone(),
        };
        if raw.max_connections == Some(0) {
            bail!("AURORA_MAX_CONNECTIONS must be at least 1");
        }
        // Webhooks: URL and secret both or neither (a URL without a secret refuses to start).
        connector_webhooks::WebhookConfig::from_settings(&settings).map_err(anyhow::Error::msg)?;
        // Rate limits: checked here, read where they are used.
        crate::ratelimit::RateLimitConfig::from_settings(&settings).map_err(anyhow::Error::msg)?;
        Ok(Self {
            bind: raw.bind,
            data_dir: raw.data_dir,
            database_url: raw.database_url,
            database_pool_size: raw.database_pool_size,
            redis_url: raw.redis_url,
            redis_prefix: raw.redis_prefix,
            vault,
            internal_secret: raw.internal_secret,
            public_url,
            frontend_url,
            workers: raw.workers,
            body_timeout: raw.body_timeout_secs,
            max_connections: raw.max_connections,
            credentials_local_ttl: raw.credentials_local_ttl_secs,
            settings,
        })
    }

    /// The socket addresses `AURORA_BIND` names.
    pub fn bind_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = self
            .bind
            .to_socket_addrs()
            .with_context(|| format!("AURORA_BIND={} is not a host:port address", self.bind))?
            .collect();
        if addrs.is_empty() {
            bail!("AURORA_BIND={} resolves to no address", self.bind);
        }
        Ok(addrs)
    }

    /// §1: refuse to listen beyond loopback unless trusted callers are authenticated.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        let addrs = self.bind_addrs()?;
        let exposed = addrs.iter().any(|a| !a.ip().is_loopback());
        if exposed && self.internal_secret.is_none() {
            bail!(
                "refusing to listen on {} (not a loopback address) without AURORA_INTERNAL_SECRET: \
                 anyone who can reach the port could act as any user. Set AURORA_INTERNAL_SECRET, \
                 or bind to 127.0.0.1",
                self.bind
            );
        }
        Ok(())
    }
}

/// The gateway's own `AURORA_*` variables, as read (see [`GatewayConfig`] for their meaning).
#[derive(Deserialize)]
#[serde(default)]
struct Raw {
    bind: String,
    data_dir: PathBuf,
    database_url: Option<SecretString>,
    database_pool_size: usize,
    redis_url: Option<SecretString>,
    redis_prefix: String,
    vault_addr: Option<String>,
    vault_token: Option<SecretString>,
    vault_mount: String,
    vault_prefix: String,
    internal_secret: Option<SecretString>,
    public_url: Option<String>,
    frontend_url: Option<String>,
    workers: usize,
    #[serde(deserialize_with = "AtLeast::<1>::secs")]
    body_timeout_secs: Duration,
    max_connections: Option<usize>,
    #[serde(deserialize_with = "Range::<0, 300>::secs")]
    credentials_local_ttl_secs: Duration,
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: "./data".into(),
            database_url: None,
            database_pool_size: 16,
            redis_url: None,
            redis_prefix: "aurora:".into(),
            vault_addr: None,
            vault_token: None,
            vault_mount: "secret".into(),
            vault_prefix: "aurora".into(),
            internal_secret: None,
            public_url: None,
            frontend_url: None,
            workers: 0,
            body_timeout_secs: Duration::from_secs(10),
            max_connections: None,
            credentials_local_ttl_secs: connector_core::broker::DEFAULT_LOCAL_TTL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = GatewayConfig::from_settings(Settings::new()).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.frontend_url, c.public_url);
        assert!(c.database_url.is_none() && c.redis_url.is_none() && c.vault.is_none());
        c.check_exposure().unwrap();
    }

    #[test]
    fn exposure_needs_internal_secret() {
        let c = GatewayConfig::from_settings(Settings::new().with("AURORA_BIND", "0.0.0.0:8080"))
            .unwrap();
        let err = c.check_exposure().unwrap_err().to_string();
        assert!(err.contains("AURORA_INTERNAL_SECRET"), "{err}");
        let c = GatewayConfig::from_settings(
            Settings::new()
                .with("AURORA_BIND", "0.0.0.0:8080")
                .with("AURORA_INTERNAL_SECRET", "x"),
        )
        .unwrap();
        c.check_exposure().unwrap();
        let c = GatewayConfig::from_settings(Settings::new().with("AURORA_BIND", "[::1]:9000"))
            .unwrap();
        c.check_exposure().unwrap();
    }

    #[test]
    fn vault_needs_both_values() {
        assert!(GatewayConfig::from_settings(
            Settings::new().with("AURORA_VAULT_ADDR", "http://127.0.0.1:8200")
        )
        .is_err());
        let c = GatewayConfig::from_settings(
            Settings::new()
                .with("AURORA_VAULT_ADDR", "http://127.0.0.1:8200/")
                .with("AURORA_VAULT_TOKEN", "root"),
        )
        .unwrap();
        let v = c.vault.unwrap();
        assert_eq!(v.addr, "http://127.0.0.1:8200");
        assert_eq!(v.mount, "secret");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = GatewayConfig::from_settings(
            Settings::new()
                .with("AURORA_DATABASE_URL", "postgres://u:pw-123@db/x")
                .with("AURORA_INTERNAL_SECRET", "int-456"),
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("pw-123") && !d.contains("int-456"), "{d}");
    }
}
