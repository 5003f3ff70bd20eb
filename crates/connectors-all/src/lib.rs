//! The facade that links every provider plugin: a crate only listed in Cargo.toml is not linked and
//! its `inventory` registration would vanish, so each provider is named here with `extern crate`.
//!
//! To add a provider: one dependency line in this crate's Cargo.toml and one `extern crate` line below.

extern crate connector_aws;
extern crate connector_azure;
extern crate connector_gcp;
extern crate connector_scaleway;
extern crate connector_tailscale;

/// The provider ids this facade links, in order. The gateway's registry test checks that the plugin
/// registry holds exactly these.
pub const LINKED: &[&str] = &["aws", "azure", "gcp", "scaleway", "tailscale"];
