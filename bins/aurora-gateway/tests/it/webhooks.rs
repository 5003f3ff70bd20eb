//! Signed webhooks from the durable outbox, end to end through the gateway, on both backends: a
//! receiver that verifies every signature (independently, with `hmac`) and records event ids gets
//! `connection.created`, `connection.status_changed` and `connection.disconnected`; a receiver that is
//! down gets the event later with the same id; an event survives a restart; two gateways on one
//! state deliver each event exactly once; nothing is accepted twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Backend, Options, ScwAccount, TestApp, INTERNAL_SECRET};
use aurora_gateway::GatewayConfig;
use chrono::Utc;
use connector_core::outbox::{OutboxRecord, OutboxState};
use connector_core::{Actor, ConnectionId, ConnectionRecord, ConnectionStatus, Settings};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "whsec-test-3f9c1b7e5a2d4c6e8f0a";
/// Put in the receiver's URL: the URL may carry a token, so it must never be logged.
const URL_TOKEN: &str = "tok-url-77c1d2e3";

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Record {
    /// Answer 503 while set.
    down: bool,
    /// Answer 503 to this many more requests.
    fail_next: usize,
    /// Every request's event id, in order (deliveries and failed attempts alike).
    requests: Vec<String>,
    /// Events accepted (answered 2xx), by id, first acceptance only.
    accepted: Vec<Value>,
    /// A 2xx event id seen again.
    duplicates: Vec<String>,
    /// Requests whose signature, timestamp or id header did not check out.
    bad: Vec<String>,
}

/// A webhook receiver as a user would write one: checks the signature over `{timestamp}.{body}`
/// with the shared secret, the timestamp's age and the id header, and deduplicates on the event id.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Record>>);

fn hmac_hex(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

impl Respond for Receiver {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let id = header("x-aurora-event-id");
        let ts = header("x-aurora-timestamp");
        let sig = header("x-aurora-signature");
        let mut r = self.0.lock();
        r.requests.push(id.clone());
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                r.bad.push(format!("{id}: body is not JSON"));
                return ResponseTemplate::new(400);
            }
        };
        let fresh = ts
            .parse::<i64>()
            .map(|t| (Utc::now().timestamp() - t).abs() <= 300)
            .unwrap_or(false);
        let expected = format!("v1={}", hmac_hex(SECRET, &ts, &req.body));
        if sig != expected
            || !fresh
            || body["id"] != id.as_str()
            || header("x-aurora-event-type") != body["type"].as_str().unwrap_or("?")
            || header("content-type") != "application/json"
        {
            r.bad.push(format!("{id}: signature {sig} ts {ts}"));
            return ResponseTemplate::new(400);
        }
        if r.down {
            return ResponseTemplate::new(503);
        }
        if r.fail_next > 0 {
            r.fail_next -= 1;
            return ResponseTemplate::new(503);
        }
        if r.accepted.iter().any(|e| e["id"] == id.as_str()) {
            r.duplicates.push(id);
        } else {
            r.accepted.push(body);
        }
        ResponseTemplate::new(204)
    }
}

impl Receiver {
    async fn start() -> (Self, MockServer) {
        let recv = Self::default();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hooks"))
            .respond_with(recv.clone())
            .mount(&server)
            .await;
        (recv, server)
    }

    fn set_down(&self, down: bool) {
        self.0.lock().down = down;
    }

    fn fail_next(&self, n: usize) {
        self.0.lock().fail_next = n;
    }

    fn accepted(&self) -> Vec<Value> {
        self.0.lock().accepted.clone()
    }

    fn requests_for(&self, id: &str) -> usize {
        self.0.lock().requests.iter().filter(|r| *r == id).count()
    }

    fn requests(&self) -> usize {
        self.0.lock().requests.len()
    }

    /// Nothing bad or duplicated so far.
    fn assert_clean(&self) {
        let r = self.0.lock();
        assert!(
            r.bad.is_empty(),
            "requests that did not verify: {:?}",
            r.bad
        );
        assert!(
            r.duplicates.is_empty(),
            "ids accepted twice: {:?}",
            r.duplicates
        );
    }

    /// Wait until an accepted event matches `pred`; return it.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        aurora_testkit::poll_until(Duration::from_secs(20), async || {
            found = self.accepted().into_iter().find(|e| pred(e));
            found.is_some()
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no {what} was delivered in 20 s; accepted: {:?}",
                self.accepted()
            )
        })
    }
}

/// Webhook settings pointing at `server`, with a fast poll and a short back-off.
fn webhook_settings(server: &MockServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = vec![
        (
            "AURORA_WEBHOOK_URL".into(),
            format!("{}/hooks?token={URL_TOKEN}", server.uri()),
        ),
        ("AURORA_WEBHOOK_SECRET".into(), SECRET.into()),
        ("AURORA_WEBHOOK_POLL_MS".into(), "50".into()),
        ("AURORA_WEBHOOK_BACKOFF_BASE_MS".into(), "100".into()),
        ("AURORA_WEBHOOK_BACKOFF_MAX_MS".into(), "400".into()),
        ("AURORA_WEBHOOK_TIMEOUT_SECS".into(), "5".into()),
    ];
    for (k, v) in extra {
        s.retain(|(key, _)| key != k);
        s.push((k.to_string(), v.to_string()));
    }
    s
}

fn options(settings: Vec<(String, String)>) -> Options {
    Options {
        internal_secret: Some(INTERNAL_SECRET.into()),
        settings,
        ..Options::default()
    }
}

async fn connect(app: &TestApp, user: &str, acct: &ScwAccount) -> String {
    let resp = app
        .post(user, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "connect failed: {body}");
    body["connectionId"].as_str().unwrap().to_owned()
}

async fn outbox(app: &TestApp) -> Vec<OutboxRecord> {
    app.platform
        .store()
        .list_webhooks(None, 1000)
        .await
        .unwrap()
}

async fn outbox_row(app: &TestApp, id: &str) -> OutboxRecord {
    outbox(app)
        .await
        .into_iter()
        .find(|r| r.id.to_string() == id)
        .unwrap_or_else(|| panic!("no outbox row {id}"))
}

/// Wait until the outbox row of `id` satisfies `pred`.
async fn wait_row(app: &TestApp, id: &str, pred: impl Fn(&OutboxRecord) -> bool) -> OutboxRecord {
    let mut row = None;
    let reached = aurora_testkit::poll_until(Duration::from_secs(20), async || {
        let r = outbox_row(app, id).await;
        let done = pred(&r);
        row = Some(r);
        done
    })
    .await;
    let row = row.expect("polled at least once");
    assert!(
        reached.is_some(),
        "outbox row {id} never reached the state: {row:?}"
    );
    row
}

fn is(e: &Value, event_type: &str, conn: &str) -> bool {
    e["type"] == event_type && e["data"]["connectionId"] == conn
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Connect, a refusal, a reconnect and a disconnect each reach the receiver, signed, once.
async fn lifecycle_events_are_signed_and_delivered_once(b: Backend) {
    let (recv, server) = Receiver::start().await;
    let app = TestApp::spawn_with(b, options(webhook_settings(&server, &[]))).await;
    let u = user();
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;

    // Connect → connection.created.
    let id = connect(&app, &u, &acct).await;
    let created = recv
        .wait_for("connection.created", |e| is(e, "connection.created", &id))
        .await;
    let data = &created["data"];
    assert_eq!(data["provider"], "scaleway");
    assert_eq!(data["accountId"], acct.organization_id);
    assert_eq!(data["status"], "active");
    assert_eq!(data["userId"], u);
    assert!(created["createdAt"].is_string());
    uuid::Uuid::parse_str(created["id"].as_str().unwrap()).expect("the event id is a UUID");

    // Scaleway refuses the key: a validation moves the connection to needs_reconnect.
    app.scaleway.reset().await;
    Mock::given(method("GET"))
        .and(path_regex("^/iam/v1alpha1/api-keys/.*"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"message": "authentication is denied", "type": "denied_authentication"}),
        ))
        .mount(&app.scaleway)
        .await;
    let resp = app
        .post(&u, &format!("/api/connections/{id}/validate"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["status"],
        "needs_reconnect"
    );
    let changed = recv
        .wait_for("connection.status_changed", |e| {
            is(e, "connection.status_changed", &id) && e["data"]["status"] == "needs_reconnect"
        })
        .await;
    assert_eq!(changed["data"]["previousStatus"], "active");
    assert!(changed["data"]["reason"].is_string());

    // Reconnect with a key Scaleway accepts again → status_changed back to active.
    app.scaleway.reset().await;
    acct.mount(&app.scaleway).await;
    assert_eq!(connect(&app, &u, &acct).await, id);
    let back = recv
        .wait_for("connection.status_changed to active", |e| {
            is(e, "connection.status_changed", &id) && e["data"]["status"] == "active"
        })
        .await;
    assert_eq!(back["data"]["previousStatus"], "needs_reconnect");

    // Disconnect → connection.disconnected.
    let resp = app
        .post(&u, "/scaleway_api/scaleway/disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let gone = recv
        .wait_for("connection.disconnected", |e| {
            is(e, "connection.disconnected", &id)
        })
        .await;
    assert_eq!(gone["data"]["accountId"], acct.organization_id);

    // Each event once, in the order it happened; no credentials issue made an event.
    let types: Vec<String> = recv
        .accepted()
        .iter()
        .filter(|e| e["data"]["connectionId"] == id.as_str())
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "connection.created",
            "connection.status_changed",
            "connection.status_changed",
            "connection.disconnected"
        ]
    );
    // Every outbox row delivered at the first attempt; the ids are the audit lines' ids. The
    // receiver can see the last event before the worker records its delivery: wait for that.
    aurora_testkit::eventually(
        "every outbox row recorded as delivered",
        std::time::Duration::from_secs(10),
        async || {
            outbox(&app)
                .await
                .iter()
                .all(|r| r.state == OutboxState::Delivered)
        },
    )
    .await;
    let rows = outbox(&app).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.state == OutboxState::Delivered && r.attempts == 1 && r.lease_owner.is_none()));
    let audit: Value = app
        .get(&u, &format!("/api/audit?connectionId={id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit_ids: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for r in &rows {
        assert!(
            audit_ids.contains(&r.id.to_string().as_str()),
            "event {} has its audit line",
            r.id
        );
    }

    // Wait a little more: nothing is sent again. Not synchronization: nothing may happen here, so
    // the test watches for a while and then counts.
    let sent = recv.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.requests(), sent, "no delivery after success");
    recv.assert_clean();

    // No secret in the outbox, the payloads or the logs; the receiver's URL is not logged either.
    let dump = app.db_dump().await;
    assert!(
        dump.contains("webhook_outbox"),
        "the dump covers the outbox"
    );
    for secret in [SECRET, acct.secret_key.as_str(), URL_TOKEN] {
        assert!(!dump.contains(secret), "{secret} reached the database");
    }
    let logs = crate::common::captured_logs();
    assert!(
        logs.contains("webhook delivered"),
        "delivery logs are captured"
    );
    for secret in [SECRET, acct.secret_key.as_str(), URL_TOKEN] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}

/// A receiver answering 503 gets the event later, with the same id, and never twice after that.
async fn receiver_that_is_down_gets_the_event_later(b: Backend) {
    let (recv, server) = Receiver::start().await;
    recv.fail_next(3);
    let app = TestApp::spawn_with(b, options(webhook_settings(&server, &[]))).await;
    let u = user();
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let id = connect(&app, &u, &acct).await;
    let event = recv
        .wait_for("connection.created", |e| is(e, "connection.created", &id))
        .await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    assert_eq!(
        recv.requests_for(&event_id),
        4,
        "three refused attempts, then the delivery, all with the same event id"
    );
    let row = wait_row(&app, &event_id, |r| r.state == OutboxState::Delivered).await;
    assert_eq!(row.attempts, 4);
    assert!(row.delivered_at.is_some());
    assert!(
        row.last_error.as_deref().unwrap_or("").contains("503"),
        "{row:?}"
    );
    // Not synchronization: no delivery may come, so the test watches for a while and then counts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(recv.requests_for(&event_id), 4, "no delivery after success");
    recv.assert_clean();
}

/// After the last attempt the event is dead-lettered (`failed`), kept, and not sent again.
async fn last_failed_attempt_dead_letters(b: Backend) {
    let (recv, server) = Receiver::start().await;
    recv.set_down(true);
    let settings = webhook_settings(&server, &[("AURORA_WEBHOOK_MAX_ATTEMPTS", "3")]);
    let app = TestApp::spawn_with(b, options(settings)).await;
    let u = user();
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    connect(&app, &u, &acct).await;
    let event_id = outbox(&app).await[0].id.to_string();
    let row = wait_row(&app, &event_id, |r| r.state == OutboxState::Failed).await;
    assert_eq!(row.attempts, 3);
    assert!(
        row.last_error.as_deref().unwrap().contains("503"),
        "{row:?}"
    );
    assert!(row.lease_owner.is_none() && row.delivered_at.is_none());
    recv.set_down(false);
    // Not synchronization: no delivery may come, so the test watches for a while and then counts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        recv.requests_for(&event_id),
        3,
        "a failed event is not sent again"
    );
    assert!(recv.accepted().is_empty());
    // Kept for inspection, and not pruned (only delivered events are).
    assert_eq!(
        app.platform
            .store()
            .list_webhooks(Some(OutboxState::Failed), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    recv.assert_clean();
}

/// An event enqueued while the receiver is down is delivered by the next gateway on the same
/// state after the first one stopped.
async fn event_survives_a_restart(b: Backend) {
    let (recv, server) = Receiver::start().await;
    recv.set_down(true);
    // The first gateway waits at least 750 ms between attempts: time to stop it between two.
    let slow = [
        ("AURORA_WEBHOOK_BACKOFF_BASE_MS", "1500"),
        ("AURORA_WEBHOOK_BACKOFF_MAX_MS", "1500"),
    ];
    let first = TestApp::spawn_with(b, options(webhook_settings(&server, &slow))).await;
    let u = user();
    let acct = ScwAccount::new(1);
    acct.mount(&first.scaleway).await;
    let id = connect(&first, &u, &acct).await;
    let event_id = outbox(&first).await[0].id.to_string();
    // Attempted once, refused, waiting for its retry.
    wait_row(&first, &event_id, |r| {
        r.attempts >= 1 && r.lease_owner.is_none()
    })
    .await;
    first.stop().await;
    first.stop_jobs();
    let attempts_before = outbox_row(&first, &event_id).await.attempts;
    assert_eq!(
        outbox_row(&first, &event_id).await.state,
        OutboxState::Pending
    );

    recv.set_down(false);
    let settings: Vec<(String, String)> = first
        .backend_settings()
        .into_iter()
        .chain(webhook_settings(&server, &[]))
        .collect();
    let second = TestApp::spawn_with(b, options(settings)).await;
    let event = recv
        .wait_for("connection.created after the restart", |e| {
            is(e, "connection.created", &id)
        })
        .await;
    assert_eq!(event["id"], event_id.as_str(), "the same event id");
    let row = wait_row(&second, &event_id, |r| r.state == OutboxState::Delivered).await;
    assert_eq!(row.attempts, attempts_before + 1);
    // Not synchronization: no second delivery may come, so the test watches for a while and then
    // counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.accepted().len(), 1);
    recv.assert_clean();
}

/// Two gateways (two workers) on one state: every event is delivered exactly once.
async fn two_gateways_deliver_each_event_exactly_once(b: Backend) {
    let (recv, server) = Receiver::start().await;
    // Hold the events back until both gateways run, then release them together.
    recv.set_down(true);
    let tuning = [
        ("AURORA_WEBHOOK_MAX_ATTEMPTS", "100"),
        ("AURORA_WEBHOOK_CONCURRENCY", "3"),
        ("AURORA_WEBHOOK_BACKOFF_BASE_MS", "200"),
        ("AURORA_WEBHOOK_BACKOFF_MAX_MS", "200"),
    ];
    let one = TestApp::spawn_with(b, options(webhook_settings(&server, &tuning))).await;
    let settings: Vec<(String, String)> = one
        .backend_settings()
        .into_iter()
        .chain(webhook_settings(&server, &tuning))
        .collect();
    let two = TestApp::spawn_with(b, options(settings)).await;
    const EVENTS: usize = 40;
    let u = connector_core::UserId::parse(&user()).unwrap();
    for i in 0..EVENTS {
        let app = if i % 2 == 0 { &one } else { &two };
        let now = Utc::now();
        let conn = ConnectionRecord {
            id: ConnectionId::new(),
            user_id: u.clone(),
            provider: connector_core::ProviderId::parse("scaleway").unwrap(),
            account_id: format!("org-{i}"),
            display_name: None,
            status: ConnectionStatus::Active,
            status_reason: None,
            read_only: false,
            secret_ref: format!("users/{u}/scaleway/{i}"),
            metadata: serde_json::json!({}),
            created_at: now,
            updated_at: now,
            last_validated_at: None,
            expires_at: None,
        };
        app.platform
            .audit(
                &u,
                Some(&conn),
                connector_core::AuditAction::Connect,
                Actor::User,
                serde_json::json!({"accountId": conn.account_id}),
            )
            .await;
    }
    assert_eq!(outbox(&one).await.len(), EVENTS);
    recv.set_down(false);
    aurora_testkit::poll_until(Duration::from_secs(20), async || {
        recv.accepted().len() >= EVENTS
    })
    .await;
    assert_eq!(recv.accepted().len(), EVENTS, "every event delivered");
    // Let any stray second delivery arrive before counting. Not synchronization: no second
    // delivery may come, so the test watches for a while and then counts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    recv.assert_clean();
    let accepted: HashMap<String, usize> =
        recv.accepted().iter().fold(HashMap::new(), |mut m, e| {
            *m.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
            m
        });
    assert_eq!(accepted.len(), EVENTS);
    let rows = outbox(&two).await;
    assert_eq!(rows.len(), EVENTS);
    assert!(rows.iter().all(|r| r.state == OutboxState::Delivered));
    for r in &rows {
        let id = r.id.to_string();
        // One 2xx per event id, and every claim was exactly one request (refused ones retried).
        assert_eq!(accepted[&id], 1);
        assert_eq!(recv.requests_for(&id), r.attempts as usize, "{r:?}");
    }
}

/// Without `AURORA_WEBHOOK_URL` nothing is enqueued.
async fn without_webhooks_nothing_is_enqueued(b: Backend) {
    let app = TestApp::spawn_with(b, options(Vec::new())).await;
    let u = user();
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    connect(&app, &u, &acct).await;
    assert!(outbox(&app).await.is_empty());
}

both_backends!(
    lifecycle_events_are_signed_and_delivered_once,
    receiver_that_is_down_gets_the_event_later,
    last_failed_attempt_dead_letters,
    event_survives_a_restart,
    two_gateways_deliver_each_event_exactly_once,
    without_webhooks_nothing_is_enqueued,
);

/// A URL without a secret (or a secret without a URL) refuses to start, naming the setting.
#[test]
fn url_without_secret_refuses_to_start() {
    let e = GatewayConfig::from_settings(
        Settings::new().with("AURORA_WEBHOOK_URL", "https://hooks.example/in"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("AURORA_WEBHOOK_SECRET"), "{e}");
    assert!(
        GatewayConfig::from_settings(Settings::new().with("AURORA_WEBHOOK_SECRET", SECRET))
            .is_err()
    );
    GatewayConfig::from_settings(
        Settings::new()
            .with("AURORA_WEBHOOK_URL", "https://hooks.example/in")
            .with("AURORA_WEBHOOK_SECRET", SECRET),
    )
    .unwrap();
}

/// The gateway's signature is the one the receiver computes; a tampered body does not verify.
#[test]
fn signature_matches_an_independent_hmac_and_tampering_fails() {
    let body = br#"{"id":"e","type":"connection.created"}"#;
    let sig = connector_webhooks::sign(SECRET.as_bytes(), 1_700_000_000, body);
    assert_eq!(sig, format!("v1={}", hmac_hex(SECRET, "1700000000", body)));
    connector_webhooks::verify(
        SECRET.as_bytes(),
        "1700000000",
        body,
        &sig,
        1_700_000_000,
        Some(300),
    )
    .unwrap();
    let tampered = br#"{"id":"e","type":"connection.deleted"}"#;
    assert!(connector_webhooks::verify(
        SECRET.as_bytes(),
        "1700000000",
        tampered,
        &sig,
        1_700_000_000,
        Some(300)
    )
    .is_err());
}

/// The real binary refuses to start with a URL and no secret, says why, and does not echo the URL.
#[test]
fn binary_refuses_a_url_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurora-gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_DATA_DIR", dir.path())
        .env("AURORA_LOG", "warn")
        .env(
            "AURORA_WEBHOOK_URL",
            format!("https://hooks.example/in?token={URL_TOKEN}"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AURORA_WEBHOOK_SECRET is not"), "{err}");
    assert!(!err.contains(URL_TOKEN), "{err}");
}
