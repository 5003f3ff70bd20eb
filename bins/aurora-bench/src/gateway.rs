//! Runs the release gateway as a child process with a given environment, times start-to-ready, and reads
//! its resident memory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    /// From spawn to the first 200 of `/readyz` (migrations included).
    pub ready_after: Duration,
}

impl Gateway {
    pub async fn start(bin: &Path, env: &[(String, String)]) -> anyhow::Result<Gateway> {
        let port = aurora_testkit::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let started = Instant::now();
        let child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AURORA_BIND", addr.to_string())
            .env("AURORA_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut gw = Gateway {
            child,
            addr,
            base: format!("http://{addr}"),
            ready_after: Duration::ZERO,
        };
        let http = reqwest::Client::new();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", gw.base)).send().await {
                if r.status().is_success() {
                    gw.ready_after = started.elapsed();
                    return Ok(gw);
                }
            }
            if let Some(status) = gw.child.try_wait()? {
                bail!("the gateway exited before it was ready: {status}");
            }
            if Instant::now() > deadline {
                bail!("the gateway was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(35);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
