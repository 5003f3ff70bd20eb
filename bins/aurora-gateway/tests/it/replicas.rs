//! Several replicas against the real servers (PostgreSQL, Redis, OpenBao): three gateways on loopback
//! ports share the stores and nothing else (each has its own platform, broker, in-process tier and
//! HTTP workers), as three processes would. Also the per-user rate limits, shared through Redis and
//! in process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Backend, Options, ScwAccount, TestApp, INTERNAL_SECRET};
use aurora_testkit::{eventually, StubConnector};
use chrono::Utc;
use connector_core::store::StatusUpdate;
use connector_core::{
    Actor, ConnectSpec, ConnectionId, ConnectionStatus, Connector, CredentialMode, ProviderId,
    SecretPath, SecretValue, UserId,
};
use serde_json::{json, Value};

const PROVIDER: &str = "testreplica";

/// A stub provider that counts its issues. Its credentials are `{"token": "<seed>-<n>"}` (the seed
/// comes from the stored secret) and expire `ttl_secs` after issue; each issue takes `delay_ms`
/// (slow enough that concurrent callers pile up); with `rotate` every refresh also hands back a
/// rotated secret `{"seed": "<seed>+r"}`.
fn counting(ttl_secs: i64, rotate: bool) -> Arc<StubConnector> {
    counting_with_delay(ttl_secs, rotate, 200)
}

fn counting_with_delay(ttl_secs: i64, rotate: bool, delay_ms: u64) -> Arc<StubConnector> {
    StubConnector::builder(PROVIDER)
        .ttl(Some(chrono::Duration::seconds(ttl_secs)))
        .issue_delay(Duration::from_millis(delay_ms))
        .rotate(rotate)
        .build()
}

/// Replicas sharing one set of stores. The first owns the database schema and the data folder, so
/// the others are dropped before it.
struct Replicas(Vec<TestApp>);

impl Drop for Replicas {
    fn drop(&mut self) {
        while let Some(app) = self.0.pop() {
            drop(app);
        }
    }
}

impl std::ops::Index<usize> for Replicas {
    type Output = TestApp;
    fn index(&self, i: usize) -> &TestApp {
        &self.0[i]
    }
}

/// `n` gateways on the real servers, sharing PostgreSQL, Redis (one key prefix) and OpenBao (one
/// folder), each with `connector` mounted and the extra `settings`. Waits until each replica listens
/// to the credential invalidations (its in-process tier is on).
async fn replicas(
    n: usize,
    connector: Option<Arc<dyn Connector>>,
    settings: &[(&str, &str)],
) -> Replicas {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Small database pools: the tests of this binary start about thirty gateways at once, and
    // PostgreSQL (shared with every other suite) accepts a hundred connections.
    let pool = [("AURORA_DATABASE_POOL_SIZE".to_string(), "4".to_string())];
    let opts = |backend: Vec<(String, String)>| Options {
        internal_secret: Some(INTERNAL_SECRET.into()),
        extra_connectors: connector.iter().cloned().collect(),
        settings: backend
            .into_iter()
            .chain(pool.clone())
            .chain(settings.clone())
            .collect(),
        ..Options::default()
    };
    let first = TestApp::spawn_with(Backend::Servers, opts(Vec::new())).await;
    let shared = first.backend_settings();
    let mut apps = vec![first];
    for _ in 1..n {
        apps.push(TestApp::spawn_with(Backend::Servers, opts(shared.clone())).await);
    }
    let apps = Replicas(apps);
    for (i, app) in apps.0.iter().enumerate() {
        eventually(
            &format!("replica {} to listen to invalidations", i + 1),
            Duration::from_secs(5),
            async || app.platform.broker().local_tier_active(),
        )
        .await;
    }
    apps
}

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

fn spec(u: &str, seed: &str) -> ConnectSpec {
    ConnectSpec {
        user: UserId::parse(u).unwrap(),
        provider: ProviderId::from_static(PROVIDER),
        account_id: "acct-1".into(),
        display_name: None,
        read_only: false,
        metadata: json!({}),
        expires_at: None,
        status: ConnectionStatus::Active,
        secret: SecretValue::encode(&json!({ "seed": seed })).unwrap(),
    }
}

async fn token(app: &TestApp, u: &str, id: &str) -> (u16, Value) {
    let resp = app.credentials(u, id, "full").send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn token_of(v: &Value) -> String {
    v["credentials"]["token"].as_str().unwrap().to_owned()
}

/// A Scaleway connection made through replica 1 is listed, read and used through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_made_on_one_replica_is_listed_and_used_on_another() {
    if !aurora_testkit::servers_available(
        "a_connection_made_on_one_replica_is_listed_and_used_on_another",
    ) {
        return;
    }
    let apps = replicas(3, None, &[]).await;
    let acct = ScwAccount::new(2);
    for app in &apps.0 {
        acct.mount(&app.scaleway).await;
    }
    let u = user();
    let resp = apps[0]
        .post(&u, "/scaleway_api/scaleway/connect")
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

    let list: Value = apps[1]
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let one: Value = apps[2]
        .get(&u, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "active");
    assert_eq!(one["accountId"], acct.organization_id);

    // Used through replica 2 (the secret comes from the shared OpenBao) and replica 3 (cached).
    for app in [&apps[1], &apps[2]] {
        let (status, v) = token(app, &u, &id).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["credentials"]["secretKey"], acct.secret_key);
        assert_eq!(v["credentials"]["organizationId"], acct.organization_id);
    }
    // The audit trail of replica 3 shows the connect made on replica 1.
    let audit: Value = apps[2]
        .get(&u, &format!("/api/audit?connectionId={id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"connect"), "{actions:?}");
}

/// 500 concurrent credential requests spread over three replicas, for one connection whose
/// credentials expired, make one provider refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_requests_over_three_replicas_make_one_refresh() {
    if !aurora_testkit::servers_available(
        "five_hundred_requests_over_three_replicas_make_one_refresh",
    ) {
        return;
    }
    // Issued first with a life just over the 5-minute margin, so they are cached for two seconds.
    let conn = counting(5 * 60 + 2, false);
    let apps = replicas(
        3,
        Some(conn.clone()),
        &[
            ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN", "0"),
            ("AURORA_DATABASE_POOL_SIZE", "8"),
        ],
    )
    .await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "s33d"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    let (status, v) = token(&apps[1], &u, &id).await;
    assert_eq!(status, 200);
    assert_eq!(token_of(&v), "s33d-1");
    assert_eq!(conn.issue_calls(), 1);

    // Let them expire (enter the refresh margin): gone from the shared cache and every replica.
    let key = connector_core::broker::cache_key(rec.id, CredentialMode::Full);
    eventually(
        "the credentials to leave the shared cache",
        Duration::from_secs(10),
        async || apps[0].platform.cache().get(&key).await.unwrap().is_none(),
    )
    .await;
    conn.set_ttl(Some(chrono::Duration::hours(1)));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let req = apps[i % 3].credentials(&u, &id, "full");
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap();
            (status, v)
        }));
    }
    let mut tokens = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        tokens.insert(token_of(&v));
    }
    let refreshes = conn.issue_calls() - 1;
    println!(
        "500 concurrent requests over 3 replicas: {refreshes} provider refresh(es), {:?}",
        started.elapsed()
    );
    assert_eq!(
        refreshes, 1,
        "exactly one provider refresh across the replicas"
    );
    assert_eq!(tokens.into_iter().collect::<Vec<_>>(), ["s33d-2"]);
    // And they are cached for everyone now.
    for app in &apps.0 {
        assert_eq!(token_of(&token(app, &u, &id).await.1), "s33d-2");
    }
    assert_eq!(conn.issue_calls(), 2);
}

/// Credentials too short-lived to cache (inside the refresh margin) are still shared by concurrent
/// callers on every replica: the winner hands its result to the replicas that waited on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_lived_credentials_are_handed_to_the_waiting_replicas() {
    if !aurora_testkit::servers_available(
        "short_lived_credentials_are_handed_to_the_waiting_replicas",
    ) {
        return;
    }
    let conn = counting_with_delay(120, false, 800);
    let apps = replicas(3, Some(conn.clone()), &[]).await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "brief"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    let mut tasks = Vec::new();
    for i in 0..90 {
        let req = apps[i % 3].credentials(&u, &id, "full");
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(token_of(&t.await.unwrap()), "brief-1");
    }
    assert_eq!(conn.issue_calls(), 1);
    // Not cached: the next use refreshes again (on any replica).
    assert_eq!(token_of(&token(&apps[1], &u, &id).await.1), "brief-2");
}

/// A connection disconnected through replica 3 is refused by replicas 1 and 2 within a second (in
/// practice as soon as the invalidation arrives: both kept the row and the credentials in process),
/// and their copies are gone (also for a caller that still holds the old row).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_disconnected_on_one_replica_is_refused_by_the_others_within_a_second() {
    if !aurora_testkit::servers_available(
        "a_connection_disconnected_on_one_replica_is_refused_by_the_others_within_a_second",
    ) {
        return;
    }
    let conn = counting(3600, false);
    let apps = replicas(3, Some(conn.clone()), &[]).await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "gone"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    for app in [&apps[0], &apps[1]] {
        let (status, _) = token(app, &u, &id).await;
        assert_eq!(status, 200);
        assert!(app.platform.broker().holds_local_copy(rec.id));
        assert!(app.platform.broker().holds_local_row(rec.id));
    }
    assert_eq!(conn.issue_calls(), 1);

    let resp = apps[2]
        .delete(&u, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Within a second (the invalidation's trip through Redis): the row is gone for everyone.
    for (i, app) in [&apps[0], &apps[1]].into_iter().enumerate() {
        let took = eventually(
            &format!("replica {} to drop the row", i + 1),
            Duration::from_secs(1),
            async || !app.platform.broker().holds_local_row(rec.id),
        )
        .await;
        println!("replica {} dropped the row after {took:?}", i + 1);
        let (status, v) = token(app, &u, &id).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(v["code"], "not_found");
    }
    // Within a second: no replica holds a copy any more, so even a caller holding the old row is
    // refused (the secret is gone from OpenBao).
    for (i, app) in [&apps[0], &apps[1]].into_iter().enumerate() {
        let took = eventually(
            &format!("replica {} to drop its copy", i + 1),
            Duration::from_secs(1),
            async || !app.platform.broker().holds_local_copy(rec.id),
        )
        .await;
        println!("replica {} dropped its copy after {took:?}", i + 1);
        let connector: Arc<dyn Connector> = conn.clone();
        let e = app
            .platform
            .credentials(connector, &rec, CredentialMode::Full)
            .await
            .unwrap_err();
        assert_eq!(e.code, "needs_reconnect", "{e}");
    }
    assert_eq!(
        conn.issue_calls(),
        1,
        "no provider call for a gone connection"
    );
}

/// A status change written through replica 3 (a status check found the credentials refused, then
/// a later one found them good) reaches the rows replicas 1 and 2 keep in process within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_change_on_one_replica_reaches_the_rows_the_others_keep() {
    if !aurora_testkit::servers_available(
        "a_status_change_on_one_replica_reaches_the_rows_the_others_keep",
    ) {
        return;
    }
    let conn = counting(3600, false);
    let apps = replicas(3, Some(conn.clone()), &[]).await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "status"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    let owner = UserId::parse(&u).unwrap();
    for app in [&apps[0], &apps[1]] {
        assert_eq!(token(app, &u, &id).await.0, 200);
        assert!(app.platform.broker().holds_local_row(rec.id));
    }
    // Another user asking for the kept row is refused like for a row that does not exist.
    let (status, v) = token(&apps[0], &user(), &id).await;
    assert_eq!(status, 404, "{v}");

    for (to, code) in [
        (ConnectionStatus::NeedsReconnect, Some("needs_reconnect")),
        (ConnectionStatus::Active, None),
    ] {
        apps[2]
            .platform
            .update_status(
                &owner,
                rec.id,
                StatusUpdate {
                    status: to,
                    status_reason: code.map(|c| c.to_owned()),
                    last_validated_at: Some(Utc::now()),
                },
            )
            .await
            .unwrap()
            .unwrap();
        for (i, app) in [&apps[0], &apps[1]].into_iter().enumerate() {
            let took = eventually(
                &format!("replica {} to drop the {to:?} row's predecessor", i + 1),
                Duration::from_secs(1),
                async || !app.platform.broker().holds_local_row(rec.id),
            )
            .await;
            println!("replica {} dropped the row after {took:?}", i + 1);
            let (status, v) = token(app, &u, &id).await;
            match code {
                Some(c) => {
                    assert_eq!(status, 409, "{v}");
                    assert_eq!(v["code"], c);
                }
                None => assert_eq!(status, 200, "{v}"),
            }
        }
    }
    assert_eq!(
        conn.issue_calls(),
        1,
        "a status change is not a credential change"
    );
}

/// A credential change (a reconnect with a new secret) made through one replica replaces the
/// in-process copies of the others within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reconnect_on_one_replica_invalidates_the_copies_of_the_others() {
    if !aurora_testkit::servers_available(
        "a_reconnect_on_one_replica_invalidates_the_copies_of_the_others",
    ) {
        return;
    }
    let conn = counting(3600, false);
    let apps = replicas(3, Some(conn.clone()), &[]).await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "old"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    for app in [&apps[0], &apps[1]] {
        assert_eq!(token_of(&token(app, &u, &id).await.1), "old-1");
    }
    // The in-process tier really serves: with the shared entry gone, replica 1 still answers
    // without calling the provider.
    let key = connector_core::broker::cache_key(rec.id, CredentialMode::Full);
    apps[0].platform.cache().delete(&key).await.unwrap();
    assert_eq!(token_of(&token(&apps[0], &u, &id).await.1), "old-1");
    assert_eq!(conn.issue_calls(), 1);

    let (again, created) = apps[2]
        .platform
        .connect(spec(&u, "new"), Actor::User)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, rec.id);
    for (i, app) in [&apps[0], &apps[1]].into_iter().enumerate() {
        eventually(
            &format!("replica {} to drop the old credentials", i + 1),
            Duration::from_secs(1),
            async || !app.platform.broker().holds_local_copy(rec.id),
        )
        .await;
        let t = token_of(&token(app, &u, &id).await.1);
        assert!(t.starts_with("new-"), "replica {} handed out {t}", i + 1);
    }
    assert_eq!(
        conn.issue_calls(),
        2,
        "one refresh for the new secret, shared"
    );
}

/// A refresh that read the secret before a reconnect wrote a newer one never overwrites it: its
/// check-and-set write-back conflicts, and it issues from the newer secret instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_refresh_never_overwrites_newer_credentials() {
    if !aurora_testkit::servers_available("a_stale_refresh_never_overwrites_newer_credentials") {
        return;
    }
    let conn = counting(3600, true);
    let apps = replicas(2, Some(conn.clone()), &[]).await;
    let u = user();
    let (rec, _) = apps[0]
        .platform
        .connect(spec(&u, "a"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    conn.delay_next_issue(Duration::from_millis(800));
    let slow = {
        let req = apps[0].credentials(&u, &id, "full");
        tokio::spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    // While replica 1's refresh holds the old secret (its issue has started, 1 s long), the user
    // reconnects through replica 2.
    eventually(
        "replica 1's refresh to start",
        Duration::from_secs(5),
        async || conn.issue_calls() == 1,
    )
    .await;
    apps[1]
        .platform
        .connect(spec(&u, "b"), Actor::User)
        .await
        .unwrap();
    let v = slow.await.unwrap();
    assert_eq!(
        token_of(&v),
        "b-2",
        "issued again from the newer secret after the conflict"
    );
    assert_eq!(conn.issue_calls(), 2);
    let path = SecretPath::from_stored(&rec.secret_ref).unwrap();
    let stored = apps[1]
        .platform
        .secrets()
        .get(&path)
        .await
        .unwrap()
        .unwrap();
    let stored: Value = stored.decode().unwrap();
    assert_eq!(
        stored["seed"], "b+r",
        "the rotation of the newer secret, never a+r"
    );
}

/// Redis down: no cross-replica lock, so each process refreshes under its own single-flight (one
/// call here for 20 concurrent requests), and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_process_still_refreshes_once() {
    if !aurora_testkit::servers_available("without_redis_each_process_still_refreshes_once") {
        return;
    }
    let conn = counting(3600, false);
    let app = TestApp::spawn_with(
        Backend::Servers,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            redis_url: Some("redis://127.0.0.1:1".into()),
            extra_connectors: vec![conn.clone()],
            ..Options::default()
        },
    )
    .await;
    let u = user();
    let (rec, _) = app
        .platform
        .connect(spec(&u, "solo"), Actor::User)
        .await
        .unwrap();
    let id = rec.id.to_string();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app.credentials(&u, &id, "full");
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(token_of(&t.await.unwrap()), "solo-1");
    }
    assert_eq!(conn.issue_calls(), 1);
    assert!(crate::common::captured_logs().contains("no cross-replica refresh lock"));
}

// ---- rate limits ----

fn connect_routes() -> [&'static str; 6] {
    [
        "/scaleway_api/scaleway/connect",
        "/aws/auth",
        "/azure/login",
        "/gcp/login",
        "/gcp/post-auth-retry",
        "/tailscale_api/tailscale/connect",
    ]
}

async fn post_connect(app: &TestApp, u: &str, route: &str) -> reqwest::Response {
    app.post(u, route)
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

async fn assert_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp
        .headers()
        .get("Retry-After")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "rate_limited");
}

/// With Redis the budget is per user across replicas; each class has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_hold_across_replicas() {
    if !aurora_testkit::servers_available("rate_limits_hold_across_replicas") {
        return;
    }
    let apps = replicas(
        2,
        None,
        &[
            ("AURORA_RATE_LIMIT_CONNECT_PER_MIN", "3"),
            ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN", "4"),
        ],
    )
    .await;
    let u = user();
    for i in 0..3 {
        let resp = post_connect(&apps[i % 2], &u, "/scaleway_api/scaleway/connect").await;
        assert_ne!(resp.status(), 429, "request {}", i + 1);
    }
    assert_limited(post_connect(&apps[1], &u, "/scaleway_api/scaleway/connect").await).await;
    assert_limited(post_connect(&apps[0], &u, "/aws/auth").await).await;
    // Another user has a budget of their own; routes outside the classes are not limited.
    let v = user();
    assert_ne!(
        post_connect(&apps[1], &v, "/scaleway_api/scaleway/connect")
            .await
            .status(),
        429
    );
    for _ in 0..5 {
        let resp = apps[0]
            .get(&u, "/api/connections")
            .header("X-Internal-Secret", INTERNAL_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // The credentials class counts apart, across the replicas too.
    let missing = ConnectionId::new().to_string();
    for i in 0..4 {
        let resp = apps[i % 2]
            .credentials(&u, &missing, "full")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
    assert_limited(
        apps[1]
            .credentials(&u, &missing, "full")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Every provider's connect route draws on one budget.
    let w = user();
    let routes = connect_routes();
    for (i, route) in routes.iter().take(3).enumerate() {
        let resp = post_connect(&apps[i % 2], &w, route).await;
        assert_ne!(resp.status(), 429, "{route}");
    }
    for route in &routes[3..] {
        assert_limited(post_connect(&apps[0], &w, route).await).await;
    }
    // A caller without an identity is refused as such (401), not counted.
    let resp = apps[0]
        .http
        .post(apps[0].url("/scaleway_api/scaleway/connect"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The embedded default counts in process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_in_process_without_redis() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            settings: vec![
                ("AURORA_RATE_LIMIT_CONNECT_PER_MIN".into(), "2".into()),
                ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN".into(), "1".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let u = user();
    for route in ["/tailscale_api/tailscale/connect", "/azure/login"] {
        assert_ne!(post_connect(&app, &u, route).await.status(), 429);
    }
    assert_limited(post_connect(&app, &u, "/scaleway_api/scaleway/connect").await).await;
    let missing = ConnectionId::new().to_string();
    assert_eq!(
        app.credentials(&u, &missing, "full")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_limited(app.credentials(&u, &missing, "full").send().await.unwrap()).await;
}

/// 0 turns a limit off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_of_zero_are_off() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            settings: vec![
                ("AURORA_RATE_LIMIT_CONNECT_PER_MIN".into(), "0".into()),
                ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN".into(), "0".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let u = user();
    let missing = ConnectionId::new().to_string();
    for _ in 0..40 {
        assert_ne!(
            post_connect(&app, &u, "/scaleway_api/scaleway/connect")
                .await
                .status(),
            429
        );
        assert_eq!(
            app.credentials(&u, &missing, "full")
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
}

/// Redis down: the limits fail open to a count in this process, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_fall_back_to_the_process_when_redis_is_down() {
    if !aurora_testkit::servers_available("rate_limits_fall_back_to_the_process_when_redis_is_down")
    {
        return;
    }
    let app = TestApp::spawn_with(
        Backend::Servers,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            redis_url: Some("redis://127.0.0.1:1".into()),
            settings: vec![("AURORA_RATE_LIMIT_CONNECT_PER_MIN".into(), "2".into())],
            ..Options::default()
        },
    )
    .await;
    let u = user();
    for _ in 0..2 {
        assert_ne!(
            post_connect(&app, &u, "/scaleway_api/scaleway/connect")
                .await
                .status(),
            429
        );
    }
    assert_limited(post_connect(&app, &u, "/scaleway_api/scaleway/connect").await).await;
    assert!(crate::common::captured_logs().contains("counting in this process only"));
    assert!(!app.platform.broker().local_tier_active());
}
