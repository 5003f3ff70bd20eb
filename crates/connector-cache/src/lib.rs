//! Cache backends of Aurora Connectors: [`RedisCache`] (deadpool-redis, short timeouts so a Redis that
//! is down fails fast) and [`MemoryCache`] (an in-process map with expiry and a size bound).
//!
//! Both implement [`connector_core::Cache`]. Values are opaque bytes (the credential broker seals
//! what it caches); every failure is a [`connector_core::CacheError::Unavailable`], which callers
//! treat as a miss. Redis calls go through a circuit breaker ([`BreakerConfig`]), so a Redis that
//! stops answering is skipped at once instead of costing each caller a timeout.

pub mod breaker;
mod memory;
mod redis;

pub use breaker::BreakerConfig;
pub use memory::MemoryCache;
pub use redis::RedisCache;
