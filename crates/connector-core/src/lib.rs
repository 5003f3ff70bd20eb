//! Aurora Connectors core: the `Connector` trait, the plugin registry, domain types, and the traits of
//! the relational store, the secret store and the cache. Knows no provider and no backend.

pub mod audit;
pub mod audit_buffer;
pub mod broker;
pub mod cache;
pub mod connector;
pub mod crypto;
pub mod error;
pub mod frontend;
pub mod http;
pub mod ids;
pub mod kit;
mod kit_macros;
pub mod metrics;
pub mod outbox;
pub mod platform;
pub mod plugin;
pub mod secret;
pub mod secrets;
pub mod selection;
pub mod settings;
pub mod store;
pub mod upstream;

pub use async_trait::async_trait;
pub use audit::AuditAction;
pub use inventory;

pub use cache::{Cache, LockToken, Subscription};
pub use connector::{AuthKind, Capability, Connector, IssuedCredentials, ProviderInfo, Validated};
pub use crypto::SealingKey;
pub use error::{ApiError, CacheError, ConnectorError, ErrorCode, SecretStoreError, StoreError};
pub use frontend::{FrontendSummary, UserToken};
pub use http::{AuthConfig, Caller, ConnectionView, DisconnectResponse, TrustedCaller};
pub use ids::{ConnectionId, ConnectionStatus, CredentialMode, ProviderId, UserId};
pub use metrics::Metrics;
pub use platform::{Actor, ConnectSpec, Platform};
pub use plugin::{BuildError, PluginDescriptor};
pub use secret::SecretValue;
pub use secrets::{SecretPath, SecretStore, VersionedSecret};
pub use settings::Settings;
pub use store::{
    AuditEvent, AuditStore, CheckStore, ConnectionRecord, ConnectionStore, NewConnection,
    OAuthStateRecord, OAuthStateStore, PluginValueStore, SetupTaskStore, StatusUpdate, Store,
};
