//! The connection lifecycle in the background (`connector-lifecycle`): a sweep of status checks over
//! thousands of connections against a stub provider, two schedulers on one database, statuses that
//! move on their own, refresh ahead of use, expiry warnings and retention.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Backend, Options, TestApp, INTERNAL_SECRET};
use aurora_testkit::{eventually, refused, unavailable, StubBuilder, StubConnector};
use chrono::Utc;
use connector_core::store::{AuditEvent, NewConnection, OAuthStateRecord};
use connector_core::{
    Actor, ConnectSpec, ConnectionId, ConnectionRecord, ConnectionStatus, ProviderId, SecretPath,
    SecretValue, UserId,
};
use connector_lifecycle::{Connectors, Housekeeping, LifecycleConfig, Scheduler, SweepReport};
use futures::StreamExt;
use serde_json::{json, Value};

const STUB: &str = "teststub";

/// A stub provider that answers a check in 20-50 ms (by account) as told per account, and counts
/// checks per account, in flight (and the most at once), and checks of an account that overlapped.
/// Its credentials (`{"token": "tok-<n>"}`) expire an hour after issue.
fn stub() -> Arc<StubConnector> {
    stub_builder().build()
}

/// [`stub`], with credentials of the first issue that expire `ttl` after it.
fn stub_with_first_ttl(ttl: chrono::Duration) -> Arc<StubConnector> {
    stub_builder().first_ttl(Some(ttl)).build()
}

fn stub_builder() -> StubBuilder {
    StubConnector::builder(STUB).validate_delay(|account| {
        Duration::from_millis(20 + (account.bytes().map(u64::from).sum::<u64>() % 31))
    })
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user() -> UserId {
    UserId::parse(&format!("user-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

fn stub_connectors(stub: &Arc<StubConnector>) -> Connectors {
    let mut c: Connectors = BTreeMap::new();
    c.insert(ProviderId::from_static(STUB), stub.clone());
    c
}

async fn app_with(b: Backend, stub: &Arc<StubConnector>, extra: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            extra_connectors: vec![stub.clone()],
            settings: settings(extra),
            ..Options::default()
        },
    )
    .await
}

/// A scheduler on `app`'s platform, configured from its settings.
fn scheduler(app: &TestApp, stub: &Arc<StubConnector>) -> Scheduler {
    let cfg = LifecycleConfig::from_settings(app.platform.settings()).unwrap();
    Scheduler::new(app.platform.clone(), stub_connectors(stub), cfg)
}

/// `n` connections of the stub provider spread over a few users, written straight to the store
/// (accounts `{prefix}-0…`), all sharing one stored secret. Returns the users and the records.
async fn seed(app: &TestApp, prefix: &str, n: usize) -> (Vec<UserId>, Vec<ConnectionRecord>) {
    let users: Vec<UserId> = (0..10).map(|_| user()).collect();
    let provider = ProviderId::from_static(STUB);
    let path = SecretPath::connection(&users[0], &provider, ConnectionId::new());
    app.platform
        .secrets()
        .put(&path, &SecretValue::encode(&json!({"key": "k"})).unwrap())
        .await
        .unwrap();
    let long_ago = Utc::now() - chrono::Duration::hours(2);
    let rows: Vec<NewConnection> = (0..n)
        .map(|i| NewConnection {
            id: ConnectionId::new(),
            user_id: users[i % users.len()].clone(),
            provider: provider.clone(),
            account_id: format!("{prefix}-{i}"),
            display_name: None,
            status: ConnectionStatus::Active,
            status_reason: None,
            read_only: false,
            secret_ref: path.as_str().to_owned(),
            metadata: json!({}),
            last_validated_at: Some(long_ago),
            expires_at: None,
        })
        .collect();
    let store = app.platform.store();
    let records: Vec<ConnectionRecord> = futures::stream::iter(rows)
        .map(|r| async move { store.upsert_connection(r).await.unwrap().0 })
        .buffer_unordered(16)
        .collect()
        .await;
    (users, records)
}

async fn statuses(app: &TestApp, users: &[UserId]) -> HashMap<String, ConnectionRecord> {
    let mut out = HashMap::new();
    for u in users {
        for c in app
            .platform
            .store()
            .list_connections(u, None)
            .await
            .unwrap()
        {
            out.insert(c.account_id.clone(), c);
        }
    }
    out
}

fn count(all: &HashMap<String, ConnectionRecord>, s: ConnectionStatus) -> usize {
    all.values().filter(|c| c.status == s).count()
}

const SWEEP_CONNECTIONS: usize = 3000;
const SWEEP_CONCURRENCY: usize = 24;

/// One sweep checks each of 3,000 due connections exactly once, within the concurrency bound, and
/// moves statuses as the stub answers; a later sweep retries the degraded ones after their
/// back-off, and they recover.
async fn a_sweep_checks_each_connection_once_within_the_bound(b: Backend) {
    let stub = stub();
    let concurrency = SWEEP_CONCURRENCY.to_string();
    let app = app_with(
        b,
        &stub,
        &[
            ("AURORA_LIFECYCLE_ENABLED", "false"),
            // Gentle on a PostgreSQL shared with other suites.
            ("AURORA_DATABASE_POOL_SIZE", "8"),
            ("AURORA_CHECK_CONCURRENCY", &concurrency),
            ("AURORA_CHECK_INTERVAL_SECS", "3600"),
            ("AURORA_CHECK_BACKOFF_SECS", "1"),
            ("AURORA_CHECK_BACKOFF_MAX_SECS", "1"),
        ],
    )
    .await;
    let seeded = Instant::now();
    let (users, records) = seed(&app, "acct", SWEEP_CONNECTIONS).await;
    let seed_ms = seeded.elapsed().as_millis();
    // One in ten meets a passing failure, one in ten a refusal.
    for i in 0..SWEEP_CONNECTIONS {
        match i % 10 {
            3 => stub.set_validate_for(&format!("acct-{i}"), unavailable()),
            7 => stub.set_validate_for(&format!("acct-{i}"), refused()),
            _ => {}
        }
    }
    let store = app.platform.store();
    assert_eq!(
        store
            .schedule_unscheduled_checks(Utc::now() - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        SWEEP_CONNECTIONS as u64
    );

    let s = scheduler(&app, &stub);
    let started = Instant::now();
    let r = s.sweep_checks().await;
    let took = started.elapsed();
    let max = stub.max_validate_in_flight();
    println!(
        "sweep [{b:?}]: {} connections (seeded in {seed_ms} ms); checked {} (active {}, degraded {}, \
         needs_reconnect {}, errors {}); provider calls {}; max concurrent {max} (bound {}); \
         took {} ms",
        SWEEP_CONNECTIONS,
        r.checked,
        r.active,
        r.degraded,
        r.needs_reconnect,
        r.errors,
        stub.validate_calls(),
        SWEEP_CONCURRENCY,
        took.as_millis()
    );
    assert_eq!(r.checked, SWEEP_CONNECTIONS);
    assert_eq!(
        (r.active, r.degraded, r.needs_reconnect, r.errors, r.skipped),
        (2400, 300, 300, 0, 0)
    );
    assert_eq!(r.lost_leases, 0);
    assert_eq!(stub.validate_calls(), SWEEP_CONNECTIONS);
    for i in 0..SWEEP_CONNECTIONS {
        assert_eq!(stub.validate_calls_of(&format!("acct-{i}")), 1, "acct-{i}");
    }
    assert_eq!(stub.validate_overlaps(), 0);
    assert!(max <= SWEEP_CONCURRENCY, "{max} calls at once");
    assert!(max > 1, "the sweep ran checks concurrently");

    let all = statuses(&app, &users).await;
    assert_eq!(count(&all, ConnectionStatus::Active), 2400);
    assert_eq!(count(&all, ConnectionStatus::Degraded), 300);
    assert_eq!(count(&all, ConnectionStatus::NeedsReconnect), 300);
    let degraded = &all["acct-3"];
    assert_eq!(degraded.status, ConnectionStatus::Degraded);
    assert!(degraded.status_reason.as_deref().unwrap().contains("503"));
    assert!(degraded.last_validated_at.unwrap() > records[0].last_validated_at.unwrap());
    let refused = &all["acct-7"];
    assert_eq!(refused.status, ConnectionStatus::NeedsReconnect);
    assert!(refused
        .status_reason
        .as_deref()
        .unwrap()
        .contains("refused"));
    // The credentials are kept for the user's reconnect.
    let path = SecretPath::from_stored(&refused.secret_ref).unwrap();
    assert!(app.platform.secrets().get(&path).await.unwrap().is_some());
    let audit = store
        .list_audit(&refused.user_id, Some(refused.id), None, 10)
        .await
        .unwrap();
    assert_eq!(audit[0].action, "status_changed");
    assert_eq!(audit[0].actor, "system");
    assert_eq!(audit[0].detail["to"], "needs_reconnect");

    // The degraded ones recover; after their back-off a second sweep checks only them.
    for i in (3..SWEEP_CONNECTIONS).step_by(10) {
        stub.set_validate_for(&format!("acct-{i}"), Ok(()));
    }
    // Not synchronization: the back-off (1 s, from the end of each check of the first sweep) is
    // real time on the schedule's clock, and the store offers no look at it without claiming; a
    // sweep that polled for it could claim only the first of them.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let started = Instant::now();
    let r2 = s.sweep_checks().await;
    println!(
        "sweep 2 [{b:?}]: checked {} (active {}), took {} ms",
        r2.checked,
        r2.active,
        started.elapsed().as_millis()
    );
    assert_eq!((r2.checked, r2.active), (300, 300));
    assert_eq!(stub.validate_calls(), SWEEP_CONNECTIONS + 300);
    assert_eq!(stub.validate_calls_of("acct-3"), 2);
    assert_eq!(
        stub.validate_calls_of("acct-7"),
        1,
        "needs_reconnect is off the schedule"
    );
    assert_eq!(
        stub.validate_calls_of("acct-0"),
        1,
        "active: next check an interval later"
    );
    let all = statuses(&app, &users).await;
    assert_eq!(count(&all, ConnectionStatus::Active), 2700);
    assert_eq!(all["acct-3"].status_reason, None);
    assert_eq!(s.sweep_checks().await.checked, 0, "nothing else is due");

    // A reconnect puts a needs_reconnect connection back on the schedule.
    let (rec, created) = app
        .platform
        .connect(
            ConnectSpec {
                user: refused.user_id.clone(),
                provider: ProviderId::from_static(STUB),
                account_id: refused.account_id.clone(),
                display_name: None,
                read_only: false,
                metadata: json!({}),
                expires_at: None,
                status: ConnectionStatus::Active,
                secret: SecretValue::encode(&json!({"key": "new"})).unwrap(),
            },
            Actor::User,
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(rec.id, refused.id);
    assert_eq!(s.schedule_new().await.unwrap(), 1);
}

/// Two schedulers (two gateways on one database) share a sweep: every connection is checked once,
/// never by both at once; a lease left by a dead replica is taken over when it lapses.
async fn two_schedulers_never_check_a_connection_twice(b: Backend) {
    let stub = stub();
    let opts = [
        ("AURORA_LIFECYCLE_ENABLED", "false"),
        ("AURORA_DATABASE_POOL_SIZE", "6"),
        ("AURORA_CHECK_CONCURRENCY", "8"),
        ("AURORA_CHECK_INTERVAL_SECS", "3600"),
    ];
    let first = app_with(b, &stub, &opts).await;
    let mut second_settings = first.backend_settings();
    second_settings.extend(settings(&opts));
    let second = TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            extra_connectors: vec![stub.clone()],
            settings: second_settings,
            ..Options::default()
        },
    )
    .await;
    let (_users, records) = seed(&first, "acct", 400).await;
    let store = first.platform.store();
    store
        .schedule_unscheduled_checks(Utc::now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let (s1, s2) = (scheduler(&first, &stub), scheduler(&second, &stub));
    let (r1, r2) = tokio::join!(s1.sweep_checks(), s2.sweep_checks());
    println!(
        "two schedulers [{b:?}]: {} + {} checks",
        r1.checked, r2.checked
    );
    assert_eq!(r1.checked + r2.checked, 400);
    assert!(r1.checked > 0 && r2.checked > 0, "both took a share");
    assert_eq!(stub.validate_overlaps(), 0);
    for c in &records {
        assert_eq!(stub.validate_calls_of(&c.account_id), 1);
    }

    // A replica claims checks and dies: nobody checks them until the lease lapses.
    let (_, more) = seed(&first, "late", 20).await;
    let now = Utc::now();
    store
        .schedule_unscheduled_checks(now - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let dead = store
        .claim_due_checks(
            "dead-replica",
            now,
            now,
            now + chrono::Duration::seconds(2),
            100,
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 20);
    assert_eq!(s2.sweep_checks().await.checked, 0);
    // The leases lapse together: sweep until one takes them over, never before they lapsed.
    let lapse = now + chrono::Duration::seconds(2);
    let mut r = SweepReport::default();
    eventually(
        "the lapsed leases to be taken over",
        Duration::from_secs(4),
        async || {
            r = s2.sweep_checks().await;
            if r.checked > 0 {
                assert!(Utc::now() >= lapse, "taken over before the lease lapsed");
            }
            r.checked > 0
        },
    )
    .await;
    assert_eq!(r.checked, 20, "the lapsed leases were taken over");
    for c in &more {
        assert_eq!(stub.validate_calls_of(&c.account_id), 1);
    }
    assert!(!store
        .finish_check(more[0].id, "dead-replica", Utc::now(), 0)
        .await
        .unwrap());
}

/// With the gateway's own jobs on short intervals, a connection goes `degraded`, back to `active`
/// and to `needs_reconnect` without anyone asking, and a reconnect brings it back to the schedule.
async fn statuses_move_on_their_own(b: Backend) {
    let stub = stub();
    let app = app_with(
        b,
        &stub,
        &[
            ("AURORA_CHECK_INTERVAL_SECS", "1"),
            ("AURORA_CHECK_POLL_SECS", "1"),
            ("AURORA_CHECK_BACKOFF_SECS", "1"),
            ("AURORA_CHECK_BACKOFF_MAX_SECS", "2"),
        ],
    )
    .await;
    let u = user();
    let spec = || ConnectSpec {
        user: u.clone(),
        provider: ProviderId::from_static(STUB),
        account_id: "acct-x".into(),
        display_name: None,
        read_only: false,
        metadata: json!({}),
        expires_at: None,
        status: ConnectionStatus::Active,
        secret: SecretValue::encode(&json!({"key": "k"})).unwrap(),
    };
    let (rec, _) = app.platform.connect(spec(), Actor::User).await.unwrap();
    let status = || {
        let store = app.platform.store();
        let u = u.clone();
        async move { store.get_connection(&u, rec.id).await.unwrap().unwrap() }
    };
    stub.set_validate_for("acct-x", unavailable());
    eventually("degraded", Duration::from_secs(15), async || {
        status().await.status == ConnectionStatus::Degraded
    })
    .await;
    stub.set_validate_for("acct-x", Ok(()));
    eventually("active again", Duration::from_secs(15), async || {
        status().await.status == ConnectionStatus::Active
    })
    .await;
    stub.set_validate_for("acct-x", refused());
    eventually("needs_reconnect", Duration::from_secs(15), async || {
        status().await.status == ConnectionStatus::NeedsReconnect
    })
    .await;
    let c = status().await;
    assert!(app
        .platform
        .secrets()
        .get(&SecretPath::from_stored(&c.secret_ref).unwrap())
        .await
        .unwrap()
        .is_some());
    // Off the schedule: no more calls while it waits for the user.
    let calls = stub.validate_calls_of("acct-x");
    // Not synchronization: nothing may happen here, so the test watches for two and a half check
    // intervals (polls every second) and then counts.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(stub.validate_calls_of("acct-x"), calls);
    // The user reconnects; the scheduler checks it again.
    stub.set_validate_for("acct-x", Ok(()));
    app.platform.connect(spec(), Actor::User).await.unwrap();
    eventually(
        "a check after the reconnect",
        Duration::from_secs(15),
        async || stub.validate_calls_of("acct-x") > calls,
    )
    .await;
    let actions: Vec<String> = app
        .platform
        .store()
        .list_audit(&u, Some(rec.id), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "status_changed")
        .map(|e| format!("{}>{}", e.detail["from"], e.detail["to"]).replace('"', ""))
        .collect();
    // Newest first: refused after recovering after degrading.
    let expected = [
        "active>needs_reconnect",
        "degraded>active",
        "active>degraded",
    ];
    assert!(
        actions.starts_with(&expected.map(String::from)),
        "{actions:?}"
    );
}

/// Credentials used lately are refreshed by the scheduler as they enter the broker's refresh
/// margin, without a caller: the next caller gets the fresh ones from the cache.
async fn credentials_are_refreshed_ahead_of_use(b: Backend) {
    let margin = chrono::Duration::from_std(connector_core::broker::REFRESH_MARGIN).unwrap();
    let stub = stub_with_first_ttl(margin + chrono::Duration::seconds(3));
    let app = app_with(b, &stub, &[("AURORA_CHECK_POLL_SECS", "1")]).await;
    let u = user();
    let (rec, _) = app
        .platform
        .connect(
            ConnectSpec {
                user: u.clone(),
                provider: ProviderId::from_static(STUB),
                account_id: "acct-r".into(),
                display_name: None,
                read_only: false,
                metadata: json!({}),
                expires_at: None,
                status: ConnectionStatus::Active,
                secret: SecretValue::encode(&json!({"key": "k"})).unwrap(),
            },
            Actor::User,
        )
        .await
        .unwrap();
    let id = rec.id.to_string();
    let get = || async {
        let resp = app
            .credentials(u.as_str(), &id, "full")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["credentials"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(get().await, "tok-1");
    assert_eq!(get().await, "tok-1", "cached");
    assert_eq!(stub.issue_calls(), 1);
    // Due 4 s after the issue; the scheduler polls every second.
    eventually(
        "the refresh ahead of use",
        Duration::from_secs(15),
        async || stub.issue_calls() >= 2,
    )
    .await;
    assert_eq!(
        get().await,
        "tok-2",
        "the caller gets the refreshed credentials"
    );
    // Not synchronization: no second refresh may come, so the test watches for one and a half
    // scheduler polls and then counts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stub.issue_calls(), 2, "one refresh, and none by the caller");
}

/// An `expiry_warning` audit line once per connection and `expiresAt` value; retention prunes old
/// audit lines and expired OAuth states.
async fn expiry_warnings_once_and_retention_prunes(b: Backend) {
    let stub = stub();
    let app = app_with(
        b,
        &stub,
        &[
            ("AURORA_LIFECYCLE_ENABLED", "false"),
            ("AURORA_EXPIRY_WARNING_DAYS", "14"),
            ("AURORA_AUDIT_RETENTION_DAYS", "90"),
        ],
    )
    .await;
    let u = user();
    let days = chrono::Duration::days;
    let connect = |account: &str, expires_at| ConnectSpec {
        user: u.clone(),
        provider: ProviderId::from_static(STUB),
        account_id: account.into(),
        display_name: None,
        read_only: false,
        metadata: json!({}),
        expires_at,
        status: ConnectionStatus::Active,
        secret: SecretValue::encode(&json!({"key": "k"})).unwrap(),
    };
    let soon = Utc::now() + days(3);
    let (ending, _) = app
        .platform
        .connect(connect("ending", Some(soon)), Actor::User)
        .await
        .unwrap();
    let (far, _) = app
        .platform
        .connect(connect("far", Some(Utc::now() + days(40))), Actor::User)
        .await
        .unwrap();
    // An audit line past retention, one inside it, and an expired OAuth state.
    for age in [days(100), days(1)] {
        app.platform
            .store()
            .append_audit(AuditEvent {
                id: uuid::Uuid::new_v4(),
                user_id: u.clone(),
                connection_id: None,
                provider: None,
                action: format!("old_{}", age.num_days()),
                actor: "system".into(),
                detail: json!({}),
                created_at: Utc::now() - age,
            })
            .await
            .unwrap();
    }
    app.platform
        .store()
        .put_oauth_state(OAuthStateRecord {
            state_hash: "expired-state".into(),
            user_id: u.clone(),
            provider: ProviderId::from_static("gcp"),
            sealed_verifier: vec![0; 8],
            redirect_uri: "http://localhost/cb".into(),
            created_at: Utc::now() - chrono::Duration::hours(1),
            expires_at: Utc::now() - chrono::Duration::minutes(1),
        })
        .await
        .unwrap();

    let cfg = LifecycleConfig::from_settings(app.platform.settings()).unwrap();
    let hk = Housekeeping::new(app.platform.clone(), cfg);
    let r = hk.run_once().await;
    assert_eq!(r.expiry_warnings, 1);
    assert_eq!(r.audit_pruned, 1);
    assert_eq!(r.oauth_states_pruned, 1);
    assert_eq!(hk.run_once().await.expiry_warnings, 0, "once per value");

    let warnings = |c: ConnectionId| {
        let store = app.platform.store();
        let u = u.clone();
        async move {
            store
                .list_audit(&u, Some(c), None, 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "expiry_warning")
                .collect::<Vec<_>>()
        }
    };
    let w = warnings(ending.id).await;
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].actor, "system");
    let warned: chrono::DateTime<Utc> =
        serde_json::from_value(w[0].detail["expiresAt"].clone()).unwrap();
    assert!((warned - soon).num_milliseconds().abs() < 1);
    assert!(warnings(far.id).await.is_empty());
    // Through the API, as the owner reads it.
    let resp = app
        .get(
            u.as_str(),
            &format!("/api/audit?connectionId={}", ending.id),
        )
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let listed: Value = resp.json().await.unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "expiry_warning"));
    // The provider reports a new end date (a rotated secret): warned again, once.
    app.platform
        .update_metadata(&u, ending.id, json!({}), Some(Utc::now() + days(10)))
        .await
        .unwrap();
    assert_eq!(hk.run_once().await.expiry_warnings, 1);
    assert_eq!(hk.run_once().await.expiry_warnings, 0);
    assert_eq!(warnings(ending.id).await.len(), 2);

    let kept: Vec<String> = app
        .platform
        .store()
        .list_audit(&u, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(kept.contains(&"old_1".to_string()), "{kept:?}");
    assert!(!kept.contains(&"old_100".to_string()), "{kept:?}");
}

both_backends!(
    a_sweep_checks_each_connection_once_within_the_bound,
    two_schedulers_never_check_a_connection_twice,
    statuses_move_on_their_own,
    credentials_are_refreshed_ahead_of_use,
    expiry_warnings_once_and_retention_prunes,
);
