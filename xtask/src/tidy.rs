//! `cargo xtask tidy`: every Rust file opens with a `//!` doc line, and the required docs exist.

use std::path::{Path, PathBuf};

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
