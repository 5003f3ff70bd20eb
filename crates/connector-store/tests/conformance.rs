//! Conformance suite of `SqlStore`: one set of test bodies, run against SQLite and PostgreSQL.
//!
//! PostgreSQL comes from `AURORA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema, dropped at the end. An unreachable server fails the tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};
use connector_core::store::prelude::*;
use connector_core::store::{AuditEvent, NewConnection, OAuthStateRecord, StatusUpdate};
use connector_core::store::{NewSetupTask, SetupOutcome, SetupProgress, SetupState};
use connector_store::{DbConfig, SqlStore};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

// ---------------------------------------------------------------------------------------------
// Harnesses
// ---------------------------------------------------------------------------------------------

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { base_url: String, schema: String },
}

struct Harness {
    store: Arc<SqlStore>,
    cleanup: Cleanup,
}

impl Harness {
    /// Runs `case` on the store, then cleans up (also when the case panics), then re-raises.
    async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<SqlStore>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(case(Arc::clone(&self.store))).await;
        drop(self.store);
        if let Cleanup::Postgres { base_url, schema } = &self.cleanup {
            if let Ok(mut c) = AsyncPgConnection::establish(base_url).await {
                let _ = c
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        }
        drop(self.cleanup);
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn migrated(store: SqlStore) -> Arc<SqlStore> {
    let applied = store.migrate().await.expect("first migrate");
    assert!(
        !applied.is_empty(),
        "a fresh database has migrations to apply"
    );
    Arc::new(store)
}

async fn sqlite_harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    // A nested path checks that `connect` creates the parent directory.
    let path = dir.path().join("nested").join("aurora.db");
    let store = SqlStore::connect(&DbConfig::Sqlite { path })
        .await
        .expect("open SQLite");
    assert_eq!(store.backend_name(), "sqlite");
    Harness {
        store: migrated(store).await,
        cleanup: Cleanup::Sqlite(dir),
    }
}

fn pg_base_url() -> String {
    std::env::var("AURORA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn pg_harness() -> Harness {
    let base_url = pg_base_url();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = tokio::time::timeout(
        Duration::from_secs(10),
        AsyncPgConnection::establish(&base_url),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "PostgreSQL did not answer within 10 s (AURORA_TEST_DATABASE_URL or the default \
             postgres://postgres@127.0.0.1:5432/test); the postgres conformance tests need it"
        )
    })
    .unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is unreachable (AURORA_TEST_DATABASE_URL or the default \
             postgres://postgres@127.0.0.1:5432/test); the postgres conformance tests need it: {e}"
        )
    });
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the test schema");
    drop(admin);
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{sep}options=-csearch_path%3D{schema}");
    let store = SqlStore::connect(&DbConfig::Postgres { url, pool_size: 4 })
        .await
        .expect("build the PostgreSQL pool");
    assert_eq!(store.backend_name(), "postgres");
    Harness {
        store: migrated(store).await,
        cleanup: Cleanup::Postgres { base_url, schema },
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::sqlite_harness()
                        .await
                        .run(|s| async move { super::cases::$name(&s).await })
                        .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !aurora_testkit::servers_available("postgres") {
                        return;
                    }
                    super::pg_harness()
                        .await
                        .run(|s| async move { super::cases::$name(&s).await })
                        .await;
                }
            )*
        }
    };
}

conformance!(
    ping_answers,
    migrate_twice_applies_nothing_the_second_time,
    upsert_inserts_then_updates_in_place,
    referenced_secrets_are_the_rows_paths,
    unique_per_user_provider_account_and_multi_account,
    other_users_rows_behave_as_absent,
    list_filters_by_provider_and_orders_by_creation,
    updates_change_fields_and_return_none_when_missing,
    delete_returns_true_then_false,
    duplicate_id_is_a_conflict,
    audit_append_list_filters_limit_prune,
    audit_batch_append,
    oauth_state_is_taken_once,
    oauth_state_expired_is_none_and_deleted,
    oauth_state_concurrent_takes_yield_one,
    plugin_value_get_or_create_is_stable_and_replaces,
    plugin_value_concurrent_creates_agree,
    timestamps_round_trip_in_utc,
    dump_text_holds_written_values,
    setup_task_create_get_is_owner_scoped,
    setup_task_claim_leases_and_lapsed_lease_is_taken_over,
    setup_task_progress_never_goes_down_and_finish_is_final,
    setup_task_release_backs_off,
    setup_task_cancel_scopes_and_fences_the_worker,
    setup_task_concurrent_claims_yield_one,
    checks_schedule_claim_finish_and_take_over,
    checks_are_claimed_oldest_due_first,
    upsert_resets_the_check_schedule,
    checks_concurrent_claims_take_each_once,
    credential_use_drives_refresh_claims,
    expiry_warnings_are_taken_once_per_value,
    prune_oauth_states_and_finished_setup_tasks,
    webhook_enqueue_with_audit_is_one_transaction,
    webhook_claim_leases_retries_and_fences,
    webhook_prune_removes_only_old_delivered,
    webhook_concurrent_claims_take_each_once,
);

/// A store whose PostgreSQL server does not exist answers `Unavailable`, promptly.
/// Replicas starting at once on a fresh PostgreSQL schema: every migration is applied exactly once,
/// and none of them fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_on_postgres_apply_once() {
    let base_url = pg_base_url();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&base_url)
        .await
        .expect("PostgreSQL is required (AURORA_TEST_DATABASE_URL)");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the test schema");
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{sep}options=-csearch_path%3D{schema}");
    let mut stores = Vec::new();
    for _ in 0..4 {
        let cfg = DbConfig::Postgres {
            url: url.clone(),
            pool_size: 1,
        };
        stores.push(SqlStore::connect(&cfg).await.expect("pool"));
    }
    let results = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the test schema");
    let applied: Vec<Vec<String>> = results
        .into_iter()
        .map(|r| r.expect("every replica's migrate succeeds"))
        .collect();
    let mut all: Vec<&String> = applied.iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "a migration ran twice: {applied:?}");
    assert!(total >= 3, "{applied:?}");
    assert_eq!(
        applied.iter().filter(|a| !a.is_empty()).count(),
        1,
        "one replica migrates, the others find nothing pending: {applied:?}"
    );
}

#[tokio::test]
async fn closed_port_is_unavailable_promptly() {
    let store = SqlStore::connect(&DbConfig::Postgres {
        url: "postgres://postgres@127.0.0.1:1/test".into(),
        pool_size: 2,
    })
    .await
    .expect("building the pool does not connect");
    let started = Instant::now();
    let err = store.ping().await.expect_err("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let err = store.migrate().await.expect_err("nor can it migrate");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn sqlite_in_an_unwritable_place_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    // The parent "directory" is a regular file.
    let res = SqlStore::connect(&DbConfig::Sqlite {
        path: file.join("aurora.db"),
    })
    .await;
    assert!(res.is_err());
}

/// The migration that replaced `external_ids` with `plugin_values` carries every row over (provider
/// `aws`, name `external_id`, a rotation's time as `updated_at`), and its down migration brings them
/// back. SQLite; the PostgreSQL migration is the same SQL.
#[tokio::test]
async fn sqlite_migration_moves_external_ids_to_plugin_values() {
    use diesel::connection::SimpleConnection as _;
    use diesel::{Connection as _, RunQueryDsl as _, SqliteConnection};
    use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("aurora.db");
    let source = || {
        FileBasedMigrations::from_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/sqlite"
        ))
        .expect("the SQLite migrations")
    };
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).expect("open SQLite");
    for m in c.pending_migrations(source()).expect("pending") {
        if m.name().to_string().ends_with("_plugin_values") {
            break;
        }
        c.run_migration(&*m).expect("an earlier migration");
    }
    c.batch_execute(
        "INSERT INTO external_ids (user_id, external_id, created_at, rotated_at) VALUES \
         ('alice', 'sec1-alice', '2026-01-01 00:00:00', NULL), \
         ('bob', 'sec1-bob', '2026-01-01 00:00:00', '2026-02-01 00:00:00')",
    )
    .expect("rows of the old table");
    drop(c);

    let store = SqlStore::connect(&DbConfig::Sqlite { path: path.clone() })
        .await
        .expect("open SQLite");
    let applied = store.migrate().await.expect("migrate");
    assert!(
        applied.iter().any(|m| m.ends_with("_plugin_values")),
        "{applied:?}"
    );
    let aws = ProviderId::parse("aws").unwrap();
    for (u, v) in [("alice", "sec1-alice"), ("bob", "sec1-bob")] {
        let u = UserId::parse(u).unwrap();
        assert_eq!(
            store
                .get_or_create_plugin_value(&aws, &u, "external_id", "sec1-new")
                .await
                .unwrap(),
            v
        );
    }
    let dump = store.dump_text().await.unwrap();
    assert!(
        dump.contains("updated_at=2026-02-01 00:00:00"),
        "a rotation's time is kept: {dump}"
    );
    drop(store);

    // Down: the rows go back, a value never replaced without a rotation time.
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).expect("open SQLite");
    c.revert_last_migration(source()).expect("revert");
    let rows: Vec<(String, String, Option<String>)> = diesel::sql_query(
        "SELECT user_id, external_id, CAST(rotated_at AS TEXT) AS rotated_at \
         FROM external_ids ORDER BY user_id",
    )
    .load::<ExternalIdText>(&mut c)
    .expect("the old table again")
    .into_iter()
    .map(|r| (r.user_id, r.external_id, r.rotated_at))
    .collect();
    assert_eq!(
        rows,
        vec![
            ("alice".into(), "sec1-alice".into(), None),
            (
                "bob".into(),
                "sec1-bob".into(),
                Some("2026-02-01 00:00:00".into())
            ),
        ]
    );
}

#[derive(diesel::QueryableByName)]
struct ExternalIdText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    external_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    rotated_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Test bodies
// ---------------------------------------------------------------------------------------------

mod cases {
    pub use super::lifecycle_cases::*;
    pub use super::outbox_cases::*;
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn provider(s: &str) -> ProviderId {
        ProviderId::parse(s).unwrap()
    }

    fn at(secs: i64, micros: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, micros * 1000).unwrap()
    }

    fn new_conn(u: &UserId, p: &str, account: &str) -> NewConnection {
        NewConnection {
            id: ConnectionId::new(),
            user_id: u.clone(),
            provider: provider(p),
            account_id: account.to_owned(),
            display_name: Some(format!("{p} {account}")),
            status: ConnectionStatus::Active,
            status_reason: None,
            read_only: false,
            secret_ref: format!("users/{u}/{p}/{account}"),
            metadata: serde_json::json!({ "region": "fr-par" }),
            last_validated_at: Some(at(1_700_000_000, 1)),
            expires_at: None,
        }
    }

    fn event(u: &UserId, conn: Option<ConnectionId>, action: &str, t: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: u.clone(),
            connection_id: conn,
            provider: Some(provider("aws")),
            action: action.to_owned(),
            actor: "user".to_owned(),
            detail: serde_json::json!({ "action": action }),
            created_at: t,
        }
    }

    fn oauth(hash: &str, expires_at: DateTime<Utc>) -> OAuthStateRecord {
        OAuthStateRecord {
            state_hash: hash.to_owned(),
            user_id: user("alice"),
            provider: provider("gcp"),
            sealed_verifier: vec![0, 1, 2, 250, 255],
            redirect_uri: "https://app.example/callback".to_owned(),
            created_at: at(1_700_000_000, 0),
            expires_at,
        }
    }

    pub async fn ping_answers(s: &SqlStore) {
        s.ping().await.unwrap();
    }

    pub async fn migrate_twice_applies_nothing_the_second_time(s: &SqlStore) {
        // The harness migrated once already.
        assert_eq!(s.migrate().await.unwrap(), Vec::<String>::new());
        assert_eq!(s.migrate().await.unwrap(), Vec::<String>::new());
    }

    /// Which secret paths rows reference, across users: what the reconciler keeps.
    pub async fn referenced_secrets_are_the_rows_paths(s: &SqlStore) {
        let (u1, u2) = (user("ref-a"), user("ref-b"));
        let a = new_conn(&u1, "scaleway", "org-1");
        let b = new_conn(&u2, "aws", "123456789012");
        s.upsert_connection(a.clone()).await.unwrap();
        s.upsert_connection(b.clone()).await.unwrap();
        let orphan = format!("users/{u1}/scaleway/not-a-row");
        let asked: Vec<String> = vec![a.secret_ref.clone(), b.secret_ref.clone(), orphan.clone()];
        let found = s.referenced_secrets(&asked).await.unwrap();
        assert_eq!(found.len(), 2);
        assert!(found.contains(&a.secret_ref) && found.contains(&b.secret_ref));
        assert!(!found.contains(&orphan));
        assert!(s.referenced_secrets(&[]).await.unwrap().is_empty());
        // More paths than one chunk of the query.
        let many: Vec<String> = (0..1200)
            .map(|i| format!("users/{u1}/x/{i}"))
            .chain([b.secret_ref.clone()])
            .collect();
        let found = s.referenced_secrets(&many).await.unwrap();
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![b.secret_ref.clone()]
        );
    }

    pub async fn upsert_inserts_then_updates_in_place(s: &SqlStore) {
        let u = user("alice");
        let first = new_conn(&u, "scaleway", "org-1");
        let (a, inserted) = s.upsert_connection(first.clone()).await.unwrap();
        assert!(inserted);
        assert_eq!(a.id, first.id);
        assert_eq!(a.user_id, u);
        assert_eq!(a.account_id, "org-1");
        assert_eq!(a.status, ConnectionStatus::Active);
        assert_eq!(a.metadata, first.metadata);
        assert_eq!(a.created_at, a.updated_at);
        assert_eq!(s.get_connection(&u, a.id).await.unwrap(), Some(a.clone()));

        // Not synchronization: the clock must move so the timestamps differ.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = NewConnection {
            id: ConnectionId::new(),
            display_name: None,
            status: ConnectionStatus::Pending,
            status_reason: Some("validating".into()),
            read_only: true,
            secret_ref: "users/alice/scaleway/org-1-v2".into(),
            metadata: serde_json::json!({ "region": "nl-ams", "n": [1, 2] }),
            last_validated_at: None,
            expires_at: Some(at(1_800_000_000, 42)),
            ..first.clone()
        };
        let (b, inserted) = s.upsert_connection(second.clone()).await.unwrap();
        assert!(!inserted);
        assert_eq!(b.id, a.id, "the existing id is kept");
        assert_eq!(b.created_at, a.created_at, "created_at is kept");
        assert!(b.updated_at > a.updated_at, "updated_at moves");
        assert_eq!(b.display_name, None);
        assert_eq!(b.status, ConnectionStatus::Pending);
        assert_eq!(b.status_reason.as_deref(), Some("validating"));
        assert!(b.read_only);
        assert_eq!(
            b.secret_ref, a.secret_ref,
            "the secret path is kept: a connect that lost the insert race moves its secret there"
        );
        assert_eq!(b.metadata, second.metadata);
        assert_eq!(b.last_validated_at, None);
        assert_eq!(b.expires_at, second.expires_at);
        assert_eq!(s.get_connection(&u, a.id).await.unwrap(), Some(b.clone()));
        assert_eq!(s.get_connection(&u, second.id).await.unwrap(), None);
        assert_eq!(s.list_connections(&u, None).await.unwrap().len(), 1);

        // Re-upserting with the row's own id is an update too.
        let third = NewConnection { id: a.id, ..second };
        let (c, inserted) = s.upsert_connection(third).await.unwrap();
        assert!(!inserted);
        assert_eq!(c.id, a.id);
    }

    pub async fn unique_per_user_provider_account_and_multi_account(s: &SqlStore) {
        let alice = user("alice");
        let bob = user("bob");
        let (a1, i1) = s
            .upsert_connection(new_conn(&alice, "aws", "111"))
            .await
            .unwrap();
        let (a2, i2) = s
            .upsert_connection(new_conn(&alice, "aws", "222"))
            .await
            .unwrap();
        let (a3, i3) = s
            .upsert_connection(new_conn(&alice, "gcp", "111"))
            .await
            .unwrap();
        let (b1, i4) = s
            .upsert_connection(new_conn(&bob, "aws", "111"))
            .await
            .unwrap();
        assert!(i1 && i2 && i3 && i4);
        let ids = [a1.id, a2.id, a3.id, b1.id];
        for (i, x) in ids.iter().enumerate() {
            for y in &ids[i + 1..] {
                assert_ne!(x, y);
            }
        }
        let (again, inserted) = s
            .upsert_connection(new_conn(&alice, "aws", "222"))
            .await
            .unwrap();
        assert!(!inserted);
        assert_eq!(again.id, a2.id);
        assert_eq!(s.list_connections(&alice, None).await.unwrap().len(), 3);
        assert_eq!(s.list_connections(&bob, None).await.unwrap().len(), 1);
        let found = s
            .find_connection(&alice, &provider("aws"), "222")
            .await
            .unwrap()
            .expect("found");
        assert_eq!(found.id, a2.id);
        assert_eq!(
            s.find_connection(&alice, &provider("aws"), "333")
                .await
                .unwrap(),
            None
        );
    }

    pub async fn other_users_rows_behave_as_absent(s: &SqlStore) {
        let alice = user("alice");
        let bob = user("bob");
        let (a, _) = s
            .upsert_connection(new_conn(&alice, "aws", "111"))
            .await
            .unwrap();
        assert_eq!(s.get_connection(&bob, a.id).await.unwrap(), None);
        assert_eq!(
            s.find_connection(&bob, &provider("aws"), "111")
                .await
                .unwrap(),
            None
        );
        assert!(s.list_connections(&bob, None).await.unwrap().is_empty());
        assert!(s
            .list_connections(&bob, Some(&provider("aws")))
            .await
            .unwrap()
            .is_empty());
        let upd = StatusUpdate {
            status: ConnectionStatus::NeedsReconnect,
            status_reason: Some("x".into()),
            last_validated_at: None,
        };
        assert_eq!(s.update_status(&bob, a.id, upd).await.unwrap(), None);
        assert_eq!(
            s.update_metadata(&bob, a.id, serde_json::json!({"x": 1}), None)
                .await
                .unwrap(),
            None
        );
        assert!(!s.delete_connection(&bob, a.id).await.unwrap());
        // Alice's row is untouched.
        assert_eq!(s.get_connection(&alice, a.id).await.unwrap(), Some(a));
    }

    pub async fn list_filters_by_provider_and_orders_by_creation(s: &SqlStore) {
        let u = user("alice");
        let mut created = Vec::new();
        for (p, acct) in [("aws", "1"), ("gcp", "a"), ("aws", "2"), ("scaleway", "o")] {
            let (r, _) = s.upsert_connection(new_conn(&u, p, acct)).await.unwrap();
            created.push(r);
            // Not synchronization: the clock must move so the timestamps differ.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // An update does not move a row in the list.
        s.upsert_connection(new_conn(&u, "aws", "1")).await.unwrap();
        let all = s.list_connections(&u, None).await.unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids, created.iter().map(|r| r.id).collect::<Vec<_>>());
        let aws = s
            .list_connections(&u, Some(&provider("aws")))
            .await
            .unwrap();
        assert_eq!(
            aws.iter()
                .map(|r| r.account_id.as_str())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert!(s
            .list_connections(&u, Some(&provider("azure")))
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn updates_change_fields_and_return_none_when_missing(s: &SqlStore) {
        let u = user("alice");
        let (a, _) = s
            .upsert_connection(new_conn(&u, "aws", "111"))
            .await
            .unwrap();
        // Not synchronization: the clock must move so the timestamps differ.
        tokio::time::sleep(Duration::from_millis(2)).await;

        // Without last_validated_at the stored one is kept.
        let r = s
            .update_status(
                &u,
                a.id,
                StatusUpdate {
                    status: ConnectionStatus::Degraded,
                    status_reason: Some("timeout".into()),
                    last_validated_at: None,
                },
            )
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(r.status, ConnectionStatus::Degraded);
        assert_eq!(r.status_reason.as_deref(), Some("timeout"));
        assert_eq!(r.last_validated_at, a.last_validated_at);
        assert!(r.updated_at > a.updated_at);
        assert_eq!(r.created_at, a.created_at);

        let checked = at(1_750_000_000, 123_456);
        let r = s
            .update_status(
                &u,
                a.id,
                StatusUpdate {
                    status: ConnectionStatus::Active,
                    status_reason: None,
                    last_validated_at: Some(checked),
                },
            )
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(r.status, ConnectionStatus::Active);
        assert_eq!(r.status_reason, None);
        assert_eq!(r.last_validated_at, Some(checked));

        let exp = at(1_760_000_000, 7);
        let meta = serde_json::json!({ "project": "p-1", "nested": { "a": [true, null] } });
        let m = s
            .update_metadata(&u, a.id, meta.clone(), Some(exp))
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(m.metadata, meta);
        assert_eq!(m.expires_at, Some(exp));
        assert!(m.updated_at >= r.updated_at);
        let m = s
            .update_metadata(&u, a.id, serde_json::json!({}), None)
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(m.expires_at, None, "expires_at is replaced, also by None");
        assert_eq!(s.get_connection(&u, a.id).await.unwrap(), Some(m));

        let missing = ConnectionId::new();
        let upd = StatusUpdate {
            status: ConnectionStatus::Active,
            status_reason: None,
            last_validated_at: None,
        };
        assert_eq!(s.update_status(&u, missing, upd).await.unwrap(), None);
        assert_eq!(
            s.update_metadata(&u, missing, serde_json::json!({}), None)
                .await
                .unwrap(),
            None
        );
    }

    pub async fn delete_returns_true_then_false(s: &SqlStore) {
        let u = user("alice");
        let (a, _) = s
            .upsert_connection(new_conn(&u, "aws", "111"))
            .await
            .unwrap();
        let (b, _) = s
            .upsert_connection(new_conn(&u, "aws", "222"))
            .await
            .unwrap();
        assert!(s.delete_connection(&u, a.id).await.unwrap());
        assert!(!s.delete_connection(&u, a.id).await.unwrap());
        assert_eq!(s.get_connection(&u, a.id).await.unwrap(), None);
        assert_eq!(s.list_connections(&u, None).await.unwrap(), vec![b]);
        // The key is free again: a new connect inserts.
        let (c, inserted) = s
            .upsert_connection(new_conn(&u, "aws", "111"))
            .await
            .unwrap();
        assert!(inserted);
        assert_ne!(c.id, a.id);
    }

    pub async fn duplicate_id_is_a_conflict(s: &SqlStore) {
        let u = user("alice");
        let (a, _) = s
            .upsert_connection(new_conn(&u, "aws", "111"))
            .await
            .unwrap();
        let clash = NewConnection {
            id: a.id,
            ..new_conn(&u, "aws", "222")
        };
        let err = s.upsert_connection(clash).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(!err.to_string().contains("users/alice"), "{err}");

        s.put_oauth_state(oauth("dup", at(2_000_000_000, 0)))
            .await
            .unwrap();
        let err = s
            .put_oauth_state(oauth("dup", at(2_000_000_000, 0)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // The store is still usable after an error.
        s.ping().await.unwrap();
    }

    pub async fn audit_batch_append(s: &SqlStore) {
        let alice = user("alice");
        let c1 = ConnectionId::new();
        let base = 1_700_000_000;
        let events: Vec<_> = (0..120)
            .map(|i| event(&alice, Some(c1), "credentials_issued", at(base + i, 0)))
            .collect();
        s.append_audit_batch(events.clone()).await.unwrap();
        s.append_audit_batch(Vec::new()).await.unwrap();
        let mut listed = s.list_audit(&alice, Some(c1), None, 1000).await.unwrap();
        listed.reverse();
        assert_eq!(listed, events);
    }

    pub async fn audit_append_list_filters_limit_prune(s: &SqlStore) {
        let alice = user("alice");
        let bob = user("bob");
        let c1 = ConnectionId::new();
        let c2 = ConnectionId::new();
        let base = 1_700_000_000;
        let e1 = event(&alice, Some(c1), "connect", at(base, 0));
        let e2 = event(&alice, Some(c2), "connect", at(base + 10, 5));
        let e3 = event(&alice, Some(c1), "credentials_issued", at(base + 20, 0));
        let e4 = event(&alice, None, "rotate", at(base + 30, 999_999));
        let eb = event(&bob, Some(c1), "connect", at(base + 40, 0));
        for e in [&e3, &e1, &eb, &e4, &e2] {
            s.append_audit(e.clone()).await.unwrap();
        }

        let all = s.list_audit(&alice, None, None, 100).await.unwrap();
        assert_eq!(all, vec![e4.clone(), e3.clone(), e2.clone(), e1.clone()]);
        let limited = s.list_audit(&alice, None, None, 2).await.unwrap();
        assert_eq!(limited, vec![e4.clone(), e3.clone()]);
        assert!(s
            .list_audit(&alice, None, None, 0)
            .await
            .unwrap()
            .is_empty());
        let of_c1 = s.list_audit(&alice, Some(c1), None, 100).await.unwrap();
        assert_eq!(of_c1, vec![e3.clone(), e1.clone()]);
        let since = s
            .list_audit(&alice, None, Some(at(base + 10, 5)), 100)
            .await
            .unwrap();
        assert_eq!(
            since,
            vec![e4.clone(), e3.clone(), e2.clone()],
            "since is inclusive"
        );
        let both = s
            .list_audit(&alice, Some(c1), Some(at(base + 1, 0)), 100)
            .await
            .unwrap();
        assert_eq!(both, vec![e3.clone()]);
        assert_eq!(
            s.list_audit(&bob, None, None, 100).await.unwrap(),
            vec![eb.clone()]
        );
        assert!(s
            .list_audit(&user("carol"), None, None, 100)
            .await
            .unwrap()
            .is_empty());

        // Prune is strict: an event exactly at `before` stays.
        assert_eq!(s.prune_audit(at(base + 20, 0)).await.unwrap(), 2);
        assert_eq!(
            s.list_audit(&alice, None, None, 100).await.unwrap(),
            vec![e4, e3]
        );
        assert_eq!(s.prune_audit(at(base + 20, 0)).await.unwrap(), 0);
        assert_eq!(s.prune_audit(at(base + 1000, 0)).await.unwrap(), 3);
        assert!(s
            .list_audit(&bob, None, None, 100)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn oauth_state_is_taken_once(s: &SqlStore) {
        let now = Utc::now();
        let rec = OAuthStateRecord {
            created_at: now,
            ..oauth("hash-1", now + chrono::Duration::minutes(10))
        };
        s.put_oauth_state(rec.clone()).await.unwrap();
        let got = s
            .take_oauth_state("hash-1", now)
            .await
            .unwrap()
            .expect("taken");
        assert_eq!(got.state_hash, rec.state_hash);
        assert_eq!(got.user_id, rec.user_id);
        assert_eq!(got.provider, rec.provider);
        assert_eq!(got.sealed_verifier, rec.sealed_verifier);
        assert_eq!(got.redirect_uri, rec.redirect_uri);
        assert_eq!(got.expires_at, rec.expires_at.trunc_subsecs_micro());
        assert_eq!(s.take_oauth_state("hash-1", now).await.unwrap(), None);
        assert_eq!(s.take_oauth_state("never-put", now).await.unwrap(), None);
    }

    pub async fn oauth_state_expired_is_none_and_deleted(s: &SqlStore) {
        let exp = at(1_700_000_600, 0);
        s.put_oauth_state(oauth("old", exp)).await.unwrap();
        assert_eq!(
            s.take_oauth_state("old", exp).await.unwrap(),
            None,
            "expired at expires_at"
        );
        // It was deleted: even an earlier `now` does not find it.
        assert_eq!(
            s.take_oauth_state("old", at(1_700_000_000, 0))
                .await
                .unwrap(),
            None
        );
        assert!(!s.dump_text().await.unwrap().contains("state_hash=old"));
        s.put_oauth_state(oauth("fresh", exp)).await.unwrap();
        assert!(s
            .take_oauth_state("fresh", exp - chrono::Duration::microseconds(1))
            .await
            .unwrap()
            .is_some());
    }

    pub async fn oauth_state_concurrent_takes_yield_one(s: &SqlStore) {
        let now = Utc::now();
        for round in 0..3 {
            let hash = format!("race-{round}");
            s.put_oauth_state(oauth(&hash, now + chrono::Duration::minutes(5)))
                .await
                .unwrap();
            let takes = (0..8).map(|_| s.take_oauth_state(&hash, now));
            let results = futures::future::join_all(takes).await;
            let won = results
                .into_iter()
                .map(|r| r.expect("no error under concurrency"))
                .filter(Option::is_some)
                .count();
            assert_eq!(won, 1, "round {round}");
        }
    }

    pub async fn plugin_value_get_or_create_is_stable_and_replaces(s: &SqlStore) {
        let aws = provider("aws");
        let alice = user("alice");
        let bob = user("bob");
        const N: &str = "external_id";
        let get = |u: &UserId, c: &'static str| {
            let (aws, u) = (aws.clone(), u.clone());
            async move { s.get_or_create_plugin_value(&aws, &u, N, c).await.unwrap() }
        };
        assert_eq!(get(&alice, "ext-a1").await, "ext-a1");
        assert_eq!(
            get(&alice, "ext-a2").await,
            "ext-a1",
            "the stored one wins over a new candidate"
        );
        assert_eq!(get(&bob, "ext-b1").await, "ext-b1");
        assert_eq!(
            s.replace_plugin_value(&aws, &alice, N, "ext-a3")
                .await
                .unwrap(),
            "ext-a3"
        );
        assert_eq!(get(&alice, "ext-a4").await, "ext-a3");
        assert_eq!(get(&bob, "zzz").await, "ext-b1", "a replace is per user");
        // Replacing a value that does not exist creates it.
        let carol = user("carol");
        assert_eq!(
            s.replace_plugin_value(&aws, &carol, N, "ext-c1")
                .await
                .unwrap(),
            "ext-c1"
        );
        assert_eq!(get(&carol, "ext-c2").await, "ext-c1");
        // Values are kept apart by provider and by name.
        let gcp = provider("gcp");
        assert_eq!(
            s.get_or_create_plugin_value(&gcp, &alice, N, "gcp-a")
                .await
                .unwrap(),
            "gcp-a"
        );
        assert_eq!(
            s.get_or_create_plugin_value(&aws, &alice, "other", "other-a")
                .await
                .unwrap(),
            "other-a"
        );
        assert_eq!(get(&alice, "ext-a5").await, "ext-a3");
    }

    pub async fn plugin_value_concurrent_creates_agree(s: &SqlStore) {
        let aws = provider("aws");
        let u = user("racer");
        let candidates: Vec<String> = (0..8).map(|i| format!("cand-{i}")).collect();
        let gets = candidates
            .iter()
            .map(|c| s.get_or_create_plugin_value(&aws, &u, "external_id", c));
        let got: Vec<String> = futures::future::join_all(gets)
            .await
            .into_iter()
            .map(|r| r.expect("no error under concurrency"))
            .collect();
        assert!(candidates.contains(&got[0]));
        assert!(got.iter().all(|g| g == &got[0]), "one winner: {got:?}");
    }

    pub async fn timestamps_round_trip_in_utc(s: &SqlStore) {
        let u = user("alice");
        let validated = at(1_709_251_198, 123_456); // 2024-02-29T23:59:58.123456Z
        let expires = Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap();
        let new = NewConnection {
            last_validated_at: Some(validated),
            expires_at: Some(expires),
            ..new_conn(&u, "aws", "111")
        };
        let before = Utc::now() - chrono::Duration::seconds(1);
        let (r, _) = s.upsert_connection(new).await.unwrap();
        let after = Utc::now() + chrono::Duration::seconds(1);
        let got = s.get_connection(&u, r.id).await.unwrap().expect("stored");
        assert_eq!(got.last_validated_at, Some(validated));
        assert_eq!(got.expires_at, Some(expires));
        assert_eq!(got.created_at, r.created_at);
        assert!(
            got.created_at > before && got.created_at < after,
            "stamped in UTC"
        );

        // Sub-microsecond parts are dropped, never rounded into another microsecond.
        let nanos = Utc.timestamp_opt(1_709_251_198, 123_456_789).unwrap();
        let got = s
            .update_metadata(&u, r.id, serde_json::json!({}), Some(nanos))
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(got.expires_at, Some(at(1_709_251_198, 123_456)));
        let reread = s.get_connection(&u, r.id).await.unwrap().expect("stored");
        assert_eq!(reread.expires_at, Some(at(1_709_251_198, 123_456)));

        // Comparisons honour microseconds (audit `since` and ordering).
        let t0 = at(1_700_000_000, 1);
        let t1 = at(1_700_000_000, 2);
        let e0 = event(&u, None, "a", t0);
        let e1 = event(&u, None, "b", t1);
        s.append_audit(e0.clone()).await.unwrap();
        s.append_audit(e1.clone()).await.unwrap();
        assert_eq!(
            s.list_audit(&u, None, Some(t1), 10).await.unwrap(),
            vec![e1.clone()]
        );
        assert_eq!(
            s.list_audit(&u, None, None, 10).await.unwrap(),
            vec![e1, e0]
        );
    }

    pub async fn dump_text_holds_written_values(s: &SqlStore) {
        let u = user("dumper");
        let (r, _) = s
            .upsert_connection(NewConnection {
                metadata: serde_json::json!({ "marker": "needle-in-metadata" }),
                ..new_conn(&u, "aws", "acct-needle")
            })
            .await
            .unwrap();
        s.append_audit(event(&u, Some(r.id), "audit-needle", Utc::now()))
            .await
            .unwrap();
        s.put_oauth_state(OAuthStateRecord {
            sealed_verifier: b"verifier-needle".to_vec(),
            ..oauth("state-needle", Utc::now())
        })
        .await
        .unwrap();
        s.get_or_create_plugin_value(&provider("aws"), &u, "external_id", "external-needle")
            .await
            .unwrap();
        let dump = s.dump_text().await.unwrap();
        for needle in [
            "acct-needle",
            "\"marker\":\"needle-in-metadata\"",
            "users/dumper/aws/acct-needle",
            "audit-needle",
            "state-needle",
            "verifier-needle",
            "external-needle",
            &r.id.to_string(),
        ] {
            assert!(dump.contains(needle), "{needle} missing from:\n{dump}");
        }
    }

    /// Microsecond truncation, as the store does.
    trait TruncMicro {
        fn trunc_subsecs_micro(self) -> Self;
    }
    impl TruncMicro for DateTime<Utc> {
        fn trunc_subsecs_micro(self) -> Self {
            chrono::SubsecRound::trunc_subsecs(self, 6)
        }
    }

    // ---- setup tasks ----

    fn new_task(u: &UserId, p: &str, conn: Option<ConnectionId>) -> NewSetupTask {
        NewSetupTask {
            id: uuid::Uuid::new_v4(),
            user_id: u.clone(),
            connection_id: conn,
            provider: provider(p),
            state: SetupState::Pending,
            step: 0,
            total_steps: 7,
            progress: 0,
            status_message: "queued".into(),
            input: serde_json::json!({ "marker": "task-input-needle", "n": [1, 2] }),
        }
    }

    fn report(step: i32, progress: i32, msg: &str) -> SetupProgress {
        SetupProgress {
            state: SetupState::Progress,
            step,
            progress,
            status_message: msg.into(),
            input: None,
            lease_until: None,
        }
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    pub async fn setup_task_create_get_is_owner_scoped(s: &SqlStore) {
        let u = user("alice");
        let conn = ConnectionId::new();
        let new = new_task(&u, "gcp", Some(conn));
        let t = s.create_setup_task(new.clone()).await.unwrap();
        assert_eq!(t.id, new.id);
        assert_eq!(t.user_id, u);
        assert_eq!(t.connection_id, Some(conn));
        assert_eq!(t.provider, provider("gcp"));
        assert_eq!(t.state, SetupState::Pending);
        assert_eq!(
            (t.step, t.total_steps, t.progress, t.attempts),
            (0, 7, 0, 0)
        );
        assert_eq!(t.status_message, "queued");
        assert_eq!(t.input, new.input);
        assert_eq!((t.error.clone(), t.result.clone()), (None, None));
        assert_eq!((t.lease_owner.clone(), t.lease_expires_at), (None, None));
        assert_eq!(s.get_setup_task(&u, t.id).await.unwrap(), Some(t.clone()));
        assert_eq!(s.get_setup_task(&user("bob"), t.id).await.unwrap(), None);
        assert_eq!(
            s.get_setup_task(&u, uuid::Uuid::new_v4()).await.unwrap(),
            None
        );
        assert!(s.dump_text().await.unwrap().contains("task-input-needle"));
        // A new task starts live.
        let bad = NewSetupTask {
            state: SetupState::Success,
            ..new_task(&u, "gcp", None)
        };
        assert!(s.create_setup_task(bad).await.is_err());
        // A duplicate id is a conflict.
        assert!(matches!(
            s.create_setup_task(new).await,
            Err(StoreError::Conflict(_))
        ));
    }

    pub async fn setup_task_claim_leases_and_lapsed_lease_is_taken_over(s: &SqlStore) {
        let u = user("alice");
        let gcp = provider("gcp");
        let t1 = s
            .create_setup_task(new_task(&u, "gcp", None))
            .await
            .unwrap();
        // Not synchronization: the clock must move so the timestamps differ.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t2 = s
            .create_setup_task(new_task(&u, "gcp", None))
            .await
            .unwrap();
        let other = s
            .create_setup_task(new_task(&u, "aws", None))
            .await
            .unwrap();
        let now = Utc::now();

        let a = s
            .claim_setup_task(&gcp, "w1", now, now + secs(60))
            .await
            .unwrap()
            .expect("a due task");
        assert_eq!(a.id, t1.id, "the oldest first");
        assert_eq!(a.state, SetupState::Started);
        assert_eq!(a.attempts, 1);
        assert_eq!(a.lease_owner.as_deref(), Some("w1"));
        assert_eq!(
            a.lease_expires_at,
            Some((now + secs(60)).trunc_subsecs_micro())
        );
        let b = s
            .claim_setup_task(&gcp, "w2", now, now + secs(60))
            .await
            .unwrap()
            .expect("the second task");
        assert_eq!(b.id, t2.id);
        assert_eq!(
            s.claim_setup_task(&gcp, "w3", now, now + secs(60))
                .await
                .unwrap(),
            None,
            "both leased, and the aws task is not gcp's"
        );
        assert_eq!(
            s.get_setup_task(&u, other.id).await.unwrap().unwrap().state,
            SetupState::Pending
        );

        // w1 renews; w2 does not, and its lease lapses: w3 takes t2 over.
        assert!(s
            .renew_setup_lease(t1.id, "w1", now + secs(120))
            .await
            .unwrap());
        assert!(!s
            .renew_setup_lease(t1.id, "w2", now + secs(120))
            .await
            .unwrap());
        let later = now + secs(90);
        let c = s
            .claim_setup_task(&gcp, "w3", later, later + secs(60))
            .await
            .unwrap()
            .expect("the lapsed lease is taken over");
        assert_eq!(c.id, t2.id);
        assert_eq!(c.attempts, 2);
        assert_eq!(c.state, SetupState::Started);
        assert_eq!(c.lease_owner.as_deref(), Some("w3"));
        // The former holder is fenced off.
        assert!(!s
            .save_setup_progress(t2.id, "w2", report(1, 10, "late"))
            .await
            .unwrap());
        assert!(!s
            .renew_setup_lease(t2.id, "w2", later + secs(60))
            .await
            .unwrap());
        assert!(s
            .save_setup_progress(t2.id, "w3", report(1, 10, "on it"))
            .await
            .unwrap());
        let seen = s.get_setup_task(&u, t2.id).await.unwrap().unwrap();
        assert_eq!(seen.status_message, "on it");
        assert_eq!(seen.state, SetupState::Progress);
    }

    pub async fn setup_task_progress_never_goes_down_and_finish_is_final(s: &SqlStore) {
        let u = user("alice");
        let gcp = provider("gcp");
        let t = s
            .create_setup_task(new_task(&u, "gcp", None))
            .await
            .unwrap();
        let now = Utc::now();
        s.claim_setup_task(&gcp, "w", now, now + secs(60))
            .await
            .unwrap()
            .unwrap();
        let mut p = report(3, 40, "step three");
        p.input = Some(serde_json::json!({ "checkpoint": 3 }));
        p.lease_until = Some(now + secs(300));
        assert!(s.save_setup_progress(t.id, "w", p).await.unwrap());
        // A lower step or progress is kept at the stored value; the message still changes.
        assert!(s
            .save_setup_progress(t.id, "w", report(2, 10, "back?"))
            .await
            .unwrap());
        let seen = s.get_setup_task(&u, t.id).await.unwrap().unwrap();
        assert_eq!((seen.step, seen.progress), (3, 40));
        assert_eq!(seen.status_message, "back?");
        assert_eq!(
            seen.input,
            serde_json::json!({ "checkpoint": 3 }),
            "input kept when None"
        );
        assert_eq!(
            seen.lease_expires_at,
            Some((now + secs(300)).trunc_subsecs_micro())
        );
        // Progress is clamped to 100.
        assert!(s
            .save_setup_progress(t.id, "w", report(4, 250, "x"))
            .await
            .unwrap());
        assert_eq!(
            s.get_setup_task(&u, t.id).await.unwrap().unwrap().progress,
            100
        );
        // A terminal state is refused as a progress report, and a live one as an outcome.
        let mut bad = report(5, 100, "x");
        bad.state = SetupState::Success;
        assert!(s.save_setup_progress(t.id, "w", bad).await.is_err());
        let live_outcome = SetupOutcome {
            state: SetupState::Progress,
            progress: 100,
            status_message: "x".into(),
            error: None,
            result: None,
            input: None,
        };
        assert!(s.finish_setup_task(t.id, "w", live_outcome).await.is_err());

        let outcome = SetupOutcome {
            state: SetupState::Failure,
            progress: 50,
            status_message: "failed".into(),
            error: Some("no project".into()),
            result: Some(serde_json::json!({ "status": "failed" })),
            input: None,
        };
        assert!(!s
            .finish_setup_task(t.id, "intruder", outcome.clone())
            .await
            .unwrap());
        assert!(s
            .finish_setup_task(t.id, "w", outcome.clone())
            .await
            .unwrap());
        let done = s.get_setup_task(&u, t.id).await.unwrap().unwrap();
        assert_eq!(done.state, SetupState::Failure);
        assert_eq!(done.progress, 100, "never down, even at the end");
        assert_eq!(done.error.as_deref(), Some("no project"));
        assert_eq!(done.result, Some(serde_json::json!({ "status": "failed" })));
        assert_eq!(
            (done.lease_owner.clone(), done.lease_expires_at),
            (None, None)
        );
        // Final: no more writes, no claim.
        assert!(!s.finish_setup_task(t.id, "w", outcome).await.unwrap());
        assert!(!s
            .save_setup_progress(t.id, "w", report(7, 100, "x"))
            .await
            .unwrap());
        assert!(!s
            .renew_setup_lease(t.id, "w", now + secs(60))
            .await
            .unwrap());
        let far = now + secs(3600);
        assert_eq!(
            s.claim_setup_task(&gcp, "w2", far, far + secs(60))
                .await
                .unwrap(),
            None
        );
    }

    pub async fn setup_task_release_backs_off(s: &SqlStore) {
        let u = user("alice");
        let gcp = provider("gcp");
        let t = s
            .create_setup_task(new_task(&u, "gcp", None))
            .await
            .unwrap();
        let now = Utc::now();
        s.claim_setup_task(&gcp, "w", now, now + secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(s
            .save_setup_progress(t.id, "w", report(2, 20, "listing"))
            .await
            .unwrap());
        assert!(!s
            .release_setup_task(t.id, "other", now + secs(30), "retrying")
            .await
            .unwrap());
        assert!(s
            .release_setup_task(t.id, "w", now + secs(30), "retrying soon")
            .await
            .unwrap());
        let seen = s.get_setup_task(&u, t.id).await.unwrap().unwrap();
        assert_eq!(seen.lease_owner, None);
        assert_eq!(seen.state, SetupState::Progress, "still live");
        assert_eq!(seen.status_message, "retrying soon");
        assert_eq!((seen.step, seen.progress), (2, 20));
        assert!(!s
            .save_setup_progress(t.id, "w", report(3, 30, "x"))
            .await
            .unwrap());
        assert_eq!(
            s.claim_setup_task(&gcp, "w", now + secs(10), now + secs(70))
                .await
                .unwrap(),
            None,
            "not before the back-off"
        );
        let again = s
            .claim_setup_task(&gcp, "w2", now + secs(31), now + secs(91))
            .await
            .unwrap()
            .expect("due after the back-off");
        assert_eq!(again.attempts, 2);
        assert_eq!(
            again.state,
            SetupState::Progress,
            "a started task stays in progress"
        );
        assert_eq!((again.step, again.progress), (2, 20));
    }

    pub async fn setup_task_cancel_scopes_and_fences_the_worker(s: &SqlStore) {
        let u = user("alice");
        let gcp = provider("gcp");
        let (ca, cb) = (ConnectionId::new(), ConnectionId::new());
        let ta = s
            .create_setup_task(new_task(&u, "gcp", Some(ca)))
            .await
            .unwrap();
        let tb = s
            .create_setup_task(new_task(&u, "gcp", Some(cb)))
            .await
            .unwrap();
        let t_aws = s
            .create_setup_task(new_task(&u, "aws", Some(ca)))
            .await
            .unwrap();
        let bob = user("bob");
        let t_bob = s
            .create_setup_task(new_task(&bob, "gcp", Some(ca)))
            .await
            .unwrap();
        let now = Utc::now();
        let claimed = s
            .claim_setup_task(&gcp, "w", now, now + secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, ta.id);

        assert_eq!(
            s.cancel_setup_tasks(&u, &gcp, Some(ca), "disconnected")
                .await
                .unwrap(),
            1
        );
        let a = s.get_setup_task(&u, ta.id).await.unwrap().unwrap();
        assert_eq!(a.state, SetupState::Failure);
        assert_eq!(a.error.as_deref(), Some("disconnected"));
        assert_eq!(a.lease_owner, None);
        assert!(!s
            .save_setup_progress(ta.id, "w", report(1, 10, "x"))
            .await
            .unwrap());
        assert_eq!(
            s.get_setup_task(&u, tb.id).await.unwrap().unwrap().state,
            SetupState::Pending
        );
        assert_eq!(
            s.cancel_setup_tasks(&u, &gcp, None, "all").await.unwrap(),
            1
        );
        assert_eq!(
            s.get_setup_task(&u, tb.id).await.unwrap().unwrap().state,
            SetupState::Failure
        );
        assert_eq!(
            s.cancel_setup_tasks(&u, &gcp, None, "again").await.unwrap(),
            0
        );
        assert_eq!(
            s.get_setup_task(&u, t_aws.id).await.unwrap().unwrap().state,
            SetupState::Pending,
            "another provider's task is untouched"
        );
        assert_eq!(
            s.get_setup_task(&bob, t_bob.id)
                .await
                .unwrap()
                .unwrap()
                .state,
            SetupState::Pending,
            "another user's task is untouched"
        );
    }

    pub async fn setup_task_concurrent_claims_yield_one(s: &SqlStore) {
        let u = user("alice");
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                s.create_setup_task(new_task(&u, "gcp", None))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let now = Utc::now();
        let claims = (0..8).map(|i| {
            let worker = format!("w{i}");
            async move {
                s.claim_setup_task(&provider("gcp"), &worker, now, now + secs(60))
                    .await
                    .expect("no error under concurrency")
            }
        });
        let got: Vec<_> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got.len(), 3, "each task goes to exactly one claimer");
        let mut won: Vec<_> = got.iter().map(|t| t.id).collect();
        won.sort();
        ids.sort();
        assert_eq!(won, ids);
        assert!(got.iter().all(|t| t.attempts == 1));
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle (connector-lifecycle): scheduled checks, credential use, expiry warnings, retention
// ---------------------------------------------------------------------------------------------

mod lifecycle_cases {
    use std::collections::HashSet;

    use connector_core::ids::CredentialMode;
    use connector_core::store::{ConnectionRecord, OAuthStateRecord, SetupState};

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    async fn conn(
        s: &SqlStore,
        u: &UserId,
        account: &str,
        status: ConnectionStatus,
        expires_at: Option<DateTime<Utc>>,
    ) -> ConnectionRecord {
        let (c, created) = s
            .upsert_connection(NewConnection {
                id: ConnectionId::new(),
                user_id: u.clone(),
                provider: ProviderId::parse("scaleway").unwrap(),
                account_id: account.to_owned(),
                display_name: None,
                status,
                status_reason: None,
                read_only: false,
                secret_ref: format!("users/{u}/scaleway/{account}"),
                metadata: serde_json::json!({}),
                last_validated_at: Some(Utc::now()),
                expires_at,
            })
            .await
            .unwrap();
        assert!(created);
        c
    }

    fn ids(claims: &[connector_core::store::CheckClaim]) -> HashSet<ConnectionId> {
        claims.iter().map(|c| c.connection.id).collect()
    }

    pub async fn checks_schedule_claim_finish_and_take_over(s: &SqlStore) {
        let u = user("alice");
        let a = conn(s, &u, "a", ConnectionStatus::Active, None).await;
        let d = conn(s, &u, "d", ConnectionStatus::Degraded, None).await;
        conn(s, &u, "n", ConnectionStatus::NeedsReconnect, None).await;
        conn(s, &u, "p", ConnectionStatus::Pending, None).await;
        let now = Utc::now();
        assert!(
            s.claim_due_checks("w1", now, now, now + secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing is scheduled yet"
        );
        assert_eq!(
            s.schedule_unscheduled_checks(now - secs(10)).await.unwrap(),
            2,
            "only active and degraded connections are scheduled"
        );
        assert_eq!(s.schedule_unscheduled_checks(now).await.unwrap(), 0);
        assert!(
            s.claim_due_checks("w1", now - secs(11), now, now + secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "not due before its time"
        );
        let got = s
            .claim_due_checks("w1", now, now, now + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(ids(&got), HashSet::from([a.id, d.id]));
        assert!(got.iter().all(|c| c.failures == 0));
        assert_eq!(
            got.iter()
                .find(|c| c.connection.id == d.id)
                .unwrap()
                .connection,
            s.get_connection(&u, d.id).await.unwrap().unwrap()
        );
        assert!(
            s.claim_due_checks("w2", now, now, now + secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "leased rows are not claimed again"
        );
        assert!(!s.finish_check(a.id, "w2", now, 0).await.unwrap());
        assert!(s
            .finish_check(a.id, "w1", now + secs(3600), 0)
            .await
            .unwrap());
        assert!(s.finish_check(d.id, "w1", now - secs(1), 2).await.unwrap());
        assert!(
            !s.finish_check(d.id, "w1", now, 0).await.unwrap(),
            "the lease was dropped"
        );
        // Only d is due again, with its failures; a short lease lapses and is taken over.
        let got = s
            .claim_due_checks("w2", now, now, now + secs(1), 10)
            .await
            .unwrap();
        assert_eq!(ids(&got), HashSet::from([d.id]));
        assert_eq!(got[0].failures, 2);
        assert!(s
            .claim_due_checks("w3", now, now, now + secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        let later = now + secs(2);
        let got = s
            .claim_due_checks("w3", now, later, later + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(
            ids(&got),
            HashSet::from([d.id]),
            "a lapsed lease is taken over"
        );
        assert!(!s.finish_check(d.id, "w2", now, 0).await.unwrap(), "fenced");
        assert!(s
            .finish_check(d.id, "w3", now + secs(3600), 0)
            .await
            .unwrap());
    }

    pub async fn checks_are_claimed_oldest_due_first(s: &SqlStore) {
        let u = user("alice");
        let now = Utc::now();
        let mut by_due = Vec::new();
        for i in 0..5 {
            let c = conn(s, &u, &format!("acct-{i}"), ConnectionStatus::Active, None).await;
            by_due.push(c.id);
        }
        s.schedule_unscheduled_checks(now - secs(100))
            .await
            .unwrap();
        // Reschedule each through a claim and a finish: acct-0 is due first, acct-4 last.
        let all = s
            .claim_due_checks("w", now, now, now + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        for (i, id) in by_due.iter().enumerate() {
            assert!(s
                .finish_check(*id, "w", now - secs(10 + 10 * (5 - i as i64)), 0)
                .await
                .unwrap());
        }
        let mut order = Vec::new();
        loop {
            let got = s
                .claim_due_checks("w", now, now, now + secs(60), 2)
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            assert!(got.len() <= 2, "at most the limit");
            let mut batch: Vec<_> = got.iter().map(|c| c.connection.id).collect();
            // Within one claim the order is free; across claims, the earliest due come first.
            batch.sort_by_key(|id| by_due.iter().position(|x| x == id).unwrap());
            order.extend(batch);
        }
        assert_eq!(order, by_due);
    }

    pub async fn upsert_resets_the_check_schedule(s: &SqlStore) {
        let u = user("alice");
        let c = conn(s, &u, "a", ConnectionStatus::Active, None).await;
        let now = Utc::now();
        s.schedule_unscheduled_checks(now - secs(1)).await.unwrap();
        assert_eq!(
            s.claim_due_checks("w1", now, now, now + secs(60), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(s.finish_check(c.id, "w1", now - secs(1), 3).await.unwrap());
        assert_eq!(
            s.claim_due_checks("w1", now, now, now + secs(60), 10)
                .await
                .unwrap()[0]
                .failures,
            3
        );
        // The check refuses: needs_reconnect leaves the schedule.
        s.update_status(
            &u,
            c.id,
            StatusUpdate {
                status: ConnectionStatus::NeedsReconnect,
                status_reason: Some("refused".into()),
                last_validated_at: Some(now),
            },
        )
        .await
        .unwrap();
        assert!(s.finish_check(c.id, "w1", now - secs(1), 0).await.unwrap());
        assert!(s
            .claim_due_checks("w2", now, now, now + secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        // A reconnect (the same user, provider and account) puts it back, afresh.
        let mut again = NewConnection {
            id: ConnectionId::new(),
            user_id: u.clone(),
            provider: c.provider.clone(),
            account_id: c.account_id.clone(),
            display_name: None,
            status: ConnectionStatus::Active,
            status_reason: None,
            read_only: false,
            secret_ref: c.secret_ref.clone(),
            metadata: serde_json::json!({}),
            last_validated_at: Some(now),
            expires_at: None,
        };
        let (r, created) = s.upsert_connection(again.clone()).await.unwrap();
        assert!(!created);
        assert_eq!(r.id, c.id);
        assert!(
            s.claim_due_checks("w2", now, now, now + secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "not scheduled until the scheduler schedules it"
        );
        assert_eq!(
            s.schedule_unscheduled_checks(now - secs(1)).await.unwrap(),
            1
        );
        let got = s
            .claim_due_checks("w2", now, now, now + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].failures, 0, "failures start over");
        // A reconnect while a check is running clears its lease: the late check writes nothing.
        again.display_name = Some("renamed".into());
        s.upsert_connection(again).await.unwrap();
        assert!(!s.finish_check(c.id, "w2", now + secs(60), 0).await.unwrap());
    }

    pub async fn checks_concurrent_claims_take_each_once(s: &SqlStore) {
        let u = user("alice");
        let mut all = HashSet::new();
        for i in 0..40 {
            all.insert(
                conn(s, &u, &format!("acct-{i}"), ConnectionStatus::Active, None)
                    .await
                    .id,
            );
        }
        let now = Utc::now();
        s.schedule_unscheduled_checks(now - secs(1)).await.unwrap();
        let claimers = (0..8).map(|i| {
            let worker = format!("w{i}");
            async move {
                let mut mine = Vec::new();
                loop {
                    let got = s
                        .claim_due_checks(&worker, now, now, now + secs(60), 3)
                        .await
                        .expect("no error under concurrency");
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|c| c.connection.id));
                }
                mine
            }
        });
        let got: Vec<ConnectionId> = futures::future::join_all(claimers)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got.len(), 40, "each connection goes to exactly one claimer");
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), all);
    }

    pub async fn credential_use_drives_refresh_claims(s: &SqlStore) {
        let u = user("alice");
        let c = conn(s, &u, "c", ConnectionStatus::Active, None).await;
        let old = conn(s, &u, "old", ConnectionStatus::Active, None).await;
        let now = Utc::now();
        let since = now - secs(3600);
        s.record_credential_use(c.id, CredentialMode::Full, now, Some(now - secs(1)))
            .await
            .unwrap();
        s.record_credential_use(c.id, CredentialMode::ReadOnly, now, None)
            .await
            .unwrap();
        // Used two hours ago: left to expire.
        s.record_credential_use(
            old.id,
            CredentialMode::Full,
            now - secs(7200),
            Some(now - secs(1)),
        )
        .await
        .unwrap();
        let got = s
            .claim_due_refreshes("w1", now, since, now + secs(1), 10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].connection,
            s.get_connection(&u, c.id).await.unwrap().unwrap()
        );
        assert_eq!(got[0].mode, CredentialMode::Full);
        assert!(s
            .claim_due_refreshes("w2", now, since, now + secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        // The lease lapses: taken over, and the first holder is fenced.
        let later = now + secs(2);
        let got = s
            .claim_due_refreshes("w2", later, since, later + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(!s
            .finish_refresh(c.id, CredentialMode::Full, "w1", None)
            .await
            .unwrap());
        assert!(s
            .finish_refresh(c.id, CredentialMode::Full, "w2", Some(now + secs(3300)))
            .await
            .unwrap());
        assert!(s
            .claim_due_refreshes("w2", later, since, later + secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        // A later use with credentials due again brings it back.
        s.record_credential_use(c.id, CredentialMode::Full, now, Some(now - secs(5)))
            .await
            .unwrap();
        assert_eq!(
            s.claim_due_refreshes("w3", later, since, later + secs(60), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // A use for a connection that does not exist is refused; a disconnect removes the rows.
        assert!(s
            .record_credential_use(ConnectionId::new(), CredentialMode::Full, now, None)
            .await
            .is_err());
        let dump = s.dump_text().await.unwrap();
        assert!(dump.contains(&format!("credential_usage: id={}:full", old.id)));
        assert!(s.delete_connection(&u, old.id).await.unwrap());
        let dump = s.dump_text().await.unwrap();
        assert!(!dump.contains(&old.id.to_string()), "the delete cascades");
    }

    pub async fn expiry_warnings_are_taken_once_per_value(s: &SqlStore) {
        let u = user("alice");
        let now = Utc::now();
        let days = chrono::Duration::days;
        let x = conn(s, &u, "x", ConnectionStatus::Active, Some(now + days(3))).await;
        conn(s, &u, "y", ConnectionStatus::Active, Some(now + days(30))).await;
        conn(s, &u, "z", ConnectionStatus::Active, None).await;
        conn(s, &u, "p", ConnectionStatus::Pending, Some(now + days(1))).await;
        let n = conn(
            s,
            &u,
            "n",
            ConnectionStatus::NeedsReconnect,
            Some(now + days(2)),
        )
        .await;
        let warn_before = now + days(14);
        let got = s.take_expiry_warnings(warn_before, 100).await.unwrap();
        let got_ids: Vec<_> = got.iter().map(|c| c.id).collect();
        assert_eq!(
            got_ids,
            vec![n.id, x.id],
            "soonest first; not pending, not far off"
        );
        assert_eq!(got[1], s.get_connection(&u, x.id).await.unwrap().unwrap());
        assert!(s
            .take_expiry_warnings(warn_before, 100)
            .await
            .unwrap()
            .is_empty());
        // A new expiry value is warned about again, by exactly one of concurrent takers.
        s.update_metadata(&u, x.id, serde_json::json!({}), Some(now + days(5)))
            .await
            .unwrap();
        let takers =
            (0..6).map(|_| async { s.take_expiry_warnings(warn_before, 100).await.unwrap() });
        let got: Vec<_> = futures::future::join_all(takers)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, x.id);
        assert_eq!(got[0].expires_at, Some(models_round(now + days(5))));
    }

    /// An instant as the store returns it (microseconds).
    fn models_round(t: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::SubsecRound;
        t.trunc_subsecs(6)
    }

    pub async fn prune_oauth_states_and_finished_setup_tasks(s: &SqlStore) {
        let u = user("alice");
        let gcp = ProviderId::parse("gcp").unwrap();
        let now = Utc::now();
        for (hash, expires) in [("expired", now - secs(1)), ("valid", now + secs(600))] {
            s.put_oauth_state(OAuthStateRecord {
                state_hash: hash.into(),
                user_id: u.clone(),
                provider: gcp.clone(),
                sealed_verifier: vec![1, 2, 3],
                redirect_uri: "http://localhost/cb".into(),
                created_at: now - secs(600),
                expires_at: expires,
            })
            .await
            .unwrap();
        }
        assert_eq!(s.prune_oauth_states(now).await.unwrap(), 1);
        assert!(s.take_oauth_state("valid", now).await.unwrap().is_some());

        let task = |status: &str| NewSetupTask {
            id: uuid::Uuid::new_v4(),
            user_id: u.clone(),
            connection_id: None,
            provider: gcp.clone(),
            state: SetupState::Pending,
            step: 0,
            total_steps: 3,
            progress: 0,
            status_message: status.into(),
            input: serde_json::json!({}),
        };
        let done = s.create_setup_task(task("first")).await.unwrap();
        let live = s.create_setup_task(task("second")).await.unwrap();
        let claimed = s
            .claim_setup_task(&gcp, "w", now, now + secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, done.id);
        assert!(s
            .finish_setup_task(
                done.id,
                "w",
                SetupOutcome {
                    state: SetupState::Success,
                    progress: 100,
                    status_message: "done".into(),
                    error: None,
                    result: None,
                    input: None,
                },
            )
            .await
            .unwrap());
        assert_eq!(s.prune_setup_tasks(now - secs(3600)).await.unwrap(), 0);
        assert_eq!(
            s.prune_setup_tasks(Utc::now() + secs(1)).await.unwrap(),
            1,
            "only the finished task"
        );
        assert!(s.get_setup_task(&u, done.id).await.unwrap().is_none());
        assert!(s.get_setup_task(&u, live.id).await.unwrap().is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook outbox (connector-webhooks): enqueue with the audit line, leased claims, outcomes, prune
// ---------------------------------------------------------------------------------------------

mod outbox_cases {
    use std::collections::HashSet;

    use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxState};

    use super::*;

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn outbox_event(created_at: DateTime<Utc>) -> NewOutboxEvent {
        let id = uuid::Uuid::new_v4();
        NewOutboxEvent {
            id,
            event_type: "connection.created".to_owned(),
            user_id: UserId::parse("alice").unwrap(),
            connection_id: Some(ConnectionId::new()),
            payload: format!(r#"{{"id":"{id}","type":"connection.created","data":{{}}}}"#),
            created_at,
        }
    }

    fn audit_line(id: uuid::Uuid, t: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id,
            user_id: UserId::parse("alice").unwrap(),
            connection_id: None,
            provider: None,
            action: "connect".to_owned(),
            actor: "user".to_owned(),
            detail: serde_json::json!({}),
            created_at: t,
        }
    }

    pub async fn webhook_enqueue_with_audit_is_one_transaction(s: &SqlStore) {
        let u = UserId::parse("alice").unwrap();
        let t = Utc::now();
        let e = outbox_event(t);
        s.append_audit_and_outbox(audit_line(e.id, t), Some(e.clone()))
            .await
            .unwrap();
        let rows = s.list_webhooks(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.id, e.id);
        assert_eq!(r.payload, e.payload);
        assert_eq!(r.event_type, "connection.created");
        assert_eq!(r.user_id, u);
        assert_eq!(r.connection_id, e.connection_id);
        assert_eq!(r.state, OutboxState::Pending);
        assert_eq!(r.attempts, 0);
        assert_eq!(r.next_attempt_at, r.created_at, "due at once");
        assert!(r.lease_owner.is_none() && r.last_error.is_none() && r.delivered_at.is_none());
        assert_eq!(s.list_audit(&u, None, None, 10).await.unwrap().len(), 1);

        // Without an event only the audit line is written.
        s.append_audit_and_outbox(audit_line(uuid::Uuid::new_v4(), t), None)
            .await
            .unwrap();
        assert_eq!(s.list_webhooks(None, 10).await.unwrap().len(), 1);
        assert_eq!(s.list_audit(&u, None, None, 10).await.unwrap().len(), 2);

        // The outbox insert fails (same event id): the audit line is rolled back with it.
        let lonely = uuid::Uuid::new_v4();
        let err = s
            .append_audit_and_outbox(audit_line(lonely, t), Some(e.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let audit = s.list_audit(&u, None, None, 10).await.unwrap();
        assert_eq!(audit.len(), 2, "no audit line without its event");
        assert!(audit.iter().all(|a| a.id != lonely));
        // The plain enqueue refuses a duplicate id too.
        assert!(matches!(
            s.enqueue_webhook(e).await.unwrap_err(),
            StoreError::Conflict(_)
        ));
        // The dump shows the outbox.
        assert!(s.dump_text().await.unwrap().contains("webhook_outbox:"));
    }

    pub async fn webhook_claim_leases_retries_and_fences(s: &SqlStore) {
        let now = Utc::now();
        let older = outbox_event(now - secs(10));
        let newer = outbox_event(now - secs(5));
        let future = outbox_event(now + secs(3600));
        for e in [&newer, &older, &future] {
            s.enqueue_webhook(e.clone()).await.unwrap();
        }
        // Oldest due first; one per claim at limit 1; a lease excludes the event from others.
        let a = s
            .claim_webhooks("w1", now, now + secs(60), 1)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, older.id);
        assert_eq!(a[0].attempts, 1);
        assert_eq!(a[0].lease_owner.as_deref(), Some("w1"));
        assert_eq!(
            a[0].lease_expires_at.unwrap().timestamp(),
            (now + secs(60)).timestamp()
        );
        assert!(a[0].last_attempt_at.is_some());
        let b = s
            .claim_webhooks("w2", now, now + secs(60), 5)
            .await
            .unwrap();
        assert_eq!(b.len(), 1, "the future event is not due");
        assert_eq!(b[0].id, newer.id);
        assert!(s
            .claim_webhooks("w3", now, now + secs(60), 5)
            .await
            .unwrap()
            .is_empty());

        // Only the lease holder writes.
        let retry = DeliveryOutcome::Retry {
            not_before: now + secs(30),
            error: "HTTP 503 Service Unavailable".into(),
        };
        assert!(!s
            .finish_webhook_attempt(older.id, "w2", retry.clone())
            .await
            .unwrap());
        assert!(s
            .finish_webhook_attempt(older.id, "w1", retry.clone())
            .await
            .unwrap());
        assert!(
            !s.finish_webhook_attempt(older.id, "w1", retry)
                .await
                .unwrap(),
            "the lease is gone after the outcome"
        );
        let rows = s
            .list_webhooks(Some(OutboxState::Pending), 10)
            .await
            .unwrap();
        let r = rows.iter().find(|r| r.id == older.id).unwrap();
        assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none());
        assert_eq!(
            r.last_error.as_deref(),
            Some("HTTP 503 Service Unavailable")
        );
        assert_eq!(r.next_attempt_at.timestamp(), (now + secs(30)).timestamp());

        // Backed off until not_before.
        assert!(s
            .claim_webhooks("w3", now + secs(29), now + secs(90), 5)
            .await
            .unwrap()
            .is_empty());
        // At +61 s: the retry is due and w2's lease has lapsed: both are taken over by w3.
        let later = now + secs(61);
        let c = s
            .claim_webhooks("w3", later, later + secs(60), 5)
            .await
            .unwrap();
        let ids: HashSet<_> = c.iter().map(|r| r.id).collect();
        assert_eq!(ids, HashSet::from([older.id, newer.id]));
        assert!(c.iter().all(|r| r.attempts == 2));
        assert!(
            !s.finish_webhook_attempt(newer.id, "w2", DeliveryOutcome::Delivered { at: later })
                .await
                .unwrap(),
            "a worker whose lease was taken over writes nothing"
        );

        // Delivered: final, not claimable; failed: final, kept.
        assert!(s
            .finish_webhook_attempt(newer.id, "w3", DeliveryOutcome::Delivered { at: later })
            .await
            .unwrap());
        assert!(s
            .finish_webhook_attempt(
                older.id,
                "w3",
                DeliveryOutcome::Failed {
                    error: "x".repeat(5000)
                }
            )
            .await
            .unwrap());
        let far = now + secs(100_000);
        let d = s
            .claim_webhooks("w4", far, far + secs(60), 5)
            .await
            .unwrap();
        assert_eq!(d.len(), 1, "only the future event is left to claim");
        assert_eq!(d[0].id, future.id);
        let delivered = s
            .list_webhooks(Some(OutboxState::Delivered), 10)
            .await
            .unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].id, newer.id);
        assert_eq!(
            delivered[0].delivered_at.unwrap().timestamp(),
            later.timestamp()
        );
        let failed = s
            .list_webhooks(Some(OutboxState::Failed), 10)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, older.id);
        assert!(
            failed[0].last_error.as_ref().unwrap().len() < 400,
            "the error is cut short"
        );
        assert_eq!(s.list_webhooks(None, 2).await.unwrap().len(), 2, "limit");
    }

    pub async fn webhook_prune_removes_only_old_delivered(s: &SqlStore) {
        let now = Utc::now();
        let events: Vec<_> = (0..4).map(|i| outbox_event(now - secs(10 - i))).collect();
        for e in &events {
            s.enqueue_webhook(e.clone()).await.unwrap();
        }
        let claimed = s
            .claim_webhooks("w", now, now + secs(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 4);
        let outcomes = [
            DeliveryOutcome::Delivered {
                at: now - secs(86_400 * 10),
            },
            DeliveryOutcome::Delivered { at: now },
            DeliveryOutcome::Failed {
                error: "HTTP 500".into(),
            },
            DeliveryOutcome::Retry {
                not_before: now,
                error: "timed out".into(),
            },
        ];
        for (e, o) in events.iter().zip(outcomes) {
            assert!(s.finish_webhook_attempt(e.id, "w", o).await.unwrap());
        }
        // Failed and pending rows are old too, by creation; only the old delivered one goes.
        assert_eq!(s.prune_webhooks(now - secs(86_400)).await.unwrap(), 1);
        let left: HashSet<_> = s
            .list_webhooks(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            left,
            HashSet::from([events[1].id, events[2].id, events[3].id])
        );
        assert_eq!(s.prune_webhooks(now - secs(86_400)).await.unwrap(), 0);
    }

    pub async fn webhook_concurrent_claims_take_each_once(s: &SqlStore) {
        let now = Utc::now();
        let mut ids = HashSet::new();
        for i in 0..12 {
            let e = outbox_event(now - secs(100 - i));
            ids.insert(e.id);
            s.enqueue_webhook(e).await.unwrap();
        }
        let claims = (0..8).map(|i| {
            let worker = format!("w{i}");
            async move {
                s.claim_webhooks(&worker, now, now + secs(60), 3)
                    .await
                    .expect("no error under concurrency")
            }
        });
        let got: Vec<_> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .collect();
        let won: HashSet<_> = got.iter().map(|r| r.id).collect();
        assert_eq!(got.len(), won.len(), "no event claimed twice");
        assert!(won.is_subset(&ids));
        assert!(got.iter().all(|r| r.attempts == 1));
        // Whatever a claimer lost to another is still claimable, and nothing is claimed twice.
        let rest = s
            .claim_webhooks("late", now, now + secs(60), 20)
            .await
            .unwrap();
        let all: HashSet<_> = won
            .iter()
            .chain(rest.iter().map(|r| &r.id))
            .copied()
            .collect();
        assert_eq!(all.len(), got.len() + rest.len());
        assert_eq!(all, ids);
    }
}
