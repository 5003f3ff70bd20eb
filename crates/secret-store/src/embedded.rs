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

fn make_dir(dir: &Path) -> Result<(), SecretStoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("cannot create the folder", dir, &e))
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> SecretStoreError {
    let msg = format!("embedded store: {what} {}: {}", path.display(), e.kind());
    if e.kind() == ErrorKind::PermissionDenied {
        SecretStoreError::Refused(msg)
    } else {
        SecretStoreError::Unavailable(msg)
    }
}

fn load_or_create_key(dir: &Path, secrets: &Path) -> Result<SealingKey, SecretStoreError> {
    let path = dir.join(KEY_FILE);
    // Two processes may start at once: one creates the key, the other then reads it.
    for _ in 0..2 {
        match fs::symlink_metadata(&path) {
            Ok(meta) => return read_key(&path, &meta),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot inspect the key file", &path, &e)),
        }
        let existing = count_secret_files(secrets)?;
        if existing > 0 {
            return Err(SecretStoreError::Refused(format!(
                "embedded store: the key file {} is missing but {existing} secrets exist; restore the \
                 key file (a new key could not read them)",
                path.display()
            )));
        }
        let key = SealingKey::generate();
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let written = f.write_all(key.expose_bytes()).and_then(|()| f.sync_all());
                if let Err(e) = written {
                    let _ = fs::remove_file(&path);
                    return Err(io_err("cannot write the key file", &path, &e));
                }
                sync_dir(dir)?;
                tracing::info!(key_file = %path.display(), "embedded secret store: created a new key");
                return Ok(key);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("cannot create the key file", &path, &e)),
        }
    }
    Err(SecretStoreError::Unavailable(format!(
        "embedded store: the key file {} keeps changing",
        path.display()
    )))
}

fn read_key(path: &Path, meta: &fs::Metadata) -> Result<SealingKey, SecretStoreError> {
    if !meta.file_type().is_file() {
        return Err(SecretStoreError::Refused(format!(
            "embedded store: the key file {} is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretStoreError::Refused(format!(
            "embedded store: the key file {} is accessible by group or others (mode {mode:o}); \
             run `chmod 600` on it",
            path.display()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(33));
    File::open(path)
        .and_then(|f| f.take(33).read_to_end(&mut bytes))
        .map_err(|e| io_err("cannot read the key file", path, &e))?;
    SealingKey::from_slice(&bytes).map_err(|_| {
        SecretStoreError::Corrupt(format!(
            "embedded store: the key file {} must hold exactly 32 bytes",
            path.display()
        ))
    })
}

fn sync_dir(dir: &Path) -> Result<(), SecretStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync the folder", dir, &e))
}

fn is_secret_file_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn count_secret_files(secrets: &Path) -> Result<usize, SecretStoreError> {
    let entries = fs::read_dir(secrets).map_err(|e| io_err("cannot list", secrets, &e))?;
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", secrets, &e))?;
        if entry.file_name().to_str().is_some_and(is_secret_file_name) {
            n += 1;
        }
    }
    Ok(n)
}

fn file_name(path: &SecretPath) -> String {
    hex::encode(Sha256::digest(path.as_str().as_bytes()))
}

fn aad(name: &str) -> Vec<u8> {
    aad_with(AAD_PREFIX, name)
}

fn aad_with(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut a = prefix.to_vec();
    a.extend_from_slice(name.as_bytes());
    a
}

/// Split a record into (path, value).
fn split_record(record: &[u8]) -> Option<(&str, &[u8])> {
    let len_bytes: [u8; 4] = record.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let path = record.get(4..4 + len)?;
    let value = record.get(4 + len..)?;
    Some((std::str::from_utf8(path).ok()?, value))
}

impl Inner {
    /// Read and open one secret file (either format); `None` when it does not exist.
    fn read_record(&self, name: &str) -> Result<Option<Record>, SecretStoreError> {
        let file = self.secrets.join(name);
        let sealed = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &file, &e)),
        };
        let record = match self.key.open(&sealed, &aad(name)) {
            Ok(plain) => plain
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .map(|version| Record {
                    plain,
                    version,
                    body: 8,
                }),
            Err(_) => self
                .key
                .open(&sealed, &aad_with(AAD_PREFIX_V1, name))
                .map(|plain| Record {
                    plain,
                    version: 1,
                    body: 0,
                })
                .map_err(|_| {
                    SecretStoreError::Corrupt(format!(
                        "embedded store: {} cannot be decrypted (another key file, or damaged data)",
                        file.display()
                    ))
                })
                .map(Some)?,
        };
        match record {
            Some(r) if r.parts().is_some() => Ok(Some(r)),
            _ => Err(SecretStoreError::Corrupt(format!(
                "embedded store: {} holds a malformed record",
                file.display()
            ))),
        }
    }

    /// The record of `path`, checked to name that path.
    fn read_checked(&self, path: &SecretPath) -> Result<Option<Record>, SecretStoreError> {
        let Some(record) = self.read_record(&file_name(path))? else {
            return Ok(None);
        };
        match record.parts() {
            Some((stored, _)) if stored == path.as_str() => Ok(Some(record)),
            _ => Err(SecretStoreError::Corrupt(format!(
                "embedded store: the file of {path} holds another path"
            ))),
        }
    }

    fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        Ok(self.read_checked(path)?.and_then(|r| {
            r.parts().map(|(_, value)| VersionedSecret {
                value: SecretValue::from_bytes(value.to_vec()),
                version: r.version,
            })
        }))
    }

    fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.get_versioned(path)?.map(|v| v.value))
    }

    fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        let _writing = self.writes.lock();
        // A file that cannot be read any more is replaced (that is how a user repairs it).
        let current = self
            .read_checked(path)
            .ok()
            .flatten()
            .map_or(0, |r| r.version);
        self.write(path, value, current + 1)
    }

    fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        let _writing = self.writes.lock();
        let current = self.read_checked(path)?.map_or(0, |r| r.version);
        if current != expected {
            return Err(SecretStoreError::Conflict(format!(
                "{path}: the secret is no longer at version {expected}"
            )));
        }
        self.write(path, value, expected + 1)?;
        Ok(expected + 1)
    }

    /// The stored secret, or `candidate` written as version 1 with an exclusive create: the sealed
    /// file is written under a temporary name, then hard-linked to its own name, which fails when
    /// that name exists. So the secret appears whole or not at all, and of two writers (threads, or
    /// two processes on one folder) exactly one creates it; the other reads the winner's value.
    fn get_or_create(
        &self,
        path: &SecretPath,
        candidate: &SecretValue,
    ) -> Result<SecretValue, SecretStoreError> {
        let _writing = self.writes.lock();
        for _ in 0..GET_OR_CREATE_ATTEMPTS {
            // A file that cannot be opened is an error here, never replaced: it may be a key that
            // other secrets depend on.
            if let Some(v) = self.get(path)? {
                return Ok(v);
            }
            let (name, sealed) = self.seal_record(path, candidate, 1)?;
            if self.create_atomically(&name, &sealed)? {
                self.names.lock().insert(name, path.as_str().to_owned());
                return Ok(candidate.clone());
            }
        }
        Err(get_or_create_gave_up(path))
    }

    /// Seal and write `value` as `version` of `path`. The caller holds `writes`.
    fn write(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        version: u64,
    ) -> Result<(), SecretStoreError> {
        let (name, sealed) = self.seal_record(path, value, version)?;
        self.write_atomically(&name, &sealed)?;
        self.names.lock().insert(name, path.as_str().to_owned());
        Ok(())
    }

    /// The file name of `path` and its sealed record holding `value` as `version`.
    fn seal_record(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        version: u64,
    ) -> Result<(String, Vec<u8>), SecretStoreError> {
        let name = file_name(path);
        let path_len = u32::try_from(path.as_str().len())
            .map_err(|_| SecretStoreError::Refused("embedded store: path too long".into()))?;
        let mut record = Zeroizing::new(Vec::with_capacity(12 + path.as_str().len() + value.len()));
        record.extend_from_slice(&version.to_be_bytes());
        record.extend_from_slice(&path_len.to_be_bytes());
        record.extend_from_slice(path.as_str().as_bytes());
        record.extend_from_slice(value.expose_bytes());
        let sealed = self.key.seal(&record, &aad(&name)).map_err(|_| {
            SecretStoreError::Unavailable("embedded store: encryption failed".into())
        })?;
        Ok((name, sealed))
    }

    /// Write `content` to a new temporary file (mode 0600, fsynced); its path.
    fn write_temporary(&self, content: &[u8]) -> io::Result<PathBuf> {
        let mut rnd = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut rnd);
        let tmp = self
            .secrets
            .join(format!("{TMP_PREFIX}{}", hex::encode(rnd)));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(content)?;
                f.sync_all()
            });
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn write_atomically(&self, name: &str, content: &[u8]) -> Result<(), SecretStoreError> {
        let target = self.secrets.join(name);
        let tmp = self
            .write_temporary(content)
            .map_err(|e| io_err("cannot write", &target, &e))?;
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("cannot write", &target, &e));
        }
        sync_dir(&self.secrets)
    }

    /// Like [`Inner::write_atomically`], but only if `name` does not exist (a hard link, unlike a
    /// rename, never replaces its target): whether this call created it.
    fn create_atomically(&self, name: &str, content: &[u8]) -> Result<bool, SecretStoreError> {
        let target = self.secrets.join(name);
        let tmp = self
            .write_temporary(content)
            .map_err(|e| io_err("cannot write", &target, &e))?;
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.secrets)?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("cannot create", &target, &e)),
        }
    }

    fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        let _writing = self.writes.lock();
        let name = file_name(path);
        let file = self.secrets.join(&name);
        match fs::remove_file(&file) {
            Ok(()) => sync_dir(&self.secrets)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot delete", &file, &e)),
        }
        self.names.lock().remove(&name);
        Ok(())
    }

    /// The paths of every secret file, learnt by opening each file once.
    fn all_paths(&self) -> Result<Vec<String>, SecretStoreError> {
        let entries =
            fs::read_dir(&self.secrets).map_err(|e| io_err("cannot list", &self.secrets, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot list", &self.secrets, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_secret_file_name(&name) {
                continue;
            }
            let known = self.names.lock().get(&name).cloned();
            let path = match known {
                Some(p) => p,
                None => {
                    // Deleted since read_dir: skip it.
                    let Some(record) = self.read_record(&name)? else {
                        continue;
                    };
                    let Some((p, _)) = record.parts() else {
                        continue;
                    };
                    let p = p.to_owned();
                    self.names.lock().insert(name, p.clone());
                    p
                }
            };
            out.push(path);
        }
        Ok(out)
    }

    fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        let prefix = format!("{}/", folder.as_str());
        let mut out: Vec<String> = self
            .all_paths()?
            .into_iter()
            .filter_map(|path| {
                let leaf = path.strip_prefix(&prefix)?;
                (!leaf.is_empty() && !leaf.contains('/')).then(|| leaf.to_owned())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        let prefix = format!("{}/", folder.as_str());
        let mut out = self
            .all_paths()?
            .into_iter()
            .filter(|p| p.starts_with(&prefix))
            .map(|p| SecretPath::from_stored(&p))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The file's modification time: when the current version was written.
    fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        let file = self.secrets.join(file_name(path));
        match fs::metadata(&file) {
            Ok(m) => {
                let t = m
                    .modified()
                    .map_err(|e| io_err("cannot read the time of", &file, &e))?;
                Ok(Some(t.into()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read the time of", &file, &e)),
        }
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
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let mut r = 3u32.to_be_bytes().to_vec();
        r.extend_from_slice(b"a/b\x00\xff");
        assert_eq!(split_record(&r), Some(("a/b", &b"\x00\xff"[..])));
        assert_eq!(split_record(&[0, 0, 0, 9, b'x']), None);
        assert_eq!(split_record(&[0, 0]), None);
    }

    #[test]
    fn file_names_are_hashes() {
        let p = SecretPath::from_stored("users/a/b/c").unwrap();
        let n = file_name(&p);
        assert!(is_secret_file_name(&n));
        assert!(!n.contains("users"));
    }

    #[test]
    fn refuses_a_readable_key_and_a_bad_length() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedSecretStore::open(dir.path()).unwrap());
        let key = dir.path().join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, SecretStoreError::Refused(_)), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&key, [7u8; 31]).unwrap();
        let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("32 bytes"), "{e}");
    }

    #[tokio::test]
    async fn refuses_to_make_a_new_key_over_existing_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let p = SecretPath::from_stored("system/k").unwrap();
        s.put(&p, &SecretValue::from_bytes(b"v".to_vec()))
            .await
            .unwrap();
        fs::remove_file(s.key_file()).unwrap();
        let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[tokio::test]
    async fn a_file_moved_to_another_name_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let a = SecretPath::from_stored("users/a/p/1").unwrap();
        let b = SecretPath::from_stored("users/b/p/1").unwrap();
        s.put(&a, &SecretValue::from_bytes(b"alice".to_vec()))
            .await
            .unwrap();
        let secrets = dir.path().join(SECRETS_DIR);
        fs::copy(secrets.join(file_name(&a)), secrets.join(file_name(&b))).unwrap();
        let e = s.get(&b).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
    }

    /// A file of the first format (no version) reads as version 1 and is upgraded by a write.
    #[tokio::test]
    async fn first_format_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let p = SecretPath::from_stored("users/a/p/legacy").unwrap();
        let name = file_name(&p);
        let mut record = (p.as_str().len() as u32).to_be_bytes().to_vec();
        record.extend_from_slice(p.as_str().as_bytes());
        record.extend_from_slice(b"old value");
        let sealed = s
            .inner
            .key
            .seal(&record, &aad_with(AAD_PREFIX_V1, &name))
            .unwrap();
        fs::write(dir.path().join(SECRETS_DIR).join(&name), sealed).unwrap();
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!(v.value.expose_bytes(), b"old value");
        assert_eq!(v.version, 1);
        assert_eq!(
            s.list(&SecretPath::from_stored("users/a/p").unwrap())
                .await
                .unwrap(),
            ["legacy"]
        );
        assert_eq!(
            s.put_cas(&p, &SecretValue::from_bytes(b"new".to_vec()), 1)
                .await
                .unwrap(),
            2
        );
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!((v.value.expose_bytes(), v.version), (&b"new"[..], 2));
    }

    #[test]
    fn debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        assert_eq!(
            format!("{s:?}"),
            format!("EmbeddedSecretStore {{ dir: {:?}, .. }}", dir.path())
        );
    }
}
