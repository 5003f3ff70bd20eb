//! The embedded secret store: one sealed file per secret in a local folder, for single-node setups.
//!
//! Layout of `dir`:
//! - `secret-store.key`: 32 random bytes, mode 0600, made on first start. The store refuses to start
//!   when it is readable by group or others, or has another length. Losing it loses every secret.
//! - `secrets/<hex SHA-256 of the secret path>`: one file per secret, so user input never names a
//!   file. Its content is `SealingKey::seal(record, aad)` (XChaCha20-Poly1305, see
//!   `connector_core::crypto`) with `record = u64 BE version ‖ u32 BE length of the path ‖ path ‖
//!   value bytes` and `aad = "aurora-embedded-secret-v2/" ‖ file name`. The path is inside the sealed
//!   record so that `list` can name secrets without any plaintext index; a file copied under another
//!   name, or read with another key, fails to open (`Corrupt`). Files of the first format
//!   (`aad = "aurora-embedded-secret-v1/" ‖ name`, a record without the version) are still read, as
//!   version 1, and rewritten in the current format by the next write.
//!
//! The version counts writes (1 for the first; it starts again at 1 after a delete) and serves
//! [`SecretStore::put_cas`]: every write reads the current version and writes the next one under one
//! lock, so check-and-set is atomic within the process. The embedded store serves one gateway process
//! (several replicas use Vault/OpenBao).
//!
//! Writes go to a temporary file (`secrets/.tmp-*`, mode 0600), are fsynced, renamed over the target
//! and the folder is fsynced, so a crash leaves the old or the new secret, never a mix.
//! [`SecretStore::get_or_create`] hard-links the temporary file to the target instead of renaming
//! it: the link fails when the target exists, so a create is exclusive even between processes.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use connector_core::secrets::{get_or_create_gave_up, GET_OR_CREATE_ATTEMPTS};
use connector_core::{
    SealingKey, SecretPath, SecretStore, SecretStoreError, SecretValue, VersionedSecret,
};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

mod files;
mod list;
mod read;
mod write;
use self::files::*;

const KEY_FILE: &str = "secret-store.key";
const SECRETS_DIR: &str = "secrets";
const TMP_PREFIX: &str = ".tmp-";
const AAD_PREFIX: &[u8] = b"aurora-embedded-secret-v2/";
/// The first format: no version in the record.
const AAD_PREFIX_V1: &[u8] = b"aurora-embedded-secret-v1/";

/// [`SecretStore`] in a local folder, encrypted with a key file kept beside the secrets.
#[derive(Clone)]
pub struct EmbeddedSecretStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    secrets: PathBuf,
    key: SealingKey,
    /// File name → secret path, learnt by opening files. Always valid while the file exists, since
    /// the name is the hash of the path.
    names: Mutex<HashMap<String, String>>,
    /// Held by every write and delete, so reading the current version and writing the next one is
    /// one step.
    writes: Mutex<()>,
}

/// An opened secret file.
struct Record {
    plain: Zeroizing<Vec<u8>>,
    version: u64,
    /// Where `u32 length ‖ path ‖ value` starts in `plain`.
    body: usize,
}

impl Record {
    fn parts(&self) -> Option<(&str, &[u8])> {
        split_record(self.plain.get(self.body..)?)
    }
}

impl fmt::Debug for EmbeddedSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedSecretStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl EmbeddedSecretStore {
    /// Open the store in `dir`, creating the folder and a new key on first start.
    pub fn open(dir: &Path) -> Result<Self, SecretStoreError> {
        make_dir(dir)?;
        let secrets = dir.join(SECRETS_DIR);
        make_dir(&secrets)?;
        let key = load_or_create_key(dir, &secrets)?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                secrets,
                key,
                names: Mutex::new(HashMap::new()),
                writes: Mutex::new(()),
            }),
        })
    }

    /// The folder the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The key file's path.
    pub fn key_file(&self) -> PathBuf {
        self.inner.dir.join(KEY_FILE)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, SecretStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SecretStoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|_| {
                SecretStoreError::Unavailable("embedded store: a file task failed".into())
            })?
    }
}

#[async_trait]
impl SecretStore for EmbeddedSecretStore {
    fn backend_name(&self) -> &'static str {
        "embedded"
    }

    /// Checks that the folder of secrets can still be listed.
    async fn ping(&self) -> Result<(), SecretStoreError> {
        self.blocking(|inner| {
            fs::read_dir(&inner.secrets)
                .map(drop)
                .map_err(|e| io_err("cannot list", &inner.secrets, &e))
        })
        .await
    }

    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        let (path, value) = (path.clone(), value.clone());
        self.blocking(move |inner| inner.put(&path, &value)).await
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        let path = path.clone();
        self.blocking(move |inner| inner.get(&path)).await
    }

    async fn get_or_create(
        &self,
        path: &SecretPath,
        candidate: &SecretValue,
    ) -> Result<SecretValue, SecretStoreError> {
        let path = path.clone();
        let candidate = candidate.clone();
        self.blocking(move |inner| inner.get_or_create(&path, &candidate))
            .await
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        let path = path.clone();
        self.blocking(move |inner| inner.delete(&path)).await
    }

    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        let path = path.clone();
        self.blocking(move |inner| inner.get_versioned(&path)).await
    }

    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        let (path, value) = (path.clone(), value.clone());
        self.blocking(move |inner| inner.put_cas(&path, &value, expected))
            .await
    }

    async fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        let folder = folder.clone();
        self.blocking(move |inner| inner.list(&folder)).await
    }

    async fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        let folder = folder.clone();
        self.blocking(move |inner| inner.scan(&folder)).await
    }

    async fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        let path = path.clone();
        self.blocking(move |inner| inner.written_at(&path)).await
    }
}

#[cfg(test)]
mod tests;
