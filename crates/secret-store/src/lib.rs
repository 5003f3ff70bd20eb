//! Secret-store backends of Aurora Connectors: [`VaultSecretStore`] (Vault / OpenBao KV v2, token
//! auth) and [`EmbeddedSecretStore`] (files in a local folder, sealed with XChaCha20-Poly1305).
//!
//! Both implement [`connector_core::SecretStore`]. No secret value reaches a log line, an error
//! message or a `Debug` print: errors carry the kind of failure and, at most, the server's own error
//! words or a file path.

mod embedded;
mod vault;

pub use embedded::EmbeddedSecretStore;
pub use vault::{VaultConfig, VaultSecretStore};
