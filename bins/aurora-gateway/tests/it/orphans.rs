//! No secret without its row, on both backends: 20 concurrent connects of one account, and a
//! connect cut off between its secret write and its row write (as by `kill -9`) followed by the
//! reconciler, leave the secret store holding exactly the secrets that the rows reference.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{new_user as user, trusted, Backend, ScwAccount, TestApp, INTERNAL_SECRET};
use connector_core::{
    async_trait, Actor, ConnectSpec, ConnectionStatus, ProviderId, SecretPath, SecretStore,
    SecretStoreError, SecretValue, Settings, UserId, VersionedSecret,
};
use connector_lifecycle::{LifecycleConfig, Reconciler};
use serde_json::Value;
use tokio::sync::Notify;

/// The connection secrets in the store, and the secret paths the rows of `users` reference.
async fn secrets_and_rows(app: &TestApp, users: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let secrets = app
        .platform
        .secrets()
        .scan(&SecretPath::users_root())
        .await
        .expect("scan")
        .into_iter()
        .filter(|p| p.connection_id().is_some())
        .map(|p| p.as_str().to_owned())
        .collect();
    let mut rows = BTreeSet::new();
    for u in users {
        let u = UserId::parse(u).unwrap();
        for c in app
            .platform
            .store()
            .list_connections(&u, None)
            .await
            .unwrap()
        {
            rows.insert(c.secret_ref);
        }
    }
    (secrets, rows)
}

async fn concurrent_connects_of_one_account_leave_one_secret(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let sends = (0..20).map(|_| {
        app.post(&u, "/scaleway_api/scaleway/connect")
            .header("X-Internal-Secret", INTERNAL_SECRET)
            .json(&acct.connect_body())
            .send()
    });
    let answers = futures::future::join_all(sends).await;
    let mut ids = BTreeSet::new();
    for a in answers {
        let a = a.unwrap();
        let status = a.status();
        let body: Value = a.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        ids.insert(body["connectionId"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ids.len(),
        1,
        "every connect answers the one connection: {ids:?}"
    );
    let (secrets, rows) = secrets_and_rows(&app, &[&u]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        secrets, rows,
        "the secret store holds exactly the rows' secrets"
    );
    // The one secret is usable: credentials come from it.
    let id = ids.into_iter().next().unwrap();
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains(&acct.access_key), "{body}");
}

/// A secret store that, once armed, completes one `put` and then never returns: the caller is
/// stuck between its secret write and its row write, where a `kill -9` would leave it.
struct StallAfterPut {
    inner: Arc<dyn SecretStore>,
    armed: AtomicBool,
    stalled: Notify,
}

#[async_trait]
impl SecretStore for StallAfterPut {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        self.inner.ping().await
    }
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        self.inner.put(path, value).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.stalled.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        self.inner.get(path).await
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        self.inner.delete(path).await
    }
    async fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        self.inner.list(folder).await
    }
    async fn get_versioned(
        &self,
        path: &SecretPath,
    ) -> Result<Option<VersionedSecret>, SecretStoreError> {
        self.inner.get_versioned(path).await
    }
    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        self.inner.put_cas(path, value, expected).await
    }
    async fn scan(&self, folder: &SecretPath) -> Result<Vec<SecretPath>, SecretStoreError> {
        self.inner.scan(folder).await
    }
    async fn written_at(
        &self,
        path: &SecretPath,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SecretStoreError> {
        self.inner.written_at(path).await
    }
}

fn reconciler(app: &TestApp, grace: Duration) -> Reconciler {
    let cfg = LifecycleConfig {
        reconcile_grace: grace,
        ..LifecycleConfig::default()
    };
    Reconciler::new(app.platform.clone(), Default::default(), cfg)
}

async fn a_connect_killed_between_its_writes_is_reconciled(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    // A connection that stays, and a user secret that is not a connection's (AWS external ID).
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
    let owner = UserId::parse(&u).unwrap();
    let aws = ProviderId::from_static("aws");
    let external = SecretPath::user_provider_folder(&owner, &aws)
        .child("external-id")
        .unwrap();
    app.platform
        .secrets()
        .put(&external, &SecretValue::from_bytes(b"ext".to_vec()))
        .await
        .unwrap();

    // The connect that dies after writing its secret.
    let stall = Arc::new(StallAfterPut {
        inner: app.platform.secrets().clone(),
        armed: AtomicBool::new(true),
        stalled: Notify::new(),
    });
    let platform = connector_core::Platform::new(
        app.store.clone(),
        stall.clone(),
        app.platform.cache().clone(),
        Settings::new(),
    )
    .await
    .expect("platform");
    let spec = ConnectSpec {
        user: owner.clone(),
        provider: ProviderId::from_static("scaleway"),
        account_id: "killed-account".into(),
        display_name: None,
        read_only: false,
        metadata: serde_json::json!({}),
        expires_at: None,
        status: ConnectionStatus::Active,
        secret: SecretValue::from_bytes(b"{\"accessKey\":\"x\",\"secretKey\":\"y\"}".to_vec()),
    };
    let stalled = stall.stalled.notified();
    let task = tokio::spawn(async move { platform.connect(spec, Actor::User).await });
    tokio::time::timeout(Duration::from_secs(30), stalled)
        .await
        .expect("the connect reached its secret write");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let (secrets, rows) = secrets_and_rows(&app, &[&u]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        secrets.len(),
        2,
        "the killed connect left its secret: {secrets:?}"
    );
    let orphan: Vec<&String> = secrets.difference(&rows).collect();
    assert_eq!(orphan.len(), 1);

    // Inside the grace period the secret is left alone (a connect in flight looks the same).
    let r = reconciler(&app, Duration::from_secs(600)).run_once().await;
    assert_eq!(r.orphans_deleted, 0, "{r:?}");
    assert_eq!(r.orphans_young, 1, "{r:?}");
    let (secrets, _) = secrets_and_rows(&app, &[&u]).await;
    assert_eq!(secrets.len(), 2);

    // Past it, the orphan goes; the row's secret and the external ID stay.
    let r = reconciler(&app, Duration::ZERO).run_once().await;
    assert_eq!(r.orphans_deleted, 1, "{r:?}");
    let (secrets, rows) = secrets_and_rows(&app, &[&u]).await;
    assert_eq!(
        secrets, rows,
        "the secret store holds exactly the rows' secrets"
    );
    assert!(app
        .platform
        .secrets()
        .get(&external)
        .await
        .unwrap()
        .is_some());
    let metrics = app.platform.metrics().render();
    assert!(
        metrics.contains("aurora_reconciler_repairs_total{kind=\"orphaned_secret\"} 1"),
        "{metrics}"
    );
    // A second sweep finds nothing.
    let r = reconciler(&app, Duration::ZERO).run_once().await;
    assert_eq!(r.orphans_deleted, 0, "{r:?}");
}

both_backends!(
    concurrent_connects_of_one_account_leave_one_secret,
    a_connect_killed_between_its_writes_is_reconciled,
);
