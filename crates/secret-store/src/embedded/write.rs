//! Writing secret files: versions, check-and-set, and atomic replace or exclusive create.

use super::*;

impl Inner {
    pub(super) fn put(
        &self,
        path: &SecretPath,
        value: &SecretValue,
    ) -> Result<(), SecretStoreError> {
        let _writing = self.writes.lock();
        // A file that cannot be read any more is replaced (that is how a user repairs it).
        let current = self
            .read_checked(path)
            .ok()
            .flatten()
            .map_or(0, |r| r.version);
        self.write(path, value, current + 1)
    }

    pub(super) fn put_cas(
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
    pub(super) fn get_or_create(
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
    pub(super) fn write(
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
    pub(super) fn seal_record(
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
    pub(super) fn write_temporary(&self, content: &[u8]) -> io::Result<PathBuf> {
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

    pub(super) fn write_atomically(
        &self,
        name: &str,
        content: &[u8],
    ) -> Result<(), SecretStoreError> {
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
    pub(super) fn create_atomically(
        &self,
        name: &str,
        content: &[u8],
    ) -> Result<bool, SecretStoreError> {
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
}
