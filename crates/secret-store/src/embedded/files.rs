//! The embedded store's files: folders, the key file, file names, the AAD and the record layout.

use super::*;

pub(super) fn make_dir(dir: &Path) -> Result<(), SecretStoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("cannot create the folder", dir, &e))
}

pub(super) fn io_err(what: &str, path: &Path, e: &io::Error) -> SecretStoreError {
    let msg = format!("embedded store: {what} {}: {}", path.display(), e.kind());
    if e.kind() == ErrorKind::PermissionDenied {
        SecretStoreError::Refused(msg)
    } else {
        SecretStoreError::Unavailable(msg)
    }
}

pub(super) fn load_or_create_key(
    dir: &Path,
    secrets: &Path,
) -> Result<SealingKey, SecretStoreError> {
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

pub(super) fn read_key(path: &Path, meta: &fs::Metadata) -> Result<SealingKey, SecretStoreError> {
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

pub(super) fn sync_dir(dir: &Path) -> Result<(), SecretStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync the folder", dir, &e))
}

pub(super) fn is_secret_file_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) fn count_secret_files(secrets: &Path) -> Result<usize, SecretStoreError> {
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

pub(super) fn file_name(path: &SecretPath) -> String {
    hex::encode(Sha256::digest(path.as_str().as_bytes()))
}

pub(super) fn aad(name: &str) -> Vec<u8> {
    aad_with(AAD_PREFIX, name)
}

pub(super) fn aad_with(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut a = prefix.to_vec();
    a.extend_from_slice(name.as_bytes());
    a
}

/// Split a record into (path, value).
pub(super) fn split_record(record: &[u8]) -> Option<(&str, &[u8])> {
    let len_bytes: [u8; 4] = record.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let path = record.get(4..4 + len)?;
    let value = record.get(4 + len..)?;
    Some((std::str::from_utf8(path).ok()?, value))
}
