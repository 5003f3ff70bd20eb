//! Cache backends of Aurora Connectors: [`RedisCache`] (deadpool-redis, short timeouts so a Redis that
//! is down fails fast) and [`MemoryCache`] (an in-process map with expiry and a size bound).
//!
//! Both implement [`connector_core::Cache`]. Values are opaque bytes (the credential broker seals
//! what it caches); every failure is a [`connector_core::CacheError::Unavailable`], which callers
//! treat as a miss.

mod memory;
mod redis;

pub use memory::MemoryCache;
pub use redis::RedisCache;
