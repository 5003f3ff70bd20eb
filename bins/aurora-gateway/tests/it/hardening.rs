//! Requests an attacker or a careless proxy sends: a repeated identity header, blank or misspelled
//! disconnect filters, non-JSON bodies, a body that never completes, and malformed HTTP. Each
//! answers the JSON error body with the right status, and nothing is removed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{
    connect_scaleway, new_user as user, trusted, Backend, ScwAccount, TestApp, INTERNAL_SECRET,
};
use serde_json::Value;

async fn count(app: &TestApp, user: &str) -> usize {
    let resp = app
        .get(user, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body.as_array()
        .or_else(|| body["connections"].as_array())
        .map(Vec::len)
        .unwrap_or_else(|| panic!("a list: {body}"))
}

/// Status and error code of an answer, checking the JSON error body.
async fn refusal(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        body["error"], body["message"],
        "the frontend reads `error`: {body}"
    );
    (status, code)
}

/// The frontend shows `data.error`: every error answer carries it, also those raised before a
/// handler runs (no identity, an unknown path, a body above 64 KiB, a wrong method).
#[tokio::test]
async fn every_error_body_carries_error_for_the_frontend() {
    let app = TestApp::spawn_with(Backend::Embedded, trusted()).await;
    let u = user();
    let resp = app
        .http
        .get(app.url("/api/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (401, "unauthenticated".into()));
    let resp = app
        .get(&u, "/no/such/path")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (404, "not_found".into()));
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (413, "payload_too_large".into()));
    let resp = app.http.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(refusal(resp).await.0, 405);
}

#[tokio::test]
async fn a_repeated_identity_header_is_refused() {
    let app = TestApp::spawn_with(Backend::Embedded, trusted()).await;
    let u = user();
    // reqwest appends a header given twice: the request carries two values.
    let resp = app
        .get(&u, "/api/connections")
        .header("X-User-ID", "someone-else")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (401, "unauthenticated".into()));
    let resp = app
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .header("X-Internal-Secret", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (401, "unauthenticated".into()));
    let resp = app
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .header("X-Org-ID", "org-a")
        .header("X-Org-ID", "org-b")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (401, "unauthenticated".into()));
    // One of each still works.
    let resp = app
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn blank_or_misspelled_disconnect_filters_remove_nothing(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = user();
    for _ in 0..2 {
        let acct = ScwAccount::new(1);
        acct.mount(&app.scaleway).await;
        connect_scaleway(&app, &u, &acct).await;
    }
    assert_eq!(count(&app, &u).await, 2);
    let path = "/scaleway_api/scaleway/disconnect";
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.post(&u, &format!("{path}?connectionId=")),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, &format!("{path}?connection_id=%20")),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, &format!("{path}?connectionID=x")),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, &format!("{path}?accountId=")),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, path)
                .json(&serde_json::json!({"connectionID": "x"})),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, path)
                .json(&serde_json::json!({"connectionId": ""})),
            400,
            "invalid_request",
        ),
        (
            app.post(&u, path)
                .header("Content-Type", "text/plain")
                .body(r#"{"connectionId":"x"}"#),
            415,
            "unsupported_media_type",
        ),
        (
            app.post(&u, path).body(r#"{"connectionId":"x"}"#),
            415,
            "unsupported_media_type",
        ),
    ];
    for (req, status, code) in cases {
        let resp = req
            .header("X-Internal-Secret", INTERNAL_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(resp).await, (status, code.to_owned()));
        assert_eq!(count(&app, &u).await, 2, "nothing was removed");
    }
    // AWS's filters too.
    for q in [
        "accountId=",
        "account_id=%20",
        "connectionId=",
        "acountId=123456789012",
    ] {
        let resp = app
            .post(&u, &format!("/aws/disconnect?{q}"))
            .header("X-Internal-Secret", INTERNAL_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(resp).await.0, 400, "{q}");
    }
    // A JSON connect body sent as text/plain is refused before anything is called.
    let acct = ScwAccount::new(1);
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(acct.connect_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(resp).await, (415, "unsupported_media_type".into()));
    // The plain disconnect (no body, no query) still removes everything.
    let resp = app
        .post(&u, path)
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(count(&app, &u).await, 0);
}

both_backends!(blank_or_misspelled_disconnect_filters_remove_nothing);

/// Write `request` on a fresh connection and read the answer until the server closes it (or 30 s).
fn raw_exchange(base: &str, request: &[u8], then_wait: bool) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    if !then_wait {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One whole answer is enough.
                let text = String::from_utf8_lossy(&out);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if out.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            Err(e) => panic!(
                "no answer: {e}; got so far: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_and_body(answer: &str) -> (u16, Value) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {answer:?}"));
    (status, json)
}

#[tokio::test]
async fn a_body_that_never_completes_answers_408() {
    let mut opts = trusted();
    opts.settings
        .push(("AURORA_BODY_TIMEOUT_SECS".into(), "1".into()));
    let app = TestApp::spawn_with(Backend::Embedded, opts).await;
    let base = app.base.clone();
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            &base,
            format!(
                "POST /scaleway_api/scaleway/disconnect HTTP/1.1\r\nHost: x\r\nX-User-ID: u1\r\n\
                 X-Internal-Secret: {INTERNAL_SECRET}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"conn"
            )
            .as_bytes(),
            true,
        )
    })
    .await
    .unwrap();
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(body["code"], "request_timeout");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_chunking_answers_the_json_error_body() {
    let app = TestApp::spawn_with(Backend::Embedded, trusted()).await;
    let base = app.base.clone();
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            &base,
            format!(
                "POST /scaleway_api/scaleway/disconnect HTTP/1.1\r\nHost: x\r\nX-User-ID: u1\r\n\
                 X-Internal-Secret: {INTERNAL_SECRET}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
            )
            .as_bytes(),
            false,
        )
    })
    .await
    .unwrap();
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(body["code"], "invalid_request");
}

#[tokio::test]
async fn errors_of_the_http_parser_carry_the_json_error_body() {
    let app = TestApp::spawn_with(Backend::Embedded, trusted()).await;
    for (request, status) in [
        (
            &b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n"[..],
            400u16,
        ),
        (&b"GARBAGE\x01 / HTTP/9\r\n\r\n"[..], 400),
        (
            &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            400,
        ),
    ] {
        let base = app.base.clone();
        let answer = tokio::task::spawn_blocking(move || raw_exchange(&base, request, false))
            .await
            .unwrap();
        let (got, body) = status_and_body(&answer);
        assert_eq!(got, status, "{answer}");
        assert_eq!(body["status"], "error", "{answer}");
        assert_eq!(body["code"], "invalid_request", "{answer}");
        assert_eq!(body["error"], body["message"], "{answer}");
    }
    // The server still serves afterwards.
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Kills the child process on every exit path.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary with `ulimit -n 256`: 300 connections that send a head and never finish their
/// body cannot take the descriptors the gateway needs for itself. A connection accepted before
/// them still gets credentials, which opens a secret file; the log names the limits and the cap.
#[tokio::test]
async fn held_connections_leave_descriptors_for_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let port = aurora_testkit::free_port();
    let scaleway = wiremock::MockServer::start().await;
    let acct = ScwAccount::new(1);
    acct.mount(&scaleway).await;
    let log = dir.path().join("gateway.log");
    let bin = env!("CARGO_BIN_EXE_aurora-gateway");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{bin}' > '{}' 2>&1",
            log.display()
        ))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_DATA_DIR", dir.path().join("data"))
        .env("AURORA_BIND", format!("127.0.0.1:{port}"))
        .env("AURORA_INTERNAL_SECRET", INTERNAL_SECRET)
        .env("AURORA_SCALEWAY_API_URL", scaleway.uri())
        .env("AURORA_WORKERS", "2")
        .env("AURORA_BODY_TIMEOUT_SECS", "120")
        .env("AURORA_LOG", "info")
        .env("AURORA_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let _child = Child(child);
    let base = format!("http://127.0.0.1:{port}");
    // One client, one kept-alive connection: opened before the flood.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    aurora_testkit::eventually(
        "the gateway to become ready",
        Duration::from_secs(60),
        async || {
            let r = http.get(format!("{base}/readyz")).send().await;
            r.is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let resp = http
        .post(format!("{base}/scaleway_api/scaleway/connect"))
        .header("X-User-ID", "u1")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The flood: 300 connections, each with a head and the start of a body, held open.
    // Connected in parallel, each with a bound: past the listen queue a connect waits.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let head = format!(
        "POST /scaleway_api/scaleway/disconnect HTTP/1.1\r\nHost: x\r\nX-User-ID: u2\r\n\
         X-Internal-Secret: {INTERNAL_SECRET}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{"
    );
    let held: Vec<TcpStream> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..300)
            .map(|_| {
                let head = head.as_bytes();
                scope.spawn(move || {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                    s.write_all(head).ok()?;
                    Some(s)
                })
            })
            .collect();
        tries
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(held.len() >= 200, "the flood connected: {}", held.len());
    // Let the server accept what it will. Not synchronization on an event: the server gives no
    // signal for "accepted all it can", and the request below must meet the flood in full.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The earlier connection still gets credentials (a secret file is opened to read them).
    let resp = http
        .get(format!("{base}/api/connections/{id}/credentials?mode=full"))
        .header("X-User-ID", "u1")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains(&acct.access_key));
    drop(held);

    let logs = std::fs::read_to_string(&log).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("client connections capped"))
        .unwrap_or_else(|| panic!("no limits line in: {logs}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["nofile_soft"], 256, "{line}");
    assert_eq!(v["fields"]["nofile_hard"], 256, "{line}");
    let cap = v["fields"]["max_connections"].as_u64().unwrap();
    assert!(cap < 256, "{line}");
}
