//! `SecretStore` for `VaultSecretStore`: KV v2 reads, writes with check-and-set, deletes and listing.

use super::*;

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
