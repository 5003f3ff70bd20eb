//! Fault and concurrency tests through the HTTP surface: a connect that fails half-way, Redis down,
//! OpenBao down, and single-flight refresh of expiring credentials.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Backend, Options, ScwAccount, TestApp, INTERNAL_SECRET};
use aurora_testkit::{eventually, StubConnector};
use chrono::{DateTime, Utc};
use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use connector_core::store::*;
use connector_core::{
    async_trait, Actor, ConnectSpec, ConnectionId, ConnectionStatus, CredentialMode, ProviderId,
    SecretPath, SecretValue, StoreError, UserId,
};
use serde_json::{json, Value};

/// A store that fails every connection write, to inject a failure after the secret was written.
struct FailingWrites(Arc<dyn Store>);

#[async_trait]
impl ConnectionStore for FailingWrites {
    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    async fn upsert_connection(
        &self,
        _new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError> {
        Err(StoreError::Unavailable("injected failure".into()))
    }
    async fn get_connection(
        &self,
        u: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.0.get_connection(u, id).await
    }
    async fn find_connection(
        &self,
        u: &UserId,
        p: &ProviderId,
        a: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.0.find_connection(u, p, a).await
    }
    async fn list_connections(
        &self,
        u: &UserId,
        p: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.0.list_connections(u, p).await
    }
    async fn update_status(
        &self,
        u: &UserId,
        id: ConnectionId,
        s: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.0.update_status(u, id, s).await
    }
    async fn update_metadata(
        &self,
        u: &UserId,
        id: ConnectionId,
        m: Value,
        e: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.0.update_metadata(u, id, m, e).await
    }
    async fn delete_connection(&self, u: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        self.0.delete_connection(u, id).await
    }
    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.0.referenced_secrets(refs).await
    }
}

// Every other concern goes to the real store.
#[async_trait]
impl AuditStore for FailingWrites {
    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.0.append_audit(event).await
    }
    async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.0.append_audit_batch(events).await
    }
    async fn list_audit(
        &self,
        user: &UserId,
        connection: Option<ConnectionId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.0.list_audit(user, connection, since, limit).await
    }
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.prune_audit(before).await
    }
    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.0.append_audit_and_outbox(event, outbox).await
    }
    async fn enqueue_webhook(&self, event: NewOutboxEvent) -> Result<(), StoreError> {
        self.0.enqueue_webhook(event).await
    }
    async fn claim_webhooks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.0.claim_webhooks(worker, now, lease_until, limit).await
    }
    async fn finish_webhook_attempt(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.0.finish_webhook_attempt(id, worker, outcome).await
    }
    async fn list_webhooks(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.0.list_webhooks(state, limit).await
    }
    async fn prune_webhooks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.prune_webhooks(before).await
    }
}

#[async_trait]
impl CheckStore for FailingWrites {
    async fn schedule_unscheduled_checks(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.schedule_unscheduled_checks(at).await
    }
    async fn claim_due_checks(
        &self,
        worker: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CheckClaim>, StoreError> {
        self.0
            .claim_due_checks(worker, due_before, now, lease_until, limit)
            .await
    }
    async fn finish_check(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError> {
        self.0
            .finish_check(id, worker, next_check_at, failures)
            .await
    }
    async fn record_credential_use(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        used_at: DateTime<Utc>,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.0
            .record_credential_use(id, mode, used_at, refresh_at)
            .await
    }
    async fn claim_due_refreshes(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        used_since: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RefreshClaim>, StoreError> {
        self.0
            .claim_due_refreshes(worker, now, used_since, lease_until, limit)
            .await
    }
    async fn finish_refresh(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.0.finish_refresh(id, mode, worker, refresh_at).await
    }
    async fn take_expiry_warnings(
        &self,
        warn_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.0.take_expiry_warnings(warn_before, limit).await
    }
}

#[async_trait]
impl OAuthStateStore for FailingWrites {
    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError> {
        self.0.put_oauth_state(state).await
    }
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        self.0.take_oauth_state(state_hash, now).await
    }
    async fn peek_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        self.0.peek_oauth_state(state_hash, now).await
    }
    async fn prune_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.prune_oauth_states(now).await
    }
}

#[async_trait]
impl SetupTaskStore for FailingWrites {
    async fn create_setup_task(&self, task: NewSetupTask) -> Result<SetupTaskRecord, StoreError> {
        self.0.create_setup_task(task).await
    }
    async fn get_setup_task(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.0.get_setup_task(user, id).await
    }
    async fn claim_setup_task(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.0
            .claim_setup_task(provider, worker, now, lease_until)
            .await
    }
    async fn renew_setup_lease(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.renew_setup_lease(id, worker, lease_until).await
    }
    async fn save_setup_progress(
        &self,
        id: uuid::Uuid,
        worker: &str,
        progress: SetupProgress,
    ) -> Result<bool, StoreError> {
        self.0.save_setup_progress(id, worker, progress).await
    }
    async fn finish_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: SetupOutcome,
    ) -> Result<bool, StoreError> {
        self.0.finish_setup_task(id, worker, outcome).await
    }
    async fn release_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError> {
        self.0
            .release_setup_task(id, worker, not_before, status_message)
            .await
    }
    async fn cancel_setup_tasks(
        &self,
        user: &UserId,
        provider: &ProviderId,
        connection: Option<ConnectionId>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.0
            .cancel_setup_tasks(user, provider, connection, reason)
            .await
    }
    async fn pending_without_live_task(
        &self,
        provider: &ProviderId,
        updated_before: DateTime<Utc>,
        after: Option<ConnectionId>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.0
            .pending_without_live_task(provider, updated_before, after, limit)
            .await
    }
    async fn prune_setup_tasks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.prune_setup_tasks(before).await
    }
}

#[async_trait]
impl PluginValueStore for FailingWrites {
    async fn get_or_create_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        self.0
            .get_or_create_plugin_value(provider, user, name, candidate)
            .await
    }
    async fn replace_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        new: &str,
    ) -> Result<String, StoreError> {
        self.0.replace_plugin_value(provider, user, name, new).await
    }
}

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

async fn failed_connect_leaves_nothing(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            wrap_store: Some(Box::new(|s| Arc::new(FailingWrites(s)) as Arc<dyn Store>)),
            ..Options::default()
        },
    )
    .await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "dependency_unavailable");
    // The secret written before the failed row write was removed again, and no row exists.
    let folder = SecretPath::user_provider_folder(
        &UserId::parse(&u).unwrap(),
        &ProviderId::from_static("scaleway"),
    );
    assert_eq!(
        app.platform.secrets().list(&folder).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(app
        .store
        .list_connections(&UserId::parse(&u).unwrap(), None)
        .await
        .unwrap()
        .is_empty());
    assert!(!app.db_dump().await.contains(&acct.secret_key));
}

const EXPIRING: &str = "testexpiring";

/// A stub provider whose credentials (`{"token": "<seed>-<n>"}`) expire `ttl` after issue; each
/// issue takes 200 ms, slow enough that concurrent callers pile up behind the first.
fn expiring(ttl: chrono::Duration) -> Arc<StubConnector> {
    StubConnector::builder(EXPIRING)
        .ttl(Some(ttl))
        .issue_delay(Duration::from_millis(200))
        .build()
}

async fn expiring_app(
    b: Backend,
    ttl: chrono::Duration,
) -> (TestApp, Arc<StubConnector>, String, String) {
    let conn = expiring(ttl);
    let app = TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            extra_connectors: vec![conn.clone()],
            ..Options::default()
        },
    )
    .await;
    let u = user();
    let (rec, created) = app
        .platform
        .connect(
            ConnectSpec {
                user: UserId::parse(&u).unwrap(),
                provider: ProviderId::from_static(EXPIRING),
                account_id: "acct-1".into(),
                display_name: None,
                read_only: false,
                metadata: json!({}),
                expires_at: None,
                status: ConnectionStatus::Active,
                secret: SecretValue::encode(&json!({"seed": "s33d"})).unwrap(),
            },
            Actor::User,
        )
        .await
        .unwrap();
    assert!(created);
    (app, conn, u, rec.id.to_string())
}

async fn concurrent_refreshes_share_one_provider_call(b: Backend) {
    let (app, conn, u, id) = expiring_app(b, chrono::Duration::hours(1)).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let req = app.credentials(&u, &id, "full");
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let v = t.await.unwrap();
        tokens.insert(v["credentials"]["token"].as_str().unwrap().to_owned());
        assert!(v["expiresAt"].is_string());
    }
    assert_eq!(conn.issue_calls(), 1, "exactly one provider call");
    assert_eq!(tokens.len(), 1);
    // Fresh in the cache: no further call.
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(conn.issue_calls(), 1);
    // Another mode is another cache entry.
    let resp = app.credentials(&u, &id, "read_only").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(conn.issue_calls(), 2);
}

async fn credentials_near_expiry_are_refreshed(b: Backend) {
    // Credentials that live 4 minutes are inside the 5-minute margin: every use refreshes.
    let (app, conn, u, id) = expiring_app(b, chrono::Duration::minutes(4)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let v: Value = app
            .credentials(&u, &id, "full")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.push(v["credentials"]["token"].as_str().unwrap().to_owned());
    }
    assert_eq!(conn.issue_calls(), 3);
    assert_eq!(seen, vec!["s33d-1", "s33d-2", "s33d-3"]);
    // The cache holds only ciphertext.
    let key = connector_core::broker::cache_key(id.parse().unwrap(), CredentialMode::ReadOnly);
    let _ = app.credentials(&u, &id, "read_only").send().await.unwrap();
    if let Some(raw) = app.platform.cache().get(&key).await.unwrap() {
        assert!(!String::from_utf8_lossy(&raw).contains("s33d"));
    }
}

async fn cached_credentials_are_encrypted(b: Backend) {
    let (app, _conn, u, id) = expiring_app(b, chrono::Duration::hours(1)).await;
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let key = connector_core::broker::cache_key(id.parse().unwrap(), CredentialMode::Full);
    let raw = app
        .platform
        .cache()
        .get(&key)
        .await
        .unwrap()
        .expect("cached");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains("s33d") && !text.contains("token"),
        "plaintext in the cache"
    );
}

both_backends!(
    failed_connect_leaves_nothing,
    concurrent_refreshes_share_one_provider_call,
    credentials_near_expiry_are_refreshed,
    cached_credentials_are_encrypted,
);

/// Redis down: requests still succeed from the secret store, and readiness says what is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_redis_down_still_serves() {
    if !aurora_testkit::servers_available("servers_redis_down_still_serves") {
        return;
    }
    let app = TestApp::spawn_with(
        Backend::Servers,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            redis_url: Some("redis://127.0.0.1:1".into()),
            ..Options::default()
        },
    )
    .await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a cache that is down does not fail readiness"
    );
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["checks"]["cache"], "unavailable");
    assert_eq!(r["checks"]["database"], "ok");
    assert_eq!(r["checks"]["secretStore"], "ok");

    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let resp = app
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
    for _ in 0..2 {
        let resp = app.credentials(&u, &id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["credentials"]["secretKey"], acct.secret_key);
    }
    let resp = app
        .delete(&u, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// OpenBao down: 503 dependency_unavailable, nothing half-written, readiness 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_openbao_down_answers_503() {
    if !aurora_testkit::servers_available("servers_openbao_down_answers_503") {
        return;
    }
    let mut bao = aurora_testkit::OpenBao::start().expect("start OpenBao");
    let app = TestApp::spawn_with(
        Backend::Servers,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            vault: Some((bao.addr.clone(), bao.token.clone())),
            ..Options::default()
        },
    )
    .await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    bao.stop();

    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "dependency_unavailable");
    assert!(app
        .store
        .list_connections(&UserId::parse(&u).unwrap(), None)
        .await
        .unwrap()
        .is_empty());

    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["status"], "unavailable");
    assert_eq!(r["checks"]["secretStore"], "unavailable");
    assert_eq!(r["checks"]["database"], "ok");
}

/// `host:port` of the test Redis.
fn redis_upstream() -> String {
    let url = aurora_testkit::redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    // Drop credentials, if any.
    host_port
        .rsplit_once('@')
        .map_or(host_port, |(_, h)| h)
        .to_owned()
}

/// One value of the gateway's `/metrics` (0 when the series is absent).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A warm credentials request for the Scaleway connection: 200 and the account's key.
async fn warm_scaleway(app: &TestApp, u: &str, id: &str, acct: &ScwAccount) {
    let resp = app.credentials(u, id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["credentials"]["secretKey"], acct.secret_key);
}

/// Redis accepts connections but never answers (a black hole): the circuit breaker opens, nothing
/// more reaches Redis while it is open, every warm credentials request still answers 200 with the
/// right credentials without calling the provider each time, and the breaker closes once Redis
/// answers again. Prints the warm credentials p50/p99 while Redis black-holes (measured, not
/// asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_black_hole_redis_opens_the_breaker() {
    if !aurora_testkit::servers_available("servers_black_hole_redis_opens_the_breaker") {
        return;
    }
    use aurora_testkit::{Relay, RelayMode};
    use std::time::Instant;

    let relay = Relay::start(&redis_upstream(), RelayMode::Forward)
        .await
        .unwrap();
    let expiring = expiring(chrono::Duration::hours(1));
    let app = TestApp::spawn_with(
        Backend::Servers,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            redis_url: Some(relay.redis_url()),
            settings: vec![
                // More requests than a minute's budget.
                ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN".into(), "0".into()),
                // Short open periods, so the test sees the breaker close soon after Redis is back.
                ("AURORA_REDIS_BREAKER_OPEN_MS".into(), "1000".into()),
                ("AURORA_REDIS_BREAKER_OPEN_MAX_MS".into(), "2000".into()),
            ],
            extra_connectors: vec![expiring.clone()],
            ..Options::default()
        },
    )
    .await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let resp = app
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
    let (exp, _) = app
        .platform
        .connect(
            ConnectSpec {
                user: UserId::parse(&u).unwrap(),
                provider: ProviderId::from_static(EXPIRING),
                account_id: "acct-bh".into(),
                display_name: None,
                read_only: false,
                metadata: json!({}),
                expires_at: None,
                status: ConnectionStatus::Active,
                secret: SecretValue::encode(&json!({"seed": "bh"})).unwrap(),
            },
            Actor::User,
        )
        .await
        .unwrap();
    let exp_id = exp.id.to_string();
    for _ in 0..2 {
        warm_scaleway(&app, &u, &id, &acct).await;
        let resp = app.credentials(&u, &exp_id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(expiring.issue_calls(), 1, "cached in Redis");
    assert_eq!(metric(&app, "aurora_cache_breaker_open").await, 0.0);

    // Black hole. Warm requests go on; the first ones wait for Redis's timeouts.
    relay.set(RelayMode::HoldAll);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        warm_scaleway(&app, &u, &id, &acct).await;
        if metric(&app, "aurora_cache_breaker_open").await == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never opened");
    }
    let m = app.platform.metrics();
    let skipped_at_open = m.cache_breaker_skipped.get();

    // 500 warm requests, timed. Every 50, the relay's counts: between two probes (half-open
    // calls, which are sent on purpose) nothing may reach Redis.
    let mut took = Vec::with_capacity(500);
    let mut clean_windows = 0;
    let mut window = (relay.counts(), m.cache_breaker_probes.get());
    for i in 1..=500 {
        let t = Instant::now();
        warm_scaleway(&app, &u, &id, &acct).await;
        took.push(t.elapsed());
        if i % 50 == 0 {
            let now = (relay.counts(), m.cache_breaker_probes.get());
            if now.1 == window.1 {
                assert_eq!(
                    now.0, window.0,
                    "Redis was reached while the breaker was open"
                );
                clean_windows += 1;
            }
            window = now;
        }
    }
    assert!(clean_windows > 0, "every window held a probe");
    assert!(m.cache_breaker_skipped.get() > skipped_at_open);
    assert_eq!(metric(&app, "aurora_cache_breaker_open").await, 1.0);
    took.sort();
    let pct = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)];
    println!(
        "warm credentials while Redis black-holes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} \
         requests ({clean_windows} of 10 windows without a probe)",
        pct(50).as_secs_f64() * 1e3,
        pct(99).as_secs_f64() * 1e3,
        took[took.len() - 1].as_secs_f64() * 1e3,
        took.len()
    );

    // A provider whose credentials need a call: one call for this outage, then the pinned copy.
    let calls = expiring.issue_calls();
    for _ in 0..20 {
        let resp = app.credentials(&u, &exp_id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["credentials"]["token"],
            format!("bh-{}", calls + 1),
            "one provider call, then the same credentials"
        );
    }
    assert_eq!(expiring.issue_calls(), calls + 1);

    // Redis back: a probe gets an answer and the breaker closes; the in-process tier returns once
    // the invalidation channel is heard again.
    relay.set(RelayMode::Forward);
    eventually(
        "the breaker to close",
        Duration::from_secs(60),
        async || {
            warm_scaleway(&app, &u, &id, &acct).await;
            metric(&app, "aurora_cache_breaker_open").await == 0.0
        },
    )
    .await;
    assert!(m.cache_breaker_probes.get() >= 1);
    eventually(
        "the in-process tier to come back",
        Duration::from_secs(30),
        async || app.platform.broker().local_tier_active(),
    )
    .await;
    warm_scaleway(&app, &u, &id, &acct).await;
}
