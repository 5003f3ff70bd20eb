//! `cargo xtask tidy`: every Rust file opens with a `//!` doc line, the required docs exist, the crate
//! layers hold (the core depends on no provider or backend, no provider on another), and the
//! median and 90th-percentile length of the source files are printed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Folders whose `.rs` files are checked.
const SOURCE_DIRS: &[&str] = &["crates", "bins", "xtask"];
/// Folders never walked into.
const SKIP_DIRS: &[&str] = &["target", ".tools", ".git"];
/// Documents the project must keep.
const REQUIRED_DOCS: &[&str] = &[
    "README.md",
    "docs/ARCHITECTURE.md",
    "docs/configuration.md",
    "docs/adding-a-provider.md",
];

pub fn check(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            collect_rs(&dir, &mut files)?;
        }
    }
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let first = text.lines().next().unwrap_or("");
        if !first.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` line",
                rel(root, file)
            ));
        }
    }
    for doc in REQUIRED_DOCS {
        if !root.join(doc).is_file() {
            problems.push(format!("{doc}: required document is missing"));
        }
    }
    problems.extend(layers(root)?);
    print_lengths(root, &files)?;
    if problems.is_empty() {
        println!(
            "tidy: {} Rust files open with `//!`; {} required docs present",
            files.len(),
            REQUIRED_DOCS.len()
        );
        return Ok(());
    }
    for p in &problems {
        println!("tidy: {p}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if file_type.is_dir() {
            let name = entry.file_name();
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                collect_rs(&path, out)?;
            }
        } else if file_type.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// The workspace's backend crates and the external crates only a backend may pull in.
const BACKENDS: &[&str] = &["connector-store", "secret-store", "connector-cache"];
const BACKEND_LIBRARIES: &[&str] = &[
    "diesel",
    "diesel-async",
    "vaultrs",
    "redis",
    "deadpool-redis",
];

/// Crates under `crates/` that register a plugin (`register_plugin!` in their sources).
fn provider_crates(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let crates = root.join("crates");
    for entry in
        std::fs::read_dir(&crates).with_context(|| format!("cannot list {}", crates.display()))?
    {
        let dir = entry?.path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        collect_rs(&src, &mut files)?;
        let text: Vec<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        // The core defines the macro (and shows it in use in its docs): it is no provider.
        let defines = text
            .iter()
            .any(|t| t.contains("macro_rules! register_plugin"));
        let registers = text.iter().any(|t| t.contains("register_plugin!("));
        if registers && !defines {
            if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The names of every crate `krate` depends on (normal dependencies, transitively), from
/// `cargo tree`.
fn dependencies(root: &Path, krate: &str) -> Result<BTreeSet<String>> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none"])
        .output()
        .with_context(|| format!("running cargo tree -p {krate}"))?;
    if !out.status.success() {
        bail!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout), krate))
}

/// Crate names of `cargo tree --prefix none` lines, without `krate` itself.
fn parse_tree(text: &str, krate: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != krate)
        .map(str::to_owned)
        .collect()
}

/// The layer rules, as problems.
fn layers(root: &Path) -> Result<Vec<String>> {
    let providers = provider_crates(root)?;
    let mut problems = Vec::new();
    let core = dependencies(root, "connector-core")?;
    problems.extend(layer_problems("connector-core", &core, &providers));
    for p in &providers {
        let deps = dependencies(root, p)?;
        for other in providers.iter().filter(|o| *o != p) {
            if deps.contains(other) {
                problems.push(format!("{p}: depends on another provider crate, {other}"));
            }
        }
    }
    if problems.is_empty() {
        println!(
            "tidy: connector-core depends on no provider or backend; {} provider crates depend on no other provider",
            providers.len()
        );
    }
    Ok(problems)
}

fn layer_problems(krate: &str, deps: &BTreeSet<String>, providers: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for d in deps {
        if providers.contains(d) {
            problems.push(format!("{krate}: depends on a provider crate, {d}"));
        }
        if BACKENDS.contains(&d.as_str()) || BACKEND_LIBRARIES.contains(&d.as_str()) {
            problems.push(format!("{krate}: depends on a backend crate, {d}"));
        }
    }
    problems
}

/// Print the median and 90th-percentile length (lines) of the non-test source files (`src/`, without unit-test files).
fn print_lengths(root: &Path, files: &[PathBuf]) -> Result<()> {
    let mut lengths = Vec::new();
    for f in files {
        let rel = rel(root, f);
        if !rel.split('/').any(|seg| seg == "src") || is_test_file(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {rel}"))?;
        lengths.push(text.lines().count());
    }
    let (median, p90) = percentiles(&mut lengths);
    println!(
        "tidy: {} source files (src/): median {median} lines, 90th percentile {p90} lines (aim: below 200 and 400)",
        lengths.len()
    );
    Ok(())
}

/// Test code: under a `tests/` folder, or a unit-test module in its own file (`tests.rs`,
/// `*_tests.rs`, rust-analyzer's layout).
fn is_test_file(rel: &str) -> bool {
    let mut segs = rel.split('/');
    let name = segs.next_back().unwrap_or_default();
    segs.any(|seg| seg == "tests") || name == "tests.rs" || name.ends_with("_tests.rs")
}

/// Median and 90th percentile (nearest rank) of `v`; 0 when empty.
fn percentiles(v: &mut [usize]) -> (usize, usize) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let rank = |p: usize| v[((v.len() * p).div_ceil(100)).clamp(1, v.len()) - 1];
    (rank(50), rank(90))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_lines_give_crate_names() {
        let t = "connector-core v0.1.0 (/w/crates/connector-core)\nactix-web v4.18.1\ndiesel v2.2.0\nactix-web v4.18.1 (*)\n";
        let deps = parse_tree(t, "connector-core");
        assert_eq!(
            deps.into_iter().collect::<Vec<_>>(),
            vec!["actix-web".to_owned(), "diesel".to_owned()]
        );
    }

    #[test]
    fn a_backend_or_provider_under_the_core_is_a_problem() {
        let providers = vec!["connector-aws".to_owned()];
        let ok: BTreeSet<String> = ["serde".to_owned()].into();
        assert!(layer_problems("connector-core", &ok, &providers).is_empty());
        let bad: BTreeSet<String> = [
            "vaultrs".to_owned(),
            "connector-aws".to_owned(),
            "connector-store".to_owned(),
        ]
        .into();
        assert_eq!(layer_problems("connector-core", &bad, &providers).len(), 3);
    }

    #[test]
    fn unit_test_files_are_test_code() {
        assert!(is_test_file("crates/a/tests/x.rs"));
        assert!(is_test_file("crates/a/src/broker/tests.rs"));
        assert!(is_test_file("crates/a/src/broker/outage_tests.rs"));
        assert!(!is_test_file("crates/a/src/broker/mod.rs"));
        assert!(!is_test_file("crates/a/src/contests.rs"));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<usize> = (1..=10).collect();
        assert_eq!(percentiles(&mut v), (5, 9));
        assert_eq!(percentiles(&mut []), (0, 0));
    }
}
