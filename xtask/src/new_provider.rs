//! `cargo xtask new-provider <name>`: scaffold `crates/connector-<name>/`, a plugin crate that compiles.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// `^[a-z][a-z0-9_]{0,31}$`, the provider-id rule of `connector_core::ProviderId`.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// `google_cloud` → `GoogleCloud`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub fn scaffold(root: &Path, name: &str) -> Result<()> {
    if !valid_name(name) {
        bail!(
            "invalid provider name `{name}`: 1-32 characters of a-z, 0-9 and _, starting with a letter"
        );
    }
    let package = format!("connector-{name}");
    let krate = format!("connector_{name}");
    let dir = root.join("crates").join(&package);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src).with_context(|| format!("cannot create {}", src.display()))?;

    let manifest = CARGO_TOML
        .replace("{package}", &package)
        .replace("{name}", name);
    let lib = LIB_RS
        .replace("{Camel}", &camel(name))
        .replace("{name}", name);
    for (path, text) in [
        (dir.join("Cargo.toml"), manifest),
        (src.join("lib.rs"), lib),
    ] {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "created {}",
            path.strip_prefix(root).unwrap_or(&path).display()
        );
    }
    // The template is formatted already; this only guards against a name that changes line widths.
    let lib_rs = src.join("lib.rs");
    let fmt = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(&lib_rs)
        .status();
    if !fmt.is_ok_and(|s| s.success()) {
        println!(
            "note: rustfmt did not run on {}; run `cargo fmt`",
            lib_rs.display()
        );
    }
    println!(
        "\nThe workspace picks up crates/* by itself. To link the plugin into the gateway, add:\n\
         \x20 Cargo.toml [workspace.dependencies]:  {package} = {{ path = \"crates/{package}\" }}\n\
         \x20 crates/connectors-all/Cargo.toml:     {package}.workspace = true\n\
         \x20 crates/connectors-all/src/lib.rs:     extern crate {krate};  (and \"{name}\" in LINKED)\n\
         Then fill in the TODOs in crates/{package}/src/lib.rs and check: cargo check -p {package}"
    );
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{package}"
description = "Aurora Connectors provider plugin: {name}"
version.workspace = true
edition.workspace = true
license.workspace = true
publish.workspace = true

[dependencies]
connector-core.workspace = true
actix-web.workspace = true
async-trait.workspace = true
serde.workspace = true
serde_json.workspace = true

[lints]
workspace = true
"#;

const LIB_RS: &str = r#"//! The `{name}` provider plugin (scaffolded by `cargo xtask new-provider`; every method is a TODO).

use std::sync::Arc;

use actix_web::web;
use async_trait::async_trait;
use connector_core::{
    AuthKind, BuildError, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, Platform, ProviderId, ProviderInfo, SecretValue, Validated,
};

/// The provider id, as registered and as it appears in the routes.
pub const PROVIDER_ID: &str = "{name}";

/// The `{name}` connector.
pub struct {Camel}Connector {
    /// Backends, settings and the HTTP client shared by every plugin.
    #[allow(dead_code)] // TODO: used once the provider's API is called.
    platform: Platform,
}

/// Build the connector from the shared platform (read its `AURORA_*` settings here).
pub fn build(platform: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    Ok(Arc::new({Camel}Connector {
        platform: platform.clone(),
    }))
}

connector_core::register_plugin!("{name}", build);

fn not_implemented() -> ConnectorError {
    ConnectorError::ProviderUnavailable("not implemented".into())
}

#[async_trait]
impl Connector for {Camel}Connector {
    fn info(&self) -> ProviderInfo {
        // TODO: the provider's display name, auth kind, capabilities and connect routes (rate-limited).
        ProviderInfo {
            id: ProviderId::from_static(PROVIDER_ID),
            display_name: "{Camel}".into(),
            auth_kind: AuthKind::ApiKey,
            capabilities: Vec::new(),
            open_paths: Vec::new(),
            connect_paths: Vec::new(),
        }
    }

    fn configure(self: Arc<Self>, _cfg: &mut web::ServiceConfig) {
        // TODO: mount the provider's connect / disconnect routes.
    }

    async fn validate(
        &self,
        _connection: &ConnectionRecord,
        _secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        Err(not_implemented())
    }

    async fn issue_credentials(
        &self,
        _connection: &ConnectionRecord,
        _secret: &SecretValue,
        _mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        Err(not_implemented())
    }

    async fn revoke(
        &self,
        _connection: &ConnectionRecord,
        _secret: &SecretValue,
    ) -> Result<(), ConnectorError> {
        Err(not_implemented())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_itself_under_its_id() {
        let plugins = connector_core::plugin::registered().unwrap();
        assert!(plugins.contains_key(PROVIDER_ID));
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("scaleway"));
        assert!(valid_name("google_cloud2"));
        assert!(valid_name(&"a".repeat(32)));
        assert!(!valid_name(&"a".repeat(33)));
        assert!(!valid_name(""));
        assert!(!valid_name("2cloud"));
        assert!(!valid_name("Cloud"));
        assert!(!valid_name("my-cloud"));
        assert!(!valid_name("../etc"));
        assert_eq!(camel("google_cloud"), "GoogleCloud");
        assert_eq!(camel("demo"), "Demo");
    }
}
