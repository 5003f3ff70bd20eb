//! Start and stop a real OpenBao dev server (in memory, KV v2 at `secret/`) on a free loopback port.
//!
//! The server runs under a small `sh` watchdog that holds a pipe from the test process: when the test
//! process ends, however it ends (including the `&'static` server of [`shared_openbao`], whose `Drop`
//! never runs), the pipe closes and the watchdog stops the server, so no OpenBao outlives its tests.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// How long to wait for a fresh server to answer `GET /v1/sys/health` with 200.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for the server to exit after asking it to.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The watchdog: runs `"$@"` (the server) in the background, stops it with SIGTERM and removes its log
/// (`$AURORA_BAO_LOG`) when its standard input (a pipe from the test process) reaches end of file, and
/// exits when the server exits.
/// Background jobs of a non-interactive shell read /dev/null, hence the copy of stdin on fd 3.
pub(crate) const WATCHDOG: &str = r#"exec 3<&0
"$@" &
pid=$!
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; rm -f "$AURORA_BAO_LOG" ) &
exec 3<&-
wait "$pid""#;

/// A running OpenBao dev server (or an external one named by the environment).
pub struct OpenBao {
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The root token.
    pub token: String,
    /// The watchdog shell; `None` for an external server or once stopped.
    child: Option<Child>,
    /// The server's log (stdout and stderr), for error messages.
    log: Option<PathBuf>,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBao")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("running", &self.child.is_some())
            .field("log", &self.log)
            .finish()
    }
}

impl OpenBao {
    /// Start a dev server on a free loopback port with a random root token and wait until it is
    /// healthy. The binary is `AURORA_TEST_BAO_BIN`, else `<workspace>/.tools/venv/bin/bao`.
    pub fn start() -> anyhow::Result<OpenBao> {
        let bin = bao_binary()?;
        let mut last_err = None;
        // A free port can be taken between `free_port` and the server's bind: retry a few times.
        for _ in 0..3 {
            match Self::start_once(&bin) {
                Ok(bao) => return Ok(bao),
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("OpenBao did not start")))
    }

    fn start_once(bin: &Path) -> Result<OpenBao, StartError> {
        let port = crate::free_port();
        let token = format!("root-{}", crate::random_hex(16));
        let log_path = std::env::temp_dir().join(format!(
            "aurora-openbao-{port}-{}.log",
            crate::random_hex(4)
        ));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create the OpenBao log {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .context("cannot duplicate the OpenBao log handle")?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("aurora-openbao-watchdog")
            .arg(bin)
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            // Keep the developer's own Vault/OpenBao settings out of the dev server.
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .env("AURORA_BAO_LOG", &log_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("cannot run {} through sh", bin.display()))?;
        let mut bao = OpenBao {
            addr: format!("http://127.0.0.1:{port}"),
            token,
            child: Some(child),
            log: Some(log_path),
        };
        let sock = SocketAddr::from(([127, 0, 0, 1], port));
        let mut exited = None;
        let answered = crate::poll_until_blocking(START_TIMEOUT, || {
            if health_status(sock) == Some(200) {
                return true;
            }
            exited = match bao.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            exited.is_some()
        });
        if let Some(status) = exited {
            bao.child = None;
            let tail = bao.log_tail();
            let msg = anyhow!(
                "OpenBao exited before answering ({status}) on port {port}; its log:\n{tail}"
            );
            return Err(if tail.contains("address already in use") {
                StartError::PortTaken(msg)
            } else {
                StartError::Other(msg)
            });
        }
        if answered.is_some() {
            return Ok(bao);
        }
        let tail = bao.log_tail();
        bao.stop();
        Err(StartError::Other(anyhow!(
            "OpenBao did not answer GET /v1/sys/health with 200 within {}s on port {port}; its log:\n{tail}",
            START_TIMEOUT.as_secs()
        )))
    }

    /// Use a server that is already running (nothing to stop).
    pub fn external(addr: impl Into<String>, token: impl Into<String>) -> OpenBao {
        OpenBao {
            addr: addr.into(),
            token: token.into(),
            child: None,
            log: None,
        }
    }

    /// Whether this handle started the server and it has not been stopped.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stop the server now (for tests of "OpenBao is down"); returns once it has exited, so its port
    /// refuses connections. Does nothing for an external server or a second time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Closing the pipe makes the watchdog send SIGTERM to the server and exit after it.
        drop(child.stdin.take());
        let exited =
            crate::poll_until_blocking(STOP_TIMEOUT, || !matches!(child.try_wait(), Ok(None)));
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the server's log (empty for an external server).
    pub fn log_tail(&self) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
        if let Some(path) = self.log.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

enum StartError {
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

/// One OpenBao per test process, started on first use and stopped when the process exits. When
/// `AURORA_TEST_VAULT_ADDR` and `AURORA_TEST_VAULT_TOKEN` are set, that server is used instead.
///
/// Panics with the reason when no server can be had: a test that needs OpenBao fails loudly.
pub fn shared_openbao() -> &'static OpenBao {
    static SHARED: OnceLock<OpenBao> = OnceLock::new();
    SHARED.get_or_init(|| {
        let addr = std::env::var("AURORA_TEST_VAULT_ADDR").ok();
        let token = std::env::var("AURORA_TEST_VAULT_TOKEN").ok();
        match (addr, token) {
            (Some(a), Some(t)) if !a.trim().is_empty() => OpenBao::external(a, t),
            _ => match OpenBao::start() {
                Ok(bao) => bao,
                Err(e) => panic!("{e:#}"),
            },
        }
    })
}

/// The `bao` binary to run.
pub(crate) fn bao_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("AURORA_TEST_BAO_BIN").filter(|s| !s.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!(
                "AURORA_TEST_BAO_BIN is {}, which is not a file",
                bin.display()
            );
        }
        return Ok(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/bao");
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "OpenBao is not installed: run `cargo xtask test` (it installs it) or set AURORA_TEST_BAO_BIN (looked for {})",
            bin.display()
        )
    }
}

/// The status code of `GET /v1/sys/health`, or `None` when the server does not answer (yet).
pub(crate) fn health_status(sock: SocketAddr) -> Option<u16> {
    http_status(sock, "/v1/sys/health")
}

/// The status code of `GET path`, or `None` when nothing answers (yet).
pub(crate) fn http_status(sock: SocketAddr, path: &str) -> Option<u16> {
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&sock, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 32];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    // "HTTP/1.1 200 OK"
    let text = std::str::from_utf8(&head[..n]).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn start_answer_and_stop() {
        let mut bao = OpenBao::start().unwrap();
        let port: u16 = bao.addr.rsplit(':').next().unwrap().parse().unwrap();
        let sock = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(health_status(sock), Some(200));
        assert!(bao.is_running());
        let t0 = Instant::now();
        bao.stop();
        assert!(t0.elapsed() < STOP_TIMEOUT, "stop took {:?}", t0.elapsed());
        assert!(!bao.is_running());
        assert!(
            TcpStream::connect_timeout(&sock, Duration::from_secs(1)).is_err(),
            "the port still accepts connections after stop"
        );
        bao.stop(); // a second stop is a no-op
    }

    #[test]
    fn debug_hides_the_token() {
        let bao = OpenBao::external("http://127.0.0.1:1", "s3cr3t-token");
        assert!(!format!("{bao:?}").contains("s3cr3t-token"));
    }
}
