//! The workspace's external ID: generated once per user (160 random bits), stable until rotated.
//!
//! The external ID is sensitive (with the role ARN it is what lets the gateway in), so it is kept in
//! the secret store, at `users/<user>/aws/external-id/<handle>`. The database holds only the
//! `<handle>`, a random name that is no secret, as the plugin value `external_id` of the user
//! (`PluginValueStore`, see [`VALUE_NAME`]);
//! it is what makes "generated once" hold under concurrency: every caller writes its candidate
//! secret first, then races to claim the row with its handle, and the losers delete their candidate
//! and read the winner's (which was written before the winner claimed the row).

use connector_core::{ApiError, Platform, ProviderId, SecretPath, SecretValue, UserId};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::input;

/// Handles in the database start with this, so a row written by anything else (a plain external
/// ID of an older version) is recognised and moved into the secret store.
const HANDLE_PREFIX: &str = "sec1-";

/// The name of the plugin value holding the handle (the migration that replaced the `external_ids`
/// table copied its rows under this name, provider `aws`).
pub const VALUE_NAME: &str = "external_id";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    #[serde(with = "connector_core::secret::serde_secret")]
    external_id: SecretString,
}

/// A fresh external ID: 20 random bytes as 40 lowercase hex digits.
pub fn generate() -> SecretString {
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    SecretString::from(hex::encode(b))
}

fn new_handle() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{HANDLE_PREFIX}{}", hex::encode(b))
}

/// The external IDs of every user.
#[derive(Clone)]
pub struct ExternalIds {
    platform: Platform,
    provider: ProviderId,
}

impl ExternalIds {
    pub fn new(platform: Platform, provider: ProviderId) -> Self {
        Self { platform, provider }
    }

    fn folder(&self, user: &UserId) -> Result<SecretPath, ApiError> {
        Ok(SecretPath::user_provider_folder(user, &self.provider).child("external-id")?)
    }

    fn path(&self, user: &UserId, handle: &str) -> Result<SecretPath, ApiError> {
        Ok(self.folder(user)?.child(handle)?)
    }

    async fn write(&self, user: &UserId, handle: &str, id: &SecretString) -> Result<(), ApiError> {
        let doc = SecretValue::encode(&Stored {
            external_id: id.clone(),
        })
        .map_err(|_| ApiError::internal())?;
        self.platform
            .secrets()
            .put(&self.path(user, handle)?, &doc)
            .await?;
        Ok(())
    }

    async fn read(&self, user: &UserId, handle: &str) -> Result<Option<SecretString>, ApiError> {
        let Some(doc) = self
            .platform
            .secrets()
            .get(&self.path(user, handle)?)
            .await?
        else {
            return Ok(None);
        };
        match doc.decode::<Stored>() {
            Ok(s) => Ok(Some(s.external_id)),
            Err(_) => {
                tracing::error!("a stored AWS external ID does not decode");
                Ok(None)
            }
        }
    }

    /// The user's external ID, created on first use.
    pub async fn get(&self, user: &UserId) -> Result<SecretString, ApiError> {
        let candidate = generate();
        let handle = new_handle();
        self.write(user, &handle, &candidate).await?;
        let claimed = match self
            .platform
            .store()
            .get_or_create_plugin_value(&self.provider, user, VALUE_NAME, &handle)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.forget(user, &handle).await;
                return Err(e.into());
            }
        };
        if claimed == handle {
            tracing::info!("created the workspace's AWS external ID");
            return Ok(candidate);
        }
        self.forget(user, &handle).await;
        if claimed.starts_with(HANDLE_PREFIX) {
            if let Some(id) = self.read(user, &claimed).await? {
                return Ok(id);
            }
            // The secret store lost it (or was replaced): the old ID cannot be shown again.
            tracing::warn!("the workspace's AWS external ID is missing from the secret store; issuing a new one");
            return self.rotate(user).await;
        }
        // A row from before external IDs moved to the secret store: move it there, same value.
        if input::is_external_id(&claimed) {
            let legacy = SecretString::from(claimed);
            let handle = new_handle();
            self.write(user, &handle, &legacy).await?;
            self.platform
                .store()
                .replace_plugin_value(&self.provider, user, VALUE_NAME, &handle)
                .await?;
            tracing::info!("moved the workspace's AWS external ID to the secret store");
            return Ok(legacy);
        }
        tracing::warn!("the workspace's AWS external ID row is unreadable; issuing a new one");
        self.rotate(user).await
    }

    /// Replace the user's external ID with a fresh one and return it. Older copies are removed
    /// from the secret store (connections keep the external ID they were made with until they are
    /// connected again).
    pub async fn rotate(&self, user: &UserId) -> Result<SecretString, ApiError> {
        let id = generate();
        let handle = new_handle();
        self.write(user, &handle, &id).await?;
        if let Err(e) = self
            .platform
            .store()
            .replace_plugin_value(&self.provider, user, VALUE_NAME, &handle)
            .await
        {
            self.forget(user, &handle).await;
            return Err(e.into());
        }
        let folder = self.folder(user)?;
        match self.platform.secrets().list(&folder).await {
            Ok(names) => {
                for name in names.iter().filter(|n| n.as_str() != handle) {
                    if let Ok(p) = folder.child(name) {
                        if let Err(e) = self.platform.secrets().delete(&p).await {
                            tracing::warn!(error = %e, "could not delete a replaced AWS external ID");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list replaced AWS external IDs"),
        }
        Ok(id)
    }

    async fn forget(&self, user: &UserId, handle: &str) {
        if let Ok(p) = self.path(user, handle) {
            if let Err(e) = self.platform.secrets().delete(&p).await {
                tracing::warn!(error = %e, "could not delete an unused AWS external ID candidate");
            }
        }
    }
}

/// Constant-time comparison of two external IDs.
pub fn matches(given: &SecretString, expected: &SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (
        given.expose_secret().as_bytes(),
        expected.expose_secret().as_bytes(),
    );
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_long_random_and_valid() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose_secret().len(), 40);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(input::is_external_id(a.expose_secret()));
        assert!(new_handle().starts_with(HANDLE_PREFIX));
    }

    #[test]
    fn comparison() {
        let a = SecretString::from("abc".to_owned());
        assert!(matches(&a, &SecretString::from("abc".to_owned())));
        assert!(!matches(&a, &SecretString::from("abd".to_owned())));
        assert!(!matches(&a, &SecretString::from("abcd".to_owned())));
    }
}
