//! `cargo xtask schemathesis`: schemathesis (PyPI, pinned, in the git-ignored `.tools/venv`) on the
//! OpenAPI document a real `aurora-gateway` process serves, on the embedded default: every
//! operation, every check, a bounded number of examples each. Fails on any 5xx and on any answer
//! the document does not describe. The providers are a local stub that refuses every credential,
//! so no request leaves the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::{cargo, describe, run, secs, CommandFailed};

mod procs;
use self::procs::*;

/// The schemathesis release installed and used (`pip install schemathesis==VERSION`).
pub const VERSION: &str = "4.32.5";
/// Examples per operation and phase: about 2 minutes for the whole run on 2 cores (debug build).
const MAX_EXAMPLES: u32 = 100;
/// The caller the run acts as (`X-User-ID`).
const USER: &str = "schemathesis-user";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Install schemathesis, build and start the gateway and the provider stub, run, print the counts.
pub fn check(root: &Path) -> Result<()> {
    let started = Instant::now();
    let st = ensure_installed(root)?;
    run(cargo()
        .current_dir(root)
        .args(["build", "-p", "aurora-gateway"]))?;
    let out = root.join("target/schemathesis");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stub = Stub::start()?;
    let data = TempDir::new("aurora-schemathesis")?;
    let secret = format!("st-secret-{}", unique());
    let port = free_port()?;
    let gateway = Gateway::start(
        &root.join("target/debug/aurora-gateway"),
        &out.join("gateway.log"),
        &gateway_env(port, &data.0, &secret, &stub.url),
        port,
    )?;
    let report = out.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new(&st);
    cmd.current_dir(&out)
        .arg("--config-file")
        .arg(root.join("xtask/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/api/openapi.json", gateway.base))
        // Every check: `checks.enabled = true` in the configuration (the CLI's `--checks all` would
        // override the configuration's per-operation exclusions).
        .args(["--workers", "1", "--no-shrink"])
        .arg("--max-examples")
        .arg(MAX_EXAMPLES.to_string())
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("AURORA_SCHEMATHESIS_USER", USER)
        .env("AURORA_SCHEMATHESIS_SECRET", &secret);
    println!("schemathesis: {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not run {}", st.display()))?;
    let requests = gateway.requests_answered();
    let counts = report_counts(root, &report);
    drop(gateway);
    drop(stub);
    println!(
        "schemathesis: {} operations, {} test cases, {} requests answered by the gateway, \
         {} failures, {} errors ({}; report {}, gateway log {})",
        counts.as_ref().map_or("?".into(), |c| c.operations.clone()),
        counts.as_ref().map_or("?".into(), |c| c.test_cases.clone()),
        requests.map_or_else(|e| format!("? ({e:#})"), |n| n.to_string()),
        counts.as_ref().map_or("?".into(), |c| c.failures.clone()),
        counts.as_ref().map_or("?".into(), |c| c.errors.clone()),
        secs(started.elapsed()),
        report.display(),
        out.join("gateway.log").display(),
    );
    if !status.success() {
        return Err(CommandFailed {
            what: describe(&cmd),
            code: status.code(),
        }
        .into());
    }
    Ok(())
}

/// The virtualenv's `schemathesis`, installed at [`VERSION`] when missing or another version.
fn ensure_installed(root: &Path) -> Result<PathBuf> {
    let bin = root.join(".tools/venv/bin/schemathesis");
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed
        .as_deref()
        .is_some_and(|v| v.ends_with(&format!(" {VERSION}")))
    {
        return Ok(bin);
    }
    let say = format!(
        "schemathesis: {}:",
        installed.unwrap_or_else(|| "not installed".into())
    );
    crate::services::pip_install(root, &format!("schemathesis=={VERSION}"), &bin, &say)?;
    Ok(bin)
}

/// A value unique enough for names: process id and the clock's nanoseconds.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(l.local_addr()?.port())
}
