//! The cache trait. Implementations: Redis (deadpool-redis) and an in-process map, in `connector-cache`.
//!
//! Values are opaque bytes; the credential broker encrypts what it caches before calling `set`.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::CacheError;

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend_name(&self) -> &'static str;

    async fn ping(&self) -> Result<(), CacheError>;

    /// The value if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Store with a time to live (at least one millisecond).
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// Remove one key; absent keys are fine.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Remove every key that starts with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError>;
}
