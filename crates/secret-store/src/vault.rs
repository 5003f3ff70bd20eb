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

/// Decode a stored document's value.
fn decode(path: &SecretPath, doc: DocIn) -> Result<SecretValue, SecretStoreError> {
    let encoded = Zeroizing::new(doc.v);
    let bytes = B64.decode(encoded.as_bytes()).map_err(|_| {
        SecretStoreError::Corrupt(format!("{path}: the stored value is not base64"))
    })?;
    Ok(SecretValue::from_bytes(bytes))
}

/// Whether KV v2 refused a write because its check-and-set version did not match.
fn is_cas_mismatch(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 400, errors }
        if errors.iter().any(|m| m.contains("check-and-set")))
}

/// Map a vaultrs error. `what` names the operation (never a value). `Ok(())` means "not found".
fn map_err(what: &str, e: ClientError) -> Result<(), SecretStoreError> {
    use rustify_errors::ServerOrTransport;
    match e {
        ClientError::APIError { code, errors } => match code {
            // KV answers a bare 404 (`{"errors":[]}`) for an absent secret or an empty folder; a 404
            // with words is a missing mount or route ("no handler for route").
            404 if errors.is_empty() => Ok(()),
            404 => Err(SecretStoreError::Refused(format!(
                "{what}: not found (404): {}",
                words(&errors)
            ))),
            401 | 403 => Err(SecretStoreError::Refused(format!(
                "{what}: permission denied ({code}): {}",
                words(&errors)
            ))),
            429 | 500..=599 => Err(SecretStoreError::Unavailable(format!(
                "{what}: server error ({code}): {}",
                words(&errors)
            ))),
            _ => Err(SecretStoreError::Refused(format!(
                "{what}: refused ({code}): {}",
                words(&errors)
            ))),
        },
        ClientError::RestClientError { source } => match rustify_errors::classify(&source) {
            ServerOrTransport::Status(404) => Ok(()),
            ServerOrTransport::Status(code @ (401 | 403)) => Err(SecretStoreError::Refused(
                format!("{what}: permission denied ({code})"),
            )),
            ServerOrTransport::Status(code @ (429 | 500..=599)) => Err(
                SecretStoreError::Unavailable(format!("{what}: server error ({code})")),
            ),
            ServerOrTransport::Status(code) => Err(SecretStoreError::Refused(format!(
                "{what}: refused ({code})"
            ))),
            ServerOrTransport::Transport(detail) => Err(SecretStoreError::Unavailable(format!(
                "{what}: cannot reach the server: {detail}"
            ))),
            ServerOrTransport::Decode => Err(SecretStoreError::Corrupt(format!(
                "{what}: the server's answer does not decode"
            ))),
            ServerOrTransport::Other(detail) => {
                Err(SecretStoreError::Refused(format!("{what}: {detail}")))
            }
        },
        ClientError::JsonParseError { .. }
        | ClientError::ResponseEmptyError
        | ClientError::ResponseDataEmptyError
        | ClientError::ResponseWrapError => Err(SecretStoreError::Corrupt(format!(
            "{what}: the server's answer does not decode"
        ))),
        // Display of the remaining variants holds no response content.
        other => Err(SecretStoreError::Refused(format!("{what}: {other}"))),
    }
}

/// Vault's error words, bounded (they name paths and reasons, never values).
fn words(errors: &[String]) -> String {
    let mut s = errors.join("; ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    if s.is_empty() {
        s.push_str("no details");
    }
    s
}

/// Classification of rustify's transport errors without printing any response body they may carry.
mod rustify_errors {

    pub enum ServerOrTransport {
        Status(u16),
        Transport(String),
        Decode,
        Other(String),
    }

    pub fn classify(e: &rustify::errors::ClientError) -> ServerOrTransport {
        use rustify::errors::ClientError as R;
        match e {
            R::ServerResponseError { code, .. } => ServerOrTransport::Status(*code),
            R::RequestError { source, .. } | R::ResponseError { source } => {
                ServerOrTransport::Transport(transport_detail(source.as_ref()))
            }
            R::ResponseConversionError { .. } | R::ResponseParseError { .. } => {
                ServerOrTransport::Decode
            }
            other => ServerOrTransport::Other(other.to_string()),
        }
    }

    /// "connection refused", "timed out", … from the error chain (reqwest/hyper/io), never a body.
    fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
        let mut kinds = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<reqwest::Error>() {
                if r.is_timeout() {
                    kinds.push("timed out".to_owned());
                } else if r.is_connect() {
                    kinds.push("connect error".to_owned());
                }
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                kinds.push(io.kind().to_string());
            }
            cur = err.source();
        }
        kinds.dedup();
        if kinds.is_empty() {
            "request failed".to_owned()
        } else {
            kinds.join(": ")
        }
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    fn backend_name(&self) -> &'static str {
        "vault"
    }

    /// Lists the store's root folder: reaches the server, checks that it is unsealed, that the token
    /// is valid and that it may use the mount.
    async fn ping(&self) -> Result<(), SecretStoreError> {
        let root = if self.prefix.is_empty() {
            ""
        } else {
            self.prefix.as_str()
        };
        match vaultrs::kv2::list(&self.client, &self.mount, root).await {
            Ok(_) => Ok(()),
            Err(e) => map_err("ping", e),
        }
    }

    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        let encoded = Zeroizing::new(B64.encode(value.expose_bytes()));
        let doc = DocOut { v: &encoded };
        match vaultrs::kv2::set(&self.client, &self.mount, &self.kv_path(path), &doc).await {
            Ok(_) => Ok(()),
            Err(e) => {
                map_err("put", e)?;
                Err(SecretStoreError::Refused(
                    "put: not found (404): the mount does not exist".into(),
                ))
            }
        }
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        match vaultrs::kv2::read::<DocIn>(&self.client, &self.mount, &self.kv_path(path)).await {
            Ok(doc) => decode(path, doc).map(Some),
            Err(ClientError::JsonParseError { .. }) => Err(SecretStoreError::Corrupt(format!(
                "{path}: the stored document is not an Aurora secret"
            ))),
            Err(e) => map_err("get", e).map(|()| None),
        }
    }

    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        use vaultrs::api::kv2::requests::ReadSecretRequest;
        let endpoint = ReadSecretRequest::builder()
            .mount(self.mount.as_str())
            .path(self.kv_path(path))
            .build()
            .map_err(|e| SecretStoreError::Refused(format!("get: {e}")))?;
        match vaultrs::api::exec_with_result(&self.client, endpoint).await {
            // A version deleted (not destroyed) by someone else reads as null: absent.
            Ok(res) if res.data.is_null() => Ok(None),
            Ok(res) => {
                let doc: DocIn = serde_json::from_value(res.data).map_err(|_| {
                    SecretStoreError::Corrupt(format!(
                        "{path}: the stored document is not an Aurora secret"
                    ))
                })?;
                Ok(Some(VersionedSecret {
                    value: decode(path, doc)?,
                    version: res.metadata.version,
                }))
            }
            Err(e) => map_err("get", e).map(|()| None),
        }
    }

    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        let cas = u32::try_from(expected).map_err(|_| {
            SecretStoreError::Refused(format!("put: version {expected} is out of range"))
        })?;
        let encoded = Zeroizing::new(B64.encode(value.expose_bytes()));
        let doc = DocOut { v: &encoded };
        let options = vaultrs::api::kv2::requests::SetSecretRequestOptions { cas };
        match vaultrs::kv2::set_with_options(
            &self.client,
            &self.mount,
            &self.kv_path(path),
            &doc,
            options,
        )
        .await
        {
            Ok(meta) => Ok(meta.version),
            Err(e) if is_cas_mismatch(&e) => Err(SecretStoreError::Conflict(format!(
                "{path}: the secret is no longer at version {expected}"
            ))),
            Err(e) => {
                map_err("put", e)?;
                Err(SecretStoreError::Refused(
                    "put: not found (404): the mount does not exist".into(),
                ))
            }
        }
    }

    /// Read; when absent, a create-only write (KV v2 `options.cas = 0`, which the server refuses
    /// when any version exists); when another writer created it first, read its value.
    async fn get_or_create(
        &self,
        path: &SecretPath,
        candidate: &SecretValue,
    ) -> Result<SecretValue, SecretStoreError> {
        for _ in 0..GET_OR_CREATE_ATTEMPTS {
            if let Some(v) = self.get(path).await? {
                return Ok(v);
            }
            match self.put_cas(path, candidate, 0).await {
                Ok(_) => return Ok(candidate.clone()),
                Err(SecretStoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(get_or_create_gave_up(path))
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        match vaultrs::kv2::delete_metadata(&self.client, &self.mount, &self.kv_path(path)).await {
            Ok(()) => Ok(()),
            Err(e) => map_err("delete", e),
        }
    }

    async fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        match vaultrs::kv2::list(&self.client, &self.mount, &self.kv_path(folder)).await {
            Ok(keys) => {
                let mut names: Vec<String> =
                    keys.into_iter().filter(|k| !k.ends_with('/')).collect();
                names.sort();
                Ok(names)
            }
            Err(e) => map_err("list", e).map(|()| Vec::new()),
        }
    }

    async fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        // KV v2 lists one level at a time; sub-folders end with `/`.
        let mut out = Vec::new();
        let mut pending = vec![folder.clone()];
        while let Some(dir) = pending.pop() {
            let keys =
                match vaultrs::kv2::list(&self.client, &self.mount, &self.kv_path(&dir)).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        map_err("scan", e)?;
                        Vec::new()
                    }
                };
            for key in keys {
                let child = dir.child(&key)?;
                if key.ends_with('/') {
                    pending.push(child);
                } else {
                    out.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        match vaultrs::kv2::read_metadata(&self.client, &self.mount, &self.kv_path(path)).await {
            Ok(meta) => chrono::DateTime::parse_from_rfc3339(&meta.updated_time)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| SecretStoreError::Corrupt("unreadable secret metadata time".into())),
            Err(e) => map_err("read metadata", e).map(|()| None),
        }
    }
}
