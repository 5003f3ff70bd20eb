//! Gateway configuration: typed values read from `AURORA_*` settings (environment over config file).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};
use connector_core::Settings;
use secrecy::SecretString;

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
    pub body_timeout: std::time::Duration,
    /// `AURORA_MAX_CONNECTIONS`: open client connections at once, all workers together. Unset:
    /// derived from the file-descriptor limit at start (see [`crate::limits`]).
    pub max_connections: Option<usize>,
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
        let bind = settings.get_or("AURORA_BIND", "127.0.0.1:8080").to_owned();
        let data_dir = PathBuf::from(settings.get_or("AURORA_DATA_DIR", "./data"));
        let database_url = settings.get("AURORA_DATABASE_URL").map(SecretString::from);
        let redis_url = settings.get("AURORA_REDIS_URL").map(SecretString::from);
        let vault = match (
            settings.get("AURORA_VAULT_ADDR"),
            settings.get("AURORA_VAULT_TOKEN"),
        ) {
            (Some(addr), Some(token)) => Some(VaultSettings {
                addr: addr.trim_end_matches('/').to_owned(),
                token: SecretString::from(token),
                mount: settings.get_or("AURORA_VAULT_MOUNT", "secret").to_owned(),
                prefix: settings.get_or("AURORA_VAULT_PREFIX", "aurora").to_owned(),
            }),
            (Some(_), None) => bail!("AURORA_VAULT_ADDR is set but AURORA_VAULT_TOKEN is not"),
            (None, Some(_)) => bail!("AURORA_VAULT_TOKEN is set but AURORA_VAULT_ADDR is not"),
            (None, None) => None,
        };
        let internal_secret = settings
            .get("AURORA_INTERNAL_SECRET")
            .map(SecretString::from);
        let public_url = settings
            .get("AURORA_PUBLIC_URL")
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{bind}"));
        let frontend_url = settings
            .get("AURORA_FRONTEND_URL")
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| public_url.clone());
        let workers = settings
            .get_parsed("AURORA_WORKERS", 0usize)
            .map_err(anyhow::Error::msg)?;
        let database_pool_size = settings
            .get_parsed("AURORA_DATABASE_POOL_SIZE", 16usize)
            .map_err(anyhow::Error::msg)?;
        let redis_prefix = settings.get_or("AURORA_REDIS_PREFIX", "aurora:").to_owned();
        let body_timeout = settings
            .get_parsed("AURORA_BODY_TIMEOUT_SECS", 10u64)
            .map_err(anyhow::Error::msg)?;
        if body_timeout == 0 {
            bail!("AURORA_BODY_TIMEOUT_SECS must be at least 1");
        }
        let max_connections = match settings.get("AURORA_MAX_CONNECTIONS") {
            None => None,
            Some(_) => {
                let n = settings
                    .get_parsed("AURORA_MAX_CONNECTIONS", 0usize)
                    .map_err(anyhow::Error::msg)?;
                if n == 0 {
                    bail!("AURORA_MAX_CONNECTIONS must be at least 1");
                }
                Some(n)
            }
        };
        // Webhooks: URL and secret both or neither (a URL without a secret refuses to start).
        connector_webhooks::WebhookConfig::from_settings(&settings).map_err(anyhow::Error::msg)?;
        // Rate limits and the in-process credential tier: checked here, read where they are used.
        crate::ratelimit::RateLimitConfig::from_settings(&settings).map_err(anyhow::Error::msg)?;
        credentials_local_ttl(&settings).map_err(anyhow::Error::msg)?;
        let cfg = Self {
            bind,
            data_dir,
            database_url,
            database_pool_size,
            redis_url,
            redis_prefix,
            vault,
            internal_secret,
            public_url,
            frontend_url,
            workers,
            body_timeout: std::time::Duration::from_secs(body_timeout),
            max_connections,
            settings,
        };
        Ok(cfg)
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

/// `AURORA_CREDENTIALS_LOCAL_TTL_SECS`: how long a replica keeps decrypted credentials in process
/// (invalidated across replicas through the shared cache); 0 turns that tier off. Only used with Redis.
pub fn credentials_local_ttl(settings: &Settings) -> Result<std::time::Duration, String> {
    let default = connector_core::broker::DEFAULT_LOCAL_TTL.as_secs();
    let secs: u64 = settings.get_parsed("AURORA_CREDENTIALS_LOCAL_TTL_SECS", default)?;
    if secs > 300 {
        return Err("AURORA_CREDENTIALS_LOCAL_TTL_SECS must be at most 300".into());
    }
    Ok(std::time::Duration::from_secs(secs))
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
