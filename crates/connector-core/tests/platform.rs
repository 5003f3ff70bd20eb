//! The platform's connection flows and the credential broker on in-memory backends: a failed connect
//! leaves nothing half-written, every row write publishes one invalidation, concurrent requests on
//! a cold cache share one mint, a rotated secret is written back with check-and-set (and loses to a
//! newer secret), and a row change during a mint keeps the stale mint out of the in-process tier.

mod fakes;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use connector_core::broker::INVALIDATION_CHANNEL;
use connector_core::{
    Actor, ConnectSpec, ConnectionRecord, ConnectionStatus, CredentialMode, Platform, ProviderId,
    SecretPath, SecretValue, Settings, StatusUpdate, UserId,
};
use fakes::{MemCache, MemSecrets, MemStore, Minting, PROVIDER};

struct World {
    platform: Platform,
    store: Arc<MemStore>,
    secrets: Arc<MemSecrets>,
    cache: Arc<MemCache>,
    minting: Arc<Minting>,
    user: UserId,
}

async fn world() -> World {
    let store = Arc::new(MemStore::default());
    let secrets = Arc::new(MemSecrets::default());
    let cache = Arc::new(MemCache::default());
    let platform = Platform::new(
        store.clone(),
        secrets.clone(),
        cache.clone(),
        Settings::new(),
    )
    .await
    .expect("platform");
    World {
        platform,
        store,
        secrets,
        cache,
        minting: Arc::new(Minting::default()),
        user: UserId::parse("user-1").unwrap(),
    }
}

fn v(s: &str) -> SecretValue {
    SecretValue::from_bytes(s.as_bytes().to_vec())
}

impl World {
    fn spec(&self, account: &str, secret: &str) -> ConnectSpec {
        ConnectSpec {
            user: self.user.clone(),
            provider: ProviderId::from_static(PROVIDER),
            account_id: account.into(),
            display_name: None,
            read_only: false,
            metadata: serde_json::json!({}),
            expires_at: None,
            status: ConnectionStatus::Active,
            secret: v(secret),
        }
    }

    async fn connect(&self, account: &str, secret: &str) -> ConnectionRecord {
        self.platform
            .connect(self.spec(account, secret), Actor::User)
            .await
            .expect("connect")
            .0
    }

    /// The connection ids published on the invalidation channel, in order.
    fn invalidations(&self) -> Vec<String> {
        self.cache.published_on(INVALIDATION_CHANNEL)
    }

    async fn token(&self, conn: &ConnectionRecord) -> String {
        let c = self
            .platform
            .credentials(self.minting.clone(), conn, CredentialMode::Full)
            .await
            .expect("credentials");
        String::from_utf8_lossy(c.credentials.expose_bytes()).into_owned()
    }

    /// Request credentials until they are kept in process (bounded): the listener may still drop
    /// a copy for an invalidation published before it was kept.
    async fn kept_after_requests(&self, conn: &ConnectionRecord) {
        for _ in 0..200 {
            self.token(conn).await;
            if self.platform.broker().holds_local_copy(conn.id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the credentials were never kept in process");
    }

    /// Paths of the connections' secrets (the platform's cache key left out).
    fn connection_secrets(&self) -> Vec<String> {
        let key = SecretPath::system("cache-key");
        self.secrets
            .map
            .lock()
            .keys()
            .filter(|p| p.as_str() != key.as_str())
            .cloned()
            .collect()
    }
}

fn path_of(conn: &ConnectionRecord) -> SecretPath {
    SecretPath::from_stored(&conn.secret_ref).unwrap()
}

/// Wait (bounded) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_connect_whose_row_write_fails_leaves_no_secret_behind() {
    let w = world().await;
    w.store.fail_writes.store(true, Ordering::SeqCst);
    let err = w
        .platform
        .connect(w.spec("acct", "first-secret"), Actor::User)
        .await
        .unwrap_err();
    assert_eq!(err.status.as_u16(), 503, "{err:?}");
    // The secret was written first, then removed again: no secret, no row.
    assert!(
        w.secrets
            .written
            .lock()
            .iter()
            .any(|(_, value)| value == b"first-secret"),
        "the connect wrote its secret before the row"
    );
    assert_eq!(w.connection_secrets(), Vec::<String>::new());
    assert!(w.store.rows.lock().is_empty());
}

#[tokio::test]
async fn a_reconnect_whose_row_write_fails_puts_the_previous_secret_back() {
    let w = world().await;
    let rec = w.connect("acct", "old-secret").await;
    w.store.fail_writes.store(true, Ordering::SeqCst);
    let mut again = w.spec("acct", "new-secret");
    again.display_name = Some("renamed".into());
    assert!(w.platform.connect(again, Actor::User).await.is_err());
    let path = path_of(&rec);
    assert_eq!(
        w.secrets.history(&path),
        vec![
            b"old-secret".to_vec(),
            b"new-secret".to_vec(),
            b"old-secret".to_vec()
        ],
        "written, then put back"
    );
    assert_eq!(w.secrets.value(&path).unwrap(), b"old-secret");
    assert_eq!(w.connection_secrets(), vec![path.as_str().to_owned()]);
    let row = w.store.rows.lock().get(&rec.id).cloned().unwrap();
    assert_eq!(row.display_name, None, "the row is unchanged");
}

#[tokio::test]
async fn every_row_write_publishes_one_invalidation() {
    let w = world().await;
    let rec = w.connect("acct", "s1").await;
    let id = rec.id.to_string();
    assert_eq!(w.invalidations(), vec![id.clone()], "connect");

    let update = StatusUpdate {
        status: ConnectionStatus::Degraded,
        status_reason: Some("slow".into()),
        last_validated_at: None,
    };
    assert_eq!(w.token(&rec).await, r#"{"token":"s1-1"}"#);
    let row = w.platform.update_status(&w.user, rec.id, update).await;
    assert_eq!(row.unwrap().unwrap().status, ConnectionStatus::Degraded);
    assert_eq!(w.invalidations().len(), 2, "status");
    assert_eq!(
        w.token(&rec).await,
        r#"{"token":"s1-1"}"#,
        "a status is not a credential change"
    );

    let refused = StatusUpdate {
        status: ConnectionStatus::NeedsReconnect,
        status_reason: Some("refused".into()),
        last_validated_at: None,
    };
    let row = w
        .platform
        .update_status_and_evict(&w.user, rec.id, refused)
        .await;
    assert_eq!(
        row.unwrap().unwrap().status,
        ConnectionStatus::NeedsReconnect
    );
    assert_eq!(w.invalidations().len(), 3, "status, credentials dropped");
    let cached = w.cache.map.lock().keys().any(|k| k.starts_with("cred:"));
    assert!(!cached, "the shared cache's credentials are gone");

    let meta = serde_json::json!({"region": "x"});
    let row = w
        .platform
        .update_metadata(&w.user, rec.id, meta, None)
        .await;
    assert_eq!(row.unwrap().unwrap().metadata["region"], "x");
    assert_eq!(w.invalidations().len(), 4, "metadata");

    let again = w.connect("acct", "s2").await;
    assert_eq!(again.id, rec.id, "a reconnect keeps the row");
    assert_eq!(w.invalidations().len(), 5, "reconnect");

    w.platform
        .disconnect(w.minting.as_ref(), &again, Actor::User)
        .await
        .unwrap();
    assert!(w.store.rows.lock().is_empty());
    assert_eq!(w.connection_secrets(), Vec::<String>::new());
    assert_eq!(w.invalidations(), vec![id; 6], "disconnect");
}

#[tokio::test]
async fn concurrent_requests_on_a_cold_cache_share_one_mint() {
    let w = Arc::new(world().await);
    let rec = w.connect("acct", "s1").await;
    let release = w.minting.hold();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let w = w.clone();
            let rec = rec.clone();
            tokio::spawn(async move { w.token(&rec).await })
        })
        .collect();
    until("the first mint", || w.minting.calls() >= 1).await;
    // Every request is in by now; without the single-flight each would have minted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.minting.calls(), 1);
    release.send(false).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), r#"{"token":"s1-1"}"#);
    }
    assert_eq!(w.minting.calls(), 1, "one mint for sixteen requests");
    // And the result is cached.
    assert_eq!(w.token(&rec).await, r#"{"token":"s1-1"}"#);
    assert_eq!(w.minting.calls(), 1);
}

#[tokio::test]
async fn a_rotated_secret_is_written_back_with_check_and_set() {
    let w = world().await;
    let rec = w.connect("acct", "s1").await;
    let path = path_of(&rec);
    assert_eq!(w.secrets.version(&path), Some(1));
    w.minting.rotate.store(true, Ordering::SeqCst);
    assert_eq!(w.token(&rec).await, r#"{"token":"s1-1"}"#);
    assert_eq!(w.secrets.value(&path).unwrap(), b"s1+r");
    assert_eq!(
        w.secrets.cas_at(&path),
        vec![(1, Some(2))],
        "written against the version the mint read"
    );
}

#[tokio::test]
async fn a_secret_changed_during_the_mint_wins_over_the_stale_rotation() {
    let w = world().await;
    let rec = w.connect("acct", "s1").await;
    let path = path_of(&rec);
    w.minting.rotate.store(true, Ordering::SeqCst);
    // While the first mint runs, a reconnect (on another replica) stores a newer secret.
    let (secrets, p) = (w.secrets.clone(), path.clone());
    *w.minting.on_mint.lock() = Some(Box::new(move |n| {
        if n == 1 {
            secrets.put_now(&p, &v("s2"));
        }
    }));
    // The stale rotation loses its check-and-set; the credentials come from the newer secret.
    assert_eq!(w.token(&rec).await, r#"{"token":"s2-2"}"#);
    assert_eq!(w.minting.calls(), 2);
    assert_eq!(w.secrets.cas_at(&path), vec![(1, None), (2, Some(3))]);
    assert_eq!(w.secrets.value(&path).unwrap(), b"s2+r");
    assert!(
        !w.secrets.history(&path).contains(&b"s1+r".to_vec()),
        "the rotation of the older secret was never stored"
    );
    // What was cached is what the newer secret gave.
    assert_eq!(w.token(&rec).await, r#"{"token":"s2-2"}"#);
    assert_eq!(w.minting.calls(), 2);
}

#[tokio::test]
async fn a_row_change_during_a_mint_keeps_the_stale_mint_out_of_the_local_tier() {
    let w = Arc::new(world().await);
    let listener = w
        .platform
        .broker()
        .spawn_invalidation_listener(Duration::from_secs(60));
    until("the in-process tier", || {
        w.platform.broker().local_tier_active()
    })
    .await;
    let rec = w.connect("acct", "s1").await;

    // A mint with no change meanwhile is kept in process (once the listener has heard the
    // connect's invalidation, which drops what was kept before it).
    assert_eq!(w.token(&rec).await, r#"{"token":"s1-1"}"#);
    w.kept_after_requests(&rec).await;

    // Dropped (as a reconnect would), then minted again while the row changes.
    w.platform.broker().evict(rec.id).await;
    assert!(!w.platform.broker().holds_local_copy(rec.id));
    let release = w.minting.hold();
    let task = {
        let (w, rec) = (w.clone(), rec.clone());
        tokio::spawn(async move { w.token(&rec).await })
    };
    until("the second mint", || w.minting.calls() == 2).await;
    let update = StatusUpdate {
        status: ConnectionStatus::Degraded,
        status_reason: Some("slow".into()),
        last_validated_at: None,
    };
    w.platform
        .update_status(&w.user, rec.id, update)
        .await
        .unwrap()
        .unwrap();
    // Let the listener hear the change, so only the generation guard is left to act on the mint.
    let published = w.invalidations().len();
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(false).unwrap();
    assert_eq!(task.await.unwrap(), r#"{"token":"s1-2"}"#);
    assert_eq!(w.invalidations().len(), published);
    assert!(
        !w.platform.broker().holds_local_copy(rec.id),
        "a mint that started before the row change is not kept in process"
    );
    // The next request is served from the shared cache and kept again.
    assert_eq!(w.token(&rec).await, r#"{"token":"s1-2"}"#);
    w.kept_after_requests(&rec).await;
    assert_eq!(w.minting.calls(), 2);
    listener.abort();
}
