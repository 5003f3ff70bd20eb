//! The secret-store trait and secret paths. Implementations: Vault/OpenBao KV v2 and the embedded
//! encrypted store, in the `secret-store` crate.

use std::fmt;

use async_trait::async_trait;

use crate::error::SecretStoreError;
use crate::ids::{ConnectionId, ProviderId, UserId};
use crate::secret::SecretValue;

/// A path in the secret store, relative to the store's root prefix (by default `aurora/`), e.g.
/// `users/alice/scaleway/6f1c…`. Built only through the constructors, so user input cannot escape
/// its folder.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretPath(String);

impl SecretPath {
    /// `users/<user>/<provider>/<connection>`.
    pub fn connection(user: &UserId, provider: &ProviderId, id: ConnectionId) -> Self {
        Self(format!(
            "users/{}/{}/{}",
            Self::segment(user.as_str()),
            provider,
            id
        ))
    }

    /// The folder of one user's secrets of one provider, for [`SecretStore::list`].
    pub fn user_provider_folder(user: &UserId, provider: &ProviderId) -> Self {
        Self(format!(
            "users/{}/{}",
            Self::segment(user.as_str()),
            provider
        ))
    }

    /// `users`: the folder of every user's secrets (the reconciler scans it).
    pub fn users_root() -> Self {
        Self("users".to_owned())
    }

    /// The connection id of a path built by [`SecretPath::connection`]
    /// (`users/<user>/<provider>/<uuid>`); `None` for any other path (an AWS external ID, …).
    pub fn connection_id(&self) -> Option<ConnectionId> {
        let mut parts = self.0.split('/');
        let (Some("users"), Some(_), Some(_), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        uuid::Uuid::parse_str(id).ok().map(ConnectionId)
    }

    /// `system/<name>`: the gateway's own secrets (for example the cache key).
    pub fn system(name: &'static str) -> Self {
        Self(format!("system/{name}"))
    }

    /// Rebuild a path that the store itself returned (for example from a connection's `secret_ref`).
    /// Refuses empty segments, `.` and `..`.
    pub fn from_stored(s: &str) -> Result<Self, SecretStoreError> {
        let ok = !s.is_empty()
            && s.split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(SecretStoreError::Refused("malformed secret path".into()))
        }
    }

    /// A user id may be `.` or `..` (the id alphabet allows dots); such a segment is prefixed with `~`,
    /// which no user id contains, so the mapping stays one-to-one.
    fn segment(s: &str) -> String {
        if s.bytes().all(|b| b == b'.') {
            format!("~{s}")
        } else {
            s.to_owned()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Append a child name (from [`SecretStore::list`]).
    pub fn child(&self, name: &str) -> Result<Self, SecretStoreError> {
        Self::from_stored(&format!("{}/{}", self.0, name.trim_end_matches('/')))
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({})", self.0)
    }
}
impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret with its version (see [`SecretStore::get_versioned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedSecret {
    pub value: SecretValue,
    /// 1 for the first write, one more for every write after it. A store without versions (a test
    /// fake relying on the trait's defaults) answers 0.
    pub version: u64,
}

/// A key-value store for secret documents.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// `vault` or `embedded`.
    fn backend_name(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), SecretStoreError>;

    /// Create or replace the secret at `path`.
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError>;

    /// The current value, or `None` when absent (or deleted).
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError>;

    /// Delete the secret and every version of it. Deleting an absent path succeeds.
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError>;

    /// Names of the secrets directly under `folder` (no nesting), sorted. Empty when none.
    async fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError>;

    /// Every secret under `folder`, at any depth, sorted: what the reconciler compares with the
    /// connection rows. Both shipped backends implement it; the default refuses.
    async fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        let _ = folder;
        Err(SecretStoreError::Refused(
            "this secret store cannot list its secrets".into(),
        ))
    }

    /// When the current version of the secret was written (`None` when absent): the reconciler
    /// leaves secrets younger than its grace period alone, since a connect in flight writes its
    /// secret before its row. Default: unknown (`None`), so nothing is ever taken for an orphan.
    async fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        let _ = path;
        Ok(None)
    }

    /// The current value and its version, or `None` when absent. Versions start at 1, grow by one
    /// with every write ([`SecretStore::put`] included), and start again at 1 after a delete.
    ///
    /// Default, for stores without versions: [`SecretStore::get`] with version 0. Both shipped
    /// backends (Vault/OpenBao KV v2 and the embedded store) override it.
    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        Ok(self
            .get(path)
            .await?
            .map(|value| VersionedSecret { value, version: 0 }))
    }

    /// Check-and-set: write `value` only if the current version is `expected` (0: only if the
    /// secret does not exist); returns the new version. Any other current version answers
    /// [`SecretStoreError::Conflict`] and writes nothing, so a writer that read an older version
    /// never overwrites a newer secret.
    ///
    /// Default, for stores without versions: an unconditional [`SecretStore::put`] (last writer
    /// wins) returning 0. Both shipped backends override it with a real check-and-set.
    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        let _ = expected;
        self.put(path, value).await.map(|()| 0)
    }

    /// The secret at `path`; when there is none, `candidate` is stored with a create-only write
    /// and returned. When another writer created the secret first (another replica starting at
    /// the same moment), the stored value is returned instead of `candidate`, so every caller ends
    /// up with one and the same value: this is how shared keys (the cache key, …) are made.
    ///
    /// Default: read, then [`SecretStore::put_cas`] with version 0 (create only), and on
    /// [`SecretStoreError::Conflict`] read again. That is atomic wherever `put_cas` is a real
    /// check-and-set; for a store without versions (whose `put_cas` is a plain put and answers
    /// version 0) the value is read back after the write, so the caller at least keeps what the
    /// store holds. Both shipped backends override it (an exclusive file create on the embedded
    /// store, KV v2 `cas=0` on Vault/OpenBao).
    async fn get_or_create(
        &self,
        path: &SecretPath,
        candidate: &SecretValue,
    ) -> Result<SecretValue, SecretStoreError> {
        // A secret deleted between the conflict and the read is created again; bounded.
        for _ in 0..GET_OR_CREATE_ATTEMPTS {
            if let Some(v) = self.get(path).await? {
                return Ok(v);
            }
            match self.put_cas(path, candidate, 0).await {
                Ok(0) => {
                    // No versions: last writer wins; keep what the store holds.
                    return Ok(self.get(path).await?.unwrap_or_else(|| candidate.clone()));
                }
                Ok(_) => return Ok(candidate.clone()),
                Err(SecretStoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(get_or_create_gave_up(path))
    }
}

/// How many times [`SecretStore::get_or_create`] reads and tries to create before it gives up
/// (each lost race means the secret existed; only a secret deleted right after being created
/// makes it try again).
pub const GET_OR_CREATE_ATTEMPTS: usize = 5;

/// The error of a [`SecretStore::get_or_create`] that kept finding the secret created and deleted.
pub fn get_or_create_gave_up(path: &SecretPath) -> SecretStoreError {
    SecretStoreError::Unavailable(format!(
        "{path}: the secret keeps being created and deleted by another writer"
    ))
}

#[cfg(test)]
mod tests;
