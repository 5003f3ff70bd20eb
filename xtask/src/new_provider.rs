//! `cargo xtask new-provider <name>`: scaffold `crates/connector-<name>/`, a plugin crate that compiles
//! and passes its test, and link it: the root Cargo.toml and `connectors-all` (dependency, feature,
//! `extern crate`, `LINKED`) are edited as text (xtask has no TOML parser).

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
    if matches!(name, "all" | "default") {
        bail!("`{name}` is a feature of connectors-all already; choose another provider name");
    }
    let package = format!("connector-{name}");
    let dir = root.join("crates").join(&package);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    // Every edit is computed before anything is written: a file that does not have the expected
    // shape stops the command with the tree untouched.
    let workspace_toml = root.join("Cargo.toml");
    let all_toml = root.join("crates/connectors-all/Cargo.toml");
    let all_lib = root.join("crates/connectors-all/src/lib.rs");
    let edits = [
        (
            &workspace_toml,
            link_workspace as fn(&str, &str) -> Result<String>,
        ),
        (&all_toml, link_all_manifest),
        (&all_lib, link_all_lib),
    ]
    .into_iter()
    .map(|(path, edit)| {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let edited =
            edit(&text, name).with_context(|| format!("cannot edit {}", path.display()))?;
        Ok((path.clone(), edited))
    })
    .collect::<Result<Vec<_>>>()?;

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
        println!("created {}", shown(root, &path));
    }
    for (path, text) in edits {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("linked in {}", shown(root, &path));
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
        "\nThe plugin is linked into the gateway (feature `{name}` of connectors-all, on by default).\n\
         Check it: cargo test -p {package} && cargo test -p connectors-all\n\
         Then fill in the TODOs in crates/{package}/src/lib.rs (docs/adding-a-provider.md)."
    );
    Ok(())
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Insert `block` among the entries of `lines[from..to]` so that they stay sorted by key. An entry
/// is a line for which `key` returns `Some`; it starts `lead` lines above that line (its `#[cfg]`).
/// Without entries the block goes at `to`. Fails if the key is there already.
fn insert_sorted(
    lines: &mut Vec<String>,
    (from, to): (usize, usize),
    lead: usize,
    key: impl Fn(&str) -> Option<String>,
    new_key: &str,
    block: &[String],
) -> Result<()> {
    let entries: Vec<(usize, String)> = (from..to)
        .filter_map(|i| key(&lines[i]).map(|k| (i, k)))
        .collect();
    if entries.iter().any(|(_, k)| k == new_key) {
        bail!("`{new_key}` is there already");
    }
    let at = match entries.iter().find(|(_, k)| k.as_str() > new_key) {
        Some((i, _)) => i.saturating_sub(lead),
        None => entries.last().map_or(to, |(i, _)| i + 1),
    };
    for (n, line) in block.iter().enumerate() {
        lines.insert(at + n, line.clone());
    }
    Ok(())
}

/// The line range of TOML table `[header]` (after the header line, up to the next table).
fn table(lines: &[String], header: &str) -> Result<(usize, usize)> {
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .with_context(|| format!("no `{header}` table"))?;
    let end = (start + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len());
    Ok((start + 1, end))
}

/// The key of a TOML line `key = …` whose key starts with `prefix`.
fn toml_key(line: &str, prefix: &str) -> Option<String> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    (k.starts_with(prefix) && !line.trim_start().starts_with('#')).then(|| k.to_owned())
}

fn split_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn join_lines(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Root Cargo.toml: `connector-NAME = { path = "crates/connector-NAME" }` in
/// `[workspace.dependencies]`, just above the `connectors-all` line (after the other providers).
fn link_workspace(text: &str, name: &str) -> Result<String> {
    let mut lines = split_lines(text);
    let (from, to) = table(&lines, "[workspace.dependencies]")?;
    let package = format!("connector-{name}");
    if (from..to).any(|i| toml_key(&lines[i], &package).is_some_and(|k| k == package)) {
        bail!("`{package}` is there already");
    }
    let at = (from..to)
        .find(|&i| toml_key(&lines[i], "connectors-all").is_some())
        .context("no `connectors-all` line in [workspace.dependencies]")?;
    lines.insert(at, format!("{package} = {{ path = \"crates/{package}\" }}"));
    Ok(join_lines(&lines))
}

/// crates/connectors-all/Cargo.toml: the feature `NAME = ["dep:connector-NAME"]`, `NAME` in `all`,
/// and the optional dependency.
fn link_all_manifest(text: &str, name: &str) -> Result<String> {
    let mut lines = split_lines(text);
    let package = format!("connector-{name}");

    let features = table(&lines, "[features]")?;
    let all = (features.0..features.1)
        .find(|&i| toml_key(&lines[i], "all").is_some_and(|k| k == "all"))
        .context("no `all = [...]` feature on one line")?;
    let (head, list) = lines[all].split_once('[').context("`all` is not a list")?;
    let list = list
        .trim_end()
        .strip_suffix(']')
        .context("`all` is not a one-line list")?;
    let mut members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    if members.iter().any(|m| m == name) {
        bail!("`{name}` is in `all` already");
    }
    members.push(name.to_owned());
    members.sort();
    let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    lines[all] = format!("{head}[{}]", quoted.join(", "));
    let is_provider_feature = |l: &str| {
        l.contains("\"dep:connector-")
            .then(|| toml_key(l, ""))
            .flatten()
    };
    let feature = format!("{name} = [\"dep:{package}\"]");
    insert_sorted(
        &mut lines,
        features,
        0,
        is_provider_feature,
        name,
        &[feature],
    )?;

    let deps = table(&lines, "[dependencies]")?;
    let dep = format!("{package} = {{ workspace = true, optional = true }}");
    insert_sorted(
        &mut lines,
        deps,
        0,
        |l| toml_key(l, "connector-"),
        &package,
        &[dep],
    )?;
    Ok(join_lines(&lines))
}

/// crates/connectors-all/src/lib.rs: `extern crate connector_NAME;` and the `LINKED` entry, each
/// under `#[cfg(feature = "NAME")]`, sorted among the others.
fn link_all_lib(text: &str, name: &str) -> Result<String> {
    let mut lines = split_lines(text);
    let cfg = format!("#[cfg(feature = \"{name}\")]");
    let krate = format!("connector_{name}");
    let extern_key = |l: &str| {
        l.trim()
            .strip_prefix("extern crate ")
            .and_then(|r| r.strip_suffix(';'))
            .map(str::to_owned)
    };
    let first = lines
        .iter()
        .position(|l| extern_key(l).is_some())
        .context("no `extern crate` line")?;
    let last = lines
        .iter()
        .rposition(|l| extern_key(l).is_some())
        .unwrap_or(first);
    insert_sorted(
        &mut lines,
        (first, last + 1),
        1,
        extern_key,
        &krate,
        &[cfg.clone(), format!("extern crate {krate};")],
    )?;

    let start = lines
        .iter()
        .position(|l| l.starts_with("pub const LINKED"))
        .context("no `pub const LINKED` line")?;
    let end = (start..lines.len())
        .find(|&i| lines[i].trim() == "];")
        .context("`LINKED` is not a multi-line list ending with `];`")?;
    let entry_key = |l: &str| {
        let t = l.trim();
        t.strip_prefix('"')
            .and_then(|r| r.strip_suffix("\","))
            .map(str::to_owned)
    };
    insert_sorted(
        &mut lines,
        (start + 1, end),
        1,
        entry_key,
        name,
        &[format!("    {cfg}"), format!("    \"{name}\",")],
    )?;
    Ok(join_lines(&lines))
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
        let id = ProviderId::from_static(PROVIDER_ID);
        ProviderInfo::new(id, "{Camel}", AuthKind::ApiKey, &[], &[])
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

    const WORKSPACE: &str = include_str!("../../Cargo.toml");
    const ALL_TOML: &str = include_str!("../../crates/connectors-all/Cargo.toml");
    const ALL_LIB: &str = include_str!("../../crates/connectors-all/src/lib.rs");

    /// The lines of `after` that are not in `before` (the edits only add lines, and `all`).
    fn added(before: &str, after: &str) -> Vec<String> {
        let old: Vec<&str> = before.lines().collect();
        after
            .lines()
            .filter(|l| !old.contains(l))
            .map(str::to_owned)
            .collect()
    }

    fn index(text: &str, line: &str) -> usize {
        text.lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("`{line}` missing from:\n{text}"))
    }

    #[test]
    fn the_workspace_gets_the_path_dependency_above_connectors_all() {
        let out = link_workspace(WORKSPACE, "demo").unwrap();
        let line = r#"connector-demo = { path = "crates/connector-demo" }"#;
        assert_eq!(added(WORKSPACE, &out), [line]);
        let all = out
            .lines()
            .position(|l| l.starts_with("connectors-all ="))
            .unwrap();
        assert_eq!(index(&out, line) + 1, all);
        assert!(link_workspace(&out, "demo").is_err(), "twice");
        assert!(link_workspace(WORKSPACE, "scaleway").is_err());
    }

    #[test]
    fn connectors_all_manifest_gets_dependency_feature_and_all() {
        let out = link_all_manifest(ALL_TOML, "demo").unwrap();
        let dep = "connector-demo = { workspace = true, optional = true }";
        let feature = r#"demo = ["dep:connector-demo"]"#;
        let added = added(ALL_TOML, &out);
        assert!(added.contains(&dep.to_owned()), "{added:?}");
        assert!(added.contains(&feature.to_owned()), "{added:?}");
        let all = out.lines().find(|l| l.starts_with("all =")).unwrap();
        assert!(all.contains(r#""azure", "demo", "gcp""#), "{all}");
        // Sorted among the providers: `demo` goes between azure and gcp.
        assert_eq!(
            index(&out, feature),
            index(&out, r#"gcp = ["dep:connector-gcp"]"#) - 1
        );
        assert_eq!(
            index(&out, dep),
            index(
                &out,
                "connector-gcp = { workspace = true, optional = true }"
            ) - 1
        );
        assert!(link_all_manifest(&out, "demo").is_err(), "twice");
        // First and last places.
        let out = link_all_manifest(ALL_TOML, "aaa").unwrap();
        assert!(out.contains(r#"all = ["aaa", "aws""#), "{out}");
        assert_eq!(
            index(&out, r#"aaa = ["dep:connector-aaa"]"#) + 1,
            index(&out, r#"aws = ["dep:connector-aws"]"#)
        );
        let out = link_all_manifest(ALL_TOML, "zzz").unwrap();
        assert!(out.contains(r#""tailscale", "zzz"]"#), "{out}");
        assert_eq!(
            index(
                &out,
                "connector-zzz = { workspace = true, optional = true }"
            ),
            index(
                &out,
                "connector-tailscale = { workspace = true, optional = true }"
            ) + 1
        );
    }

    #[test]
    fn connectors_all_lib_gets_extern_crate_and_linked_under_the_feature() {
        let out = link_all_lib(ALL_LIB, "demo").unwrap();
        assert_eq!(
            added(ALL_LIB, &out),
            [
                r#"#[cfg(feature = "demo")]"#,
                "extern crate connector_demo;",
                r#"    #[cfg(feature = "demo")]"#,
                r#"    "demo","#,
            ]
        );
        let ext = index(&out, "extern crate connector_demo;");
        assert_eq!(
            out.lines().nth(ext - 1),
            Some(r#"#[cfg(feature = "demo")]"#)
        );
        assert_eq!(out.lines().nth(ext + 1), Some(r#"#[cfg(feature = "gcp")]"#));
        let entry = index(&out, r#"    "demo","#);
        assert_eq!(
            out.lines().nth(entry + 1),
            Some(r#"    #[cfg(feature = "gcp")]"#)
        );
        assert!(link_all_lib(&out, "demo").is_err(), "twice");
        // Before the first entry: above its `#[cfg]` line.
        let out = link_all_lib(ALL_LIB, "aaa").unwrap();
        let ext = index(&out, "extern crate connector_aaa;");
        assert_eq!(out.lines().nth(ext + 1), Some(r#"#[cfg(feature = "aws")]"#));
        let entry = index(&out, r#"    "aaa","#);
        assert_eq!(
            out.lines().nth(entry + 1),
            Some(r#"    #[cfg(feature = "aws")]"#)
        );
        assert!(link_all_lib(ALL_LIB, "tailscale").is_err());
    }
}
