//! The real `aurora-gateway` binary on the embedded default: starts with nothing installed, serves,
//! migrates, refuses an exposed bind without a trusted-caller secret, and shuts down gracefully.

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_aurora-gateway");

fn gateway(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_DATA_DIR", dir)
        .env("AURORA_LOG", "warn");
    c
}

#[test]
fn migrate_then_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout);
    assert!(first.contains("applied"), "{first}");
    let out = gateway(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

#[test]
fn refuses_exposed_bind_without_internal_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway(dir.path())
        .env("AURORA_BIND", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AURORA_INTERNAL_SECRET"), "{err}");
}

#[tokio::test]
async fn serves_on_the_embedded_default_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let port = aurora_testkit::free_port();
    let mut child = gateway(dir.path())
        .env("AURORA_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    aurora_testkit::eventually(
        "the gateway to become ready",
        Duration::from_secs(30),
        async || {
            let r = http.get(format!("{base}/readyz")).send().await;
            r.is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let providers: serde_json::Value = http
        .get(format!("{base}/api/providers"))
        .header("X-User-ID", "u1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(providers
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "scaleway"));
    // The embedded stores live in the data dir; the key file is private.
    let key = dir.path().join("secrets").join("secret-store.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("aurora.db").exists());

    // SIGTERM: graceful shutdown, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    aurora_testkit::eventually_blocking("the gateway to stop", Duration::from_secs(35), || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    let s = exit.unwrap();
    assert!(s.success(), "exit status {s}");
}

/// Logs written to a file (not a terminal) are plain text: no ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway(dir.path())
        .env("AURORA_LOG", "info")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success());
    let port = aurora_testkit::free_port();
    let mut child = gateway(dir.path())
        .env("AURORA_LOG", "info")
        .env("AURORA_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the listening line, then stop.
    aurora_testkit::eventually_blocking("the gateway to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("aurora-gateway listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in: {text:?}");
}
