//! Reading secret files: either format, checked against the path they are read for.

use super::*;

impl Inner {
    /// Read and open one secret file (either format); `None` when it does not exist.
    pub(super) fn read_record(&self, name: &str) -> Result<Option<Record>, SecretStoreError> {
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
    pub(super) fn read_checked(
        &self,
        path: &SecretPath,
    ) -> Result<Option<Record>, SecretStoreError> {
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

    pub(super) fn get_versioned(
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

    pub(super) fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.get_versioned(path)?.map(|v| v.value))
    }
}
