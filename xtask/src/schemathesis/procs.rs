//! The processes a schemathesis run needs: a gateway on the embedded default, a refusing stub provider, and a temporary folder.

use super::*;

/// A folder removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", unique()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway's configuration: the embedded default in `data`, every provider pointed at the stub.
pub(super) fn gateway_env(
    port: u16,
    data: &Path,
    secret: &str,
    stub: &str,
) -> Vec<(String, String)> {
    let base = format!("http://127.0.0.1:{port}");
    [
        ("AURORA_BIND", format!("127.0.0.1:{port}")),
        ("AURORA_DATA_DIR", data.display().to_string()),
        ("AURORA_INTERNAL_SECRET", secret.to_owned()),
        ("AURORA_PUBLIC_URL", base.clone()),
        ("AURORA_FRONTEND_URL", format!("{base}/frontend")),
        ("AURORA_WORKERS", "2".into()),
        ("AURORA_LOG", "warn".into()),
        // Off, so that the connect routes' own logic is what gets tested (not mostly 429s); the
        // limits have their own tests, and their 429 stays documented.
        ("AURORA_RATE_LIMIT_CONNECT_PER_MIN", "0".into()),
        ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN", "0".into()),
        ("AURORA_SCALEWAY_API_URL", format!("{stub}/scaleway")),
        ("AURORA_TAILSCALE_API_URL", format!("{stub}/tailscale")),
        ("AURORA_AZURE_AUTHORITY_URL", format!("{stub}/azure-login")),
        ("AURORA_AZURE_MANAGEMENT_URL", format!("{stub}/azure")),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ENDPOINT_URL_STS", format!("{stub}/sts")),
        ("AWS_ACCESS_KEY_ID", "AKIASCHEMATHESIS0000".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "schemathesis-not-a-real-key".into(),
        ),
        (
            "AURORA_AWS_PRINCIPAL_ARN",
            "arn:aws:iam::123456789012:role/aurora-gateway".into(),
        ),
        ("AURORA_AWS_MAX_ATTEMPTS", "1".into()),
        ("AURORA_GCP_CLIENT_ID", "schemathesis.apps.example".into()),
        (
            "AURORA_GCP_CLIENT_SECRET",
            "schemathesis-not-a-real-secret".into(),
        ),
        ("AURORA_GCP_AUTH_URL", format!("{stub}/gcp/auth")),
        ("AURORA_GCP_TOKEN_URL", format!("{stub}/gcp/token")),
        ("AURORA_GCP_REVOKE_URL", format!("{stub}/gcp/revoke")),
        ("AURORA_GCP_USERINFO_URL", format!("{stub}/gcp/userinfo")),
        ("AURORA_GCP_API_URL", format!("{stub}/gcp/api")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A running `aurora-gateway`, killed on drop.
pub(super) struct Gateway {
    pub(super) child: Child,
    pub(super) port: u16,
    pub(super) base: String,
    /// Our `/healthz` requests that the gateway answered (not counted as the run's).
    pub(super) probes: u64,
}

impl Gateway {
    pub(super) fn start(
        bin: &Path,
        log: &Path,
        env: &[(String, String)],
        port: u16,
    ) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        // Only the settings given here: nothing of the caller's AURORA_* or AWS_* environment.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("AURORA_") || k.starts_with("AWS_") {
                cmd.env_remove(&*k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut gw = Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            probes: 0,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = gw.child.try_wait()? {
                bail!(
                    "aurora-gateway exited at start ({status}); see {}",
                    log.display()
                );
            }
            let probe = http_get(port, "/healthz");
            if probe.is_ok() {
                gw.probes += 1;
            }
            if matches!(probe, Ok((200, _))) {
                println!("schemathesis: aurora-gateway ready on {}", gw.base);
                return Ok(gw);
            }
            if Instant::now() >= deadline {
                bail!(
                    "aurora-gateway did not answer /healthz within {}s; see {}",
                    START_TIMEOUT.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The requests the gateway answered (`aurora_http_requests_total`), less our own probes.
    pub(super) fn requests_answered(&self) -> Result<u64> {
        let (status, body) = http_get(self.port, "/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        let total: f64 = body
            .lines()
            .filter(|l| l.starts_with("aurora_http_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        Ok((total as u64).saturating_sub(self.probes))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET on the loopback port: status and body (`Connection: close`).
pub(super) fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The counts of the JSON report (read with the virtualenv's Python: xtask has no JSON parser).
pub(super) struct Counts {
    pub(super) operations: String,
    pub(super) test_cases: String,
    pub(super) failures: String,
    pub(super) errors: String,
}

pub(super) fn report_counts(root: &Path, report: &Path) -> Result<Counts> {
    const READ: &str = "import json, sys\n\
        d = json.load(open(sys.argv[1]))\n\
        o = d['operations']\n\
        print(f\"{o['tested']}/{o['total']}\", d['test_cases']['generated'],\n\
              d['test_cases']['unique_failures'], sum(e.get('count', 1) for e in d.get('errors', [])))\n";
    let out = Command::new(root.join(".tools/venv/bin/python"))
        .arg("-c")
        .arg(READ)
        .arg(report)
        .output()
        .context("running the virtualenv's python")?;
    if !out.status.success() {
        bail!(
            "reading {}: {}",
            report.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<&str> = text.split_whitespace().collect();
    match v[..] {
        [operations, test_cases, failures, errors] => Ok(Counts {
            operations: operations.to_owned(),
            test_cases: test_cases.to_owned(),
            failures: failures.to_owned(),
            errors: errors.to_owned(),
        }),
        _ => bail!("unexpected counts from {}: {text}", report.display()),
    }
}

/// The providers: a loopback HTTP server that refuses every credential, the way each provider
/// does (401 with a JSON error; STS: 403 `AccessDenied` in XML), so the connect routes answer 422
/// without any request leaving the machine.
pub(super) struct Stub {
    pub(super) url: String,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) port: u16,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl Stub {
    pub(super) fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the provider stub")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || {
                        let _ = refuse(conn);
                    });
                }
            }
        });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            port,
            thread: Some(thread),
        })
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one request (headers and a `Content-Length` body) and refuse it.
pub(super) fn refuse(conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = if path.starts_with("/sts") {
        (
            "403 Forbidden",
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>refused by the schemathesis stub</Message></Error>\
             <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
        )
    } else {
        (
            "401 Unauthorized",
            "application/json",
            r#"{"error":"invalid_client","error_description":"refused by the schemathesis stub","message":"refused by the schemathesis stub"}"#,
        )
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
