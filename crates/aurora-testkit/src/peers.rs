//! Start and stop the other protocol peers of the tests: moto (AWS STS) and oauth2-mock-server (OAuth 2.0 /
//! OpenID), each on a free loopback port, under the same watchdog as OpenBao so none outlives its tests.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::openbao::{http_status, WATCHDOG};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A peer server process started for a test.
pub struct Peer {
    pub name: &'static str,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools")
}

fn require(bin: PathBuf, what: &str) -> anyhow::Result<PathBuf> {
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "{what} is not installed: run `cargo xtask services` (it installs it) — looked for {}",
            bin.display()
        )
    }
}

impl Peer {
    /// Start `program args…` (`{port}` in an argument is replaced by the chosen port) and wait until
    /// `GET health_path` answers below 500.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        health_path: &str,
    ) -> anyhow::Result<Peer> {
        let mut last = None;
        for _ in 0..3 {
            match Self::spawn_once(name, program, args, health_path) {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{name} did not start")))
    }

    fn spawn_once(
        name: &'static str,
        program: &Path,
        args: &[&str],
        health_path: &str,
    ) -> anyhow::Result<Peer> {
        let port = crate::free_port();
        let log =
            std::env::temp_dir().join(format!("aurora-{name}-{port}-{}.log", crate::random_hex(4)));
        let out = File::create(&log).context("creating the peer log")?;
        let err = out.try_clone().context("duplicating the peer log handle")?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg(format!("aurora-{name}-watchdog"))
            .arg(program);
        for a in args {
            cmd.arg(a.replace("{port}", &port.to_string()));
        }
        let child = cmd
            .env("AURORA_BAO_LOG", &log)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut peer = Peer {
            name,
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
            log,
        };
        let sock = SocketAddr::from(([127, 0, 0, 1], port));
        let mut exited = None;
        let answered = crate::poll_until_blocking(START_TIMEOUT, || {
            if http_status(sock, health_path).is_some_and(|s| s < 500) {
                return true;
            }
            if let Some(Ok(Some(status))) = peer.child.as_mut().map(Child::try_wait) {
                exited = Some(status);
            }
            exited.is_some()
        });
        if let Some(status) = exited {
            peer.child = None;
            bail!(
                "{name} exited ({status}) before answering; its log:\n{}",
                peer.log_tail()
            );
        }
        if answered.is_some() {
            return Ok(peer);
        }
        let tail = peer.log_tail();
        peer.stop();
        bail!(
            "{name} did not answer GET {health_path} within {}s; its log:\n{tail}",
            START_TIMEOUT.as_secs()
        );
    }

    /// Stop the peer and wait until it has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(child.stdin.take());
        let exited = crate::poll_until_blocking(Duration::from_secs(10), || {
            !matches!(child.try_wait(), Ok(None))
        });
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// moto's server (AWS emulator; STS `AssumeRole` and `GetCallerIdentity`). Point the SDK at it with the
/// endpoint URL `peer.url` and any access key.
pub fn moto() -> anyhow::Result<Peer> {
    let bin = match std::env::var_os("AURORA_TEST_MOTO_BIN").filter(|s| !s.is_empty()) {
        Some(b) => PathBuf::from(b),
        None => require(tools_dir().join("venv/bin/moto_server"), "moto")?,
    };
    Peer::spawn(
        "moto",
        &bin,
        &["-H", "127.0.0.1", "-p", "{port}"],
        "/moto-api/",
    )
}

/// oauth2-mock-server (npm): `/authorize`, `/token` (authorization_code, refresh_token,
/// client_credentials), `/revoke`, `/userinfo`, `/.well-known/openid-configuration`.
pub fn oauth2_mock() -> anyhow::Result<Peer> {
    let bin = match std::env::var_os("AURORA_TEST_OAUTH2_MOCK_BIN").filter(|s| !s.is_empty()) {
        Some(b) => PathBuf::from(b),
        None => require(
            tools_dir().join("node/node_modules/.bin/oauth2-mock-server"),
            "oauth2-mock-server",
        )?,
    };
    Peer::spawn(
        "oauth2-mock-server",
        &bin,
        &["-a", "127.0.0.1", "-p", "{port}"],
        "/.well-known/openid-configuration",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_answers_sts() {
        let mut m = moto().unwrap();
        let sock = SocketAddr::from(([127, 0, 0, 1], m.port));
        assert!(http_status(sock, "/moto-api/").is_some());
        m.stop();
        assert!(http_status(sock, "/moto-api/").is_none());
    }

    #[test]
    fn oauth2_mock_serves_discovery() {
        let m = oauth2_mock().unwrap();
        let sock = SocketAddr::from(([127, 0, 0, 1], m.port));
        assert_eq!(
            http_status(sock, "/.well-known/openid-configuration"),
            Some(200)
        );
    }
}
