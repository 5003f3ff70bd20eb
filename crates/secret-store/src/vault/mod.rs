//! The Vault / OpenBao KV v2 secret store (vaultrs, token auth).
//!
//! Storage format: the secret at [`SecretPath`] `p` is the KV v2 secret `{prefix}/{p}` of the mount
//! `{mount}` (so `<mount>/data/aurora/users/<user>/<provider>/<connection>`), whose data is the JSON
//! document `{"v": "<standard base64 of the value's bytes>"}`. Base64 keeps the round trip byte-exact
//! for any bytes (JSON documents as well as raw keys).
//!
//! Versions are KV v2's own (`metadata.version`); [`SecretStore::put_cas`] is KV v2 check-and-set
//! (`options.cas`), which the server refuses with a 400 naming "check-and-set" when the current
//! version is another: that answer becomes [`SecretStoreError::Conflict`]. A delete removes the
//! metadata too, so a secret written again after a delete starts at version 1.
//! [`SecretStore::get_or_create`] is a read, then a create-only write (`cas = 0`), then on a
//! conflict a read of the winner's value.
//!
//! vaultrs (and rustify under it) log every error answer at ERROR level, a 404 for an absent
//! secret and a check-and-set conflict included; this module maps every answer to a typed error,
//! and the gateway's default log filter turns those two targets off.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use connector_core::secrets::{get_or_create_gave_up, GET_OR_CREATE_ATTEMPTS};
use connector_core::{SecretPath, SecretStore, SecretStoreError, SecretValue, VersionedSecret};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

mod errors;
mod store;
use self::errors::*;

/// Per-request timeout, so a dead or stuck server answers promptly.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach Vault / OpenBao.
#[derive(Clone, Debug)]
pub struct VaultConfig {
    /// Base URL, e.g. `http://127.0.0.1:8200`.
    pub addr: String,
    pub token: SecretString,
    /// The KV v2 mount; default `secret`.
    pub mount: String,
    /// The folder of Aurora's secrets inside the mount; default `aurora`.
    pub prefix: String,
}

impl VaultConfig {
    /// A config with the default mount (`secret`) and prefix (`aurora`).
    pub fn new(addr: impl Into<String>, token: SecretString) -> Self {
        Self {
            addr: addr.into(),
            token,
            mount: "secret".to_owned(),
            prefix: "aurora".to_owned(),
        }
    }
}

/// [`SecretStore`] over a Vault / OpenBao KV v2 mount.
pub struct VaultSecretStore {
    client: VaultClient,
    addr: String,
    mount: String,
    prefix: String,
}

impl fmt::Debug for VaultSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecretStore")
            .field("addr", &self.addr)
            .field("mount", &self.mount)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The KV document.
#[derive(Serialize)]
struct DocOut<'a> {
    v: &'a str,
}

#[derive(Deserialize)]
struct DocIn {
    v: String,
}

impl VaultSecretStore {
    /// Build the client. Does not contact the server (see [`SecretStore::ping`]).
    pub fn new(cfg: VaultConfig) -> Result<Self, SecretStoreError> {
        let addr = cfg.addr.trim().trim_end_matches('/').to_owned();
        // vaultrs panics on an address it cannot parse: check it first.
        match url::Url::parse(&addr) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(SecretStoreError::Refused(format!(
                    "vault address {addr:?} is not an http(s) URL"
                )))
            }
        }
        let mount = cfg.mount.trim_matches('/').to_owned();
        if mount.is_empty() {
            return Err(SecretStoreError::Refused("vault mount is empty".into()));
        }
        let prefix = cfg.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() && SecretPath::from_stored(&prefix).is_err() {
            return Err(SecretStoreError::Refused(format!(
                "vault prefix {prefix:?} is not a valid path"
            )));
        }
        let settings = VaultClientSettingsBuilder::default()
            .address(&addr)
            .token(cfg.token.expose_secret())
            .timeout(Some(REQUEST_TIMEOUT))
            .build()
            .map_err(|e| SecretStoreError::Refused(format!("vault client settings: {e}")))?;
        let client = VaultClient::new(settings)
            .map_err(|e| SecretStoreError::Unavailable(format!("vault client: {e}")))?;
        Ok(Self {
            client,
            addr,
            mount,
            prefix,
        })
    }

    /// The KV path (inside the mount) of a secret path.
    fn kv_path(&self, p: &SecretPath) -> String {
        if self.prefix.is_empty() {
            p.as_str().to_owned()
        } else {
            format!("{}/{}", self.prefix, p.as_str())
        }
    }
}
