//! One conformance suite for every `SecretStore` backend: the same test bodies run against the
//! embedded store (a fresh temporary folder per test) and against a real OpenBao (one dev server per
//! test process, a fresh prefix per test), plus backend-specific tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_core::{
    ConnectionId, ProviderId, SecretPath, SecretStore, SecretStoreError, SecretValue, UserId,
};
use secret_store::{EmbeddedSecretStore, VaultConfig, VaultSecretStore};

/// A store under test and whatever must live as long as it.
struct Fixture {
    store: Arc<dyn SecretStore>,
    _dir: Option<tempfile::TempDir>,
}

fn embedded() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedSecretStore::open(dir.path()).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

fn vault_config(prefix: &str) -> VaultConfig {
    let bao = aurora_testkit::shared_openbao();
    let mut cfg = VaultConfig::new(bao.addr.clone(), bao.token.clone().into());
    cfg.prefix = prefix.to_owned();
    cfg
}

fn vault() -> Fixture {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let store = VaultSecretStore::new(vault_config(&prefix)).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: None,
    }
}

fn path(s: &str) -> SecretPath {
    SecretPath::from_stored(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::from_bytes(b.to_vec())
}

/// The shared test bodies.
mod bodies {
    use super::*;

    pub async fn ping(s: &dyn SecretStore) {
        s.ping().await.unwrap();
    }

    pub async fn round_trip_json(s: &dyn SecretStore) {
        let p = path("users/alice/scaleway/c1");
        let v = SecretValue::encode(&serde_json::json!({"secret_key": "hunter2", "n": 1})).unwrap();
        s.put(&p, &v).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap(), Some(v));
    }

    pub async fn round_trip_binary(s: &dyn SecretStore) {
        let p = path("system/cache-key");
        let bytes: Vec<u8> = (0..=255u8).rev().chain([0, 0xff, 0xc3, 0x28]).collect();
        assert!(std::str::from_utf8(&bytes).is_err());
        s.put(&p, &value(&bytes)).await.unwrap();
        let got = s.get(&p).await.unwrap().unwrap();
        assert_eq!(got.expose_bytes(), &bytes[..]);
        // Empty values are values too.
        let e = path("system/empty");
        s.put(&e, &value(b"")).await.unwrap();
        assert_eq!(s.get(&e).await.unwrap().unwrap().len(), 0);
    }

    pub async fn overwrite(s: &dyn SecretStore) {
        let p = path("users/bob/scaleway/c1");
        s.put(&p, &value(b"first")).await.unwrap();
        s.put(&p, &value(b"second, longer")).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"second, longer")));
        s.put(&p, &value(b"3")).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"3")));
        assert_eq!(s.list(&path("users/bob/scaleway")).await.unwrap(), ["c1"]);
    }

    pub async fn get_missing(s: &dyn SecretStore) {
        assert_eq!(s.get(&path("users/nobody/scaleway/x")).await.unwrap(), None);
    }

    pub async fn delete_then_get(s: &dyn SecretStore) {
        let p = path("users/carol/scaleway/c1");
        s.put(&p, &value(b"v1")).await.unwrap();
        s.put(&p, &value(b"v2")).await.unwrap();
        s.delete(&p).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap(), None);
        assert!(s
            .list(&path("users/carol/scaleway"))
            .await
            .unwrap()
            .is_empty());
        // A new secret at the same path starts afresh.
        s.put(&p, &value(b"v3")).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"v3")));
    }

    pub async fn delete_missing(s: &dyn SecretStore) {
        s.delete(&path("users/nobody/scaleway/x")).await.unwrap();
        s.delete(&path("users/nobody/scaleway/x")).await.unwrap();
    }

    pub async fn list(s: &dyn SecretStore) {
        let u = UserId::parse("dave").unwrap();
        let p = ProviderId::from_static("scaleway");
        let folder = SecretPath::user_provider_folder(&u, &p);
        assert!(s.list(&folder).await.unwrap().is_empty());
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..3 {
            let id = ConnectionId::new();
            s.put(&SecretPath::connection(&u, &p, id), &value(b"x"))
                .await
                .unwrap();
            ids.push(id.to_string());
        }
        // Nested deeper, beside, and in a folder whose name shares the prefix: none are listed.
        s.put(
            &folder.child("nested").unwrap().child("deep").unwrap(),
            &value(b"x"),
        )
        .await
        .unwrap();
        s.put(&path("users/dave/other/x"), &value(b"x"))
            .await
            .unwrap();
        s.put(&path("users/dave/scaleway2/y"), &value(b"x"))
            .await
            .unwrap();
        s.put(&path("users/dave/scaleway_z"), &value(b"x"))
            .await
            .unwrap();
        ids.sort();
        assert_eq!(s.list(&folder).await.unwrap(), ids);
        // Children are rebuilt from the names.
        let first = folder.child(&ids[0]).unwrap();
        assert_eq!(s.get(&first).await.unwrap(), Some(value(b"x")));
        // Unknown folders and a leaf used as a folder are empty.
        assert!(s
            .list(&path("users/nobody/scaleway"))
            .await
            .unwrap()
            .is_empty());
        assert!(s.list(&first).await.unwrap().is_empty());
        assert_eq!(s.list(&path("users/dave/other")).await.unwrap(), ["x"]);
    }

    pub async fn isolation(s: &dyn SecretStore) {
        let p = ProviderId::from_static("scaleway");
        let a = UserId::parse("alice").unwrap();
        let b = UserId::parse("alice2").unwrap();
        let id = ConnectionId::new();
        let pa = SecretPath::connection(&a, &p, id);
        let pb = SecretPath::connection(&b, &p, id);
        s.put(&pa, &value(b"alice's")).await.unwrap();
        assert_eq!(s.get(&pb).await.unwrap(), None);
        s.put(&pb, &value(b"bob's")).await.unwrap();
        assert_eq!(s.get(&pa).await.unwrap(), Some(value(b"alice's")));
        assert_eq!(s.get(&pb).await.unwrap(), Some(value(b"bob's")));
        assert_eq!(
            s.list(&SecretPath::user_provider_folder(&a, &p))
                .await
                .unwrap(),
            [id.to_string()]
        );
        s.delete(&pa).await.unwrap();
        assert_eq!(s.get(&pb).await.unwrap(), Some(value(b"bob's")));
    }

    pub async fn special_user_ids(s: &dyn SecretStore) {
        let p = ProviderId::from_static("scaleway");
        for (i, user) in ["alice@example.io", "svc:deploy.bot", "..", ".", "a-b_c"]
            .iter()
            .enumerate()
        {
            let u = UserId::parse(user).unwrap();
            let id = ConnectionId::new();
            let sp = SecretPath::connection(&u, &p, id);
            let v = value(format!("secret {i}").as_bytes());
            s.put(&sp, &v).await.unwrap();
            assert_eq!(s.get(&sp).await.unwrap(), Some(v), "{user}");
            let folder = SecretPath::user_provider_folder(&u, &p);
            assert_eq!(s.list(&folder).await.unwrap(), [id.to_string()], "{user}");
            s.delete(&sp).await.unwrap();
            assert_eq!(s.get(&sp).await.unwrap(), None, "{user}");
        }
        // Stored paths with characters that mean something in a URL or a shell.
        let odd = path("users/x?y#z%20&/p q/c+1");
        s.put(&odd, &value(b"odd")).await.unwrap();
        assert_eq!(s.get(&odd).await.unwrap(), Some(value(b"odd")));
        assert_eq!(s.list(&path("users/x?y#z%20&/p q")).await.unwrap(), ["c+1"]);
    }

    pub async fn concurrent_puts(s: Arc<dyn SecretStore>) {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let p = path(&format!("users/u{}/scaleway/c{i}", i % 2));
                s.put(&p, &value(format!("v{i}").as_bytes())).await.unwrap();
                // and the same path from every task
                s.put(&path("users/shared/scaleway/same"), &value(b"same"))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for i in 0..16 {
            let p = path(&format!("users/u{}/scaleway/c{i}", i % 2));
            assert_eq!(
                s.get(&p).await.unwrap(),
                Some(value(format!("v{i}").as_bytes()))
            );
        }
        assert_eq!(s.list(&path("users/u0/scaleway")).await.unwrap().len(), 8);
        assert_eq!(s.list(&path("users/u1/scaleway")).await.unwrap().len(), 8);
        assert_eq!(
            s.get(&path("users/shared/scaleway/same")).await.unwrap(),
            Some(value(b"same"))
        );
    }

    pub async fn versions_count_writes(s: &dyn SecretStore) {
        let p = path("users/vera/scaleway/c1");
        assert_eq!(s.get_versioned(&p).await.unwrap(), None);
        s.put(&p, &value(b"v1")).await.unwrap();
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!((v.value.clone(), v.version), (value(b"v1"), 1));
        s.put(&p, &value(b"v2")).await.unwrap();
        assert_eq!(s.get_versioned(&p).await.unwrap().unwrap().version, 2);
        // A delete starts the count again.
        s.delete(&p).await.unwrap();
        assert_eq!(s.get_versioned(&p).await.unwrap(), None);
        s.put(&p, &value(b"again")).await.unwrap();
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!((v.value, v.version), (value(b"again"), 1));
    }

    pub async fn check_and_set(s: &dyn SecretStore) {
        let p = path("users/carl/gcp/c1");
        // 0 means "only if absent".
        assert_eq!(s.put_cas(&p, &value(b"first"), 0).await.unwrap(), 1);
        let e = s.put_cas(&p, &value(b"again"), 0).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Conflict(_)), "{e}");
        // The expected version writes the next one.
        assert_eq!(s.put_cas(&p, &value(b"second"), 1).await.unwrap(), 2);
        // A stale writer (who read version 1) never overwrites version 2.
        let e = s.put_cas(&p, &value(b"stale"), 1).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Conflict(_)), "{e}");
        assert!(!e.to_string().contains("stale"));
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!((v.value, v.version), (value(b"second"), 2));
        // A version from the future is a conflict too; a plain put moves the version on.
        let e = s.put_cas(&p, &value(b"x"), 7).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Conflict(_)), "{e}");
        s.put(&p, &value(b"by put")).await.unwrap();
        let e = s.put_cas(&p, &value(b"y"), 2).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Conflict(_)), "{e}");
        assert_eq!(s.put_cas(&p, &value(b"z"), 3).await.unwrap(), 4);
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"z")));
        // Absent path with an expected version: conflict, nothing written.
        let q = path("users/carl/gcp/absent");
        let e = s.put_cas(&q, &value(b"v"), 3).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Conflict(_)), "{e}");
        assert_eq!(s.get(&q).await.unwrap(), None);
    }

    /// Writers racing from the same read version: exactly one wins, the others get `Conflict`.
    pub async fn concurrent_check_and_set(s: Arc<dyn SecretStore>) {
        let p = path("users/race/gcp/c1");
        s.put(&p, &value(b"base")).await.unwrap();
        let base = s.get_versioned(&p).await.unwrap().unwrap().version;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = Arc::clone(&s);
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                s.put_cas(&p, &value(format!("writer {i}").as_bytes()), base)
                    .await
                    .map(|v| (i, v))
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => won.push(w),
                Err(SecretStoreError::Conflict(_)) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(won.len(), 1, "{won:?}");
        let (i, version) = won[0];
        assert_eq!(version, base + 1);
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!(
            (v.value, v.version),
            (value(format!("writer {i}").as_bytes()), base + 1)
        );
    }

    pub async fn get_or_create(s: &dyn SecretStore) {
        let p = path("system/cache-key");
        // Absent: the candidate is stored and returned, as version 1.
        assert_eq!(
            s.get_or_create(&p, &value(b"first")).await.unwrap(),
            value(b"first")
        );
        let v = s.get_versioned(&p).await.unwrap().unwrap();
        assert_eq!((v.value, v.version), (value(b"first"), 1));
        // Present: the stored value, whatever the candidate; nothing is written.
        assert_eq!(
            s.get_or_create(&p, &value(b"second")).await.unwrap(),
            value(b"first")
        );
        assert_eq!(s.get_versioned(&p).await.unwrap().unwrap().version, 1);
        // After a delete it is created afresh.
        s.delete(&p).await.unwrap();
        assert_eq!(
            s.get_or_create(&p, &value(b"third")).await.unwrap(),
            value(b"third")
        );
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"third")));
    }

    /// Replicas starting at once: every caller gets the one stored value, whichever candidate won.
    pub async fn concurrent_get_or_create(s: Arc<dyn SecretStore>) {
        for round in 0..3 {
            let p = path(&format!("system/shared-key-{round}"));
            let mut tasks = Vec::new();
            for i in 0..16 {
                let s = Arc::clone(&s);
                let p = p.clone();
                tasks.push(tokio::spawn(async move {
                    s.get_or_create(&p, &value(format!("candidate {i}").as_bytes()))
                        .await
                        .unwrap()
                }));
            }
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await.unwrap());
            }
            let stored = s.get(&p).await.unwrap().unwrap();
            assert!(
                got.iter().all(|v| *v == stored),
                "round {round}: the callers got different values"
            );
            assert!(std::str::from_utf8(stored.expose_bytes())
                .unwrap()
                .starts_with("candidate "));
            // One write only: the losers wrote nothing.
            assert_eq!(s.get_versioned(&p).await.unwrap().unwrap().version, 1);
        }
    }

    pub async fn debug_and_errors_hide_values(s: &dyn SecretStore) {
        let p = path("users/eve/scaleway/c1");
        let v = value(b"hunter2-very-secret");
        s.put(&p, &v).await.unwrap();
        let got = s.get(&p).await.unwrap();
        assert!(!format!("{got:?}").contains("hunter2"));
    }
}

/// The in-process backend always runs; the server one unless it is unavailable and not required
/// (see `aurora_testkit::servers_available`).
fn available(backend: &str) -> bool {
    backend == "embedded" || aurora_testkit::servers_available(backend)
}

macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn ping() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::ping(&*f.store).await;
            }
            #[tokio::test]
            async fn round_trip_json() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::round_trip_json(&*f.store).await;
            }
            #[tokio::test]
            async fn round_trip_binary() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::round_trip_binary(&*f.store).await;
            }
            #[tokio::test]
            async fn overwrite() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::overwrite(&*f.store).await;
            }
            #[tokio::test]
            async fn get_missing() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::get_missing(&*f.store).await;
            }
            #[tokio::test]
            async fn delete_then_get() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::delete_then_get(&*f.store).await;
            }
            #[tokio::test]
            async fn delete_missing() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::delete_missing(&*f.store).await;
            }
            #[tokio::test]
            async fn list() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::list(&*f.store).await;
            }
            #[tokio::test]
            async fn isolation() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::isolation(&*f.store).await;
            }
            #[tokio::test]
            async fn special_user_ids() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::special_user_ids(&*f.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_puts() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::concurrent_puts(Arc::clone(&f.store)).await;
            }
            #[tokio::test]
            async fn versions_count_writes() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::versions_count_writes(&*f.store).await;
            }
            #[tokio::test]
            async fn check_and_set() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::check_and_set(&*f.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_check_and_set() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::concurrent_check_and_set(Arc::clone(&f.store)).await;
            }
            #[tokio::test]
            async fn get_or_create() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::get_or_create(&*f.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_get_or_create() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::concurrent_get_or_create(Arc::clone(&f.store)).await;
            }
            #[tokio::test]
            async fn debug_and_errors_hide_values() {
                if !super::available(stringify!($backend)) {
                    return;
                }
                let f = $make();
                bodies::debug_and_errors_hide_values(&*f.store).await;
            }
        }
    };
}

conformance!(embedded, super::embedded);
conformance!(vault, super::vault);

/// Tests only the Vault / OpenBao backend has.
mod vault_only {
    use super::*;

    fn assert_unavailable(r: Result<(), SecretStoreError>, started: Instant) {
        match r {
            Err(SecretStoreError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn closed_port_is_unavailable_promptly() {
        let port = aurora_testkit::free_port();
        let cfg = VaultConfig::new(format!("http://127.0.0.1:{port}"), "t".to_owned().into());
        let s = VaultSecretStore::new(cfg).unwrap();
        let t = Instant::now();
        assert_unavailable(s.ping().await, t);
        let t = Instant::now();
        assert_unavailable(s.get(&path("users/a/b/c")).await.map(drop), t);
        let t = Instant::now();
        assert_unavailable(s.put(&path("users/a/b/c"), &value(b"v")).await, t);
    }

    #[tokio::test]
    async fn stopped_server_is_unavailable() {
        let mut bao = aurora_testkit::OpenBao::start().unwrap();
        let cfg = VaultConfig::new(bao.addr.clone(), bao.token.clone().into());
        let s = VaultSecretStore::new(cfg).unwrap();
        s.put(&path("system/x"), &value(b"v")).await.unwrap();
        bao.stop();
        let t = Instant::now();
        assert_unavailable(s.get(&path("system/x")).await.map(drop), t);
    }

    /// OpenBao answers a token it does not know with 403 `{"errors":["permission denied"]}`.
    #[tokio::test]
    async fn wrong_token_is_refused() {
        let bao = aurora_testkit::shared_openbao();
        let cfg = VaultConfig::new(bao.addr.clone(), "not-the-token".to_owned().into());
        let s = VaultSecretStore::new(cfg).unwrap();
        for r in [
            s.ping().await,
            s.get(&path("users/a/b/c")).await.map(drop),
            s.put(&path("users/a/b/c"), &value(b"v")).await,
            s.delete(&path("users/a/b/c")).await,
            s.list(&path("users/a/b")).await.map(drop),
        ] {
            match r {
                Err(SecretStoreError::Refused(m)) => {
                    assert!(m.contains("permission denied"), "{m}")
                }
                other => panic!("expected Refused, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn missing_mount_is_refused_not_empty() {
        let mut cfg = vault_config("aurora");
        cfg.mount = "no-such-mount".into();
        let s = VaultSecretStore::new(cfg).unwrap();
        assert!(matches!(s.ping().await, Err(SecretStoreError::Refused(_))));
        assert!(matches!(
            s.list(&path("users/a/b")).await,
            Err(SecretStoreError::Refused(_))
        ));
        assert!(matches!(
            s.put(&path("users/a/b/c"), &value(b"v")).await,
            Err(SecretStoreError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn layout_and_foreign_documents() {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let bao = aurora_testkit::shared_openbao();
        let s = VaultSecretStore::new(vault_config(&prefix)).unwrap();
        s.put(&path("users/a@b.io/scaleway/c1"), &value(b"\x00\x01"))
            .await
            .unwrap();
        // The secret is at <mount>/data/<prefix>/<path>, as {"v": base64}.
        let client = reqwest::Client::new();
        let url = format!(
            "{}/v1/secret/data/{prefix}/users/a@b.io/scaleway/c1",
            bao.addr
        );
        let doc: serde_json::Value = client
            .get(&url)
            .header("X-Vault-Token", &bao.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["data"]["data"], serde_json::json!({"v": "AAE="}));
        // A document that Aurora did not write is Corrupt, not a panic or a wrong value.
        let url = format!(
            "{}/v1/secret/data/{prefix}/users/x/scaleway/foreign",
            bao.addr
        );
        let status = client
            .post(&url)
            .header("X-Vault-Token", &bao.token)
            .json(&serde_json::json!({"data": {"password": "p"}}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
        let e = s.get(&path("users/x/scaleway/foreign")).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
        assert!(!e.to_string().contains("\"p\""));
    }

    #[test]
    fn bad_address_is_an_error_not_a_panic() {
        let cfg = VaultConfig::new("not a url", "t".to_owned().into());
        assert!(matches!(
            VaultSecretStore::new(cfg),
            Err(SecretStoreError::Refused(_))
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = VaultConfig::new("http://127.0.0.1:8200", "tok-123-secret".to_owned().into());
        assert!(!format!("{cfg:?}").contains("tok-123-secret"));
        let s = VaultSecretStore::new(cfg).unwrap();
        assert!(!format!("{s:?}").contains("tok-123-secret"));
    }
}

/// Tests only the embedded backend has.
mod embedded_only {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(&dir.path().join("nested/store")).unwrap();
        let meta = std::fs::metadata(s.key_file()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
    }

    #[tokio::test]
    async fn reopen_reads_old_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let p = path("users/alice/scaleway/c1");
        {
            let s = EmbeddedSecretStore::open(dir.path()).unwrap();
            s.put(&p, &value(b"kept")).await.unwrap();
        }
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        assert_eq!(s.get(&p).await.unwrap(), Some(value(b"kept")));
        assert_eq!(s.list(&path("users/alice/scaleway")).await.unwrap(), ["c1"]);
    }

    #[tokio::test]
    async fn another_key_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = path("users/alice/scaleway/c1");
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        s.put(&p, &value(b"kept")).await.unwrap();
        drop(s);
        // Replace the key with another valid key.
        let key = dir.path().join("secret-store.key");
        std::fs::write(&key, [42u8; 32]).unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let e = s.get(&p).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
        let e = s.list(&path("users/alice/scaleway")).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
    }

    #[tokio::test]
    async fn no_plaintext_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let secret = b"hunter2-plaintext-marker";
        let user = "needle-user@example.io";
        let p = path(&format!("users/{user}/scaleway/needle-connection"));
        s.put(&p, &value(secret)).await.unwrap();
        s.put(&p, &value(secret)).await.unwrap();
        s.put(&path("system/needle-system"), &value(secret))
            .await
            .unwrap();
        let needles: [&[u8]; 5] = [
            secret,
            user.as_bytes(),
            b"needle-connection",
            b"needle-system",
            b"hunter2",
        ];
        let mut files = 0;
        let mut stack = vec![dir.path().to_owned()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.contains("needle"),
                    "a file name holds the path: {name}"
                );
                let ty = entry.file_type().unwrap();
                if ty.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                files += 1;
                let content = std::fs::read(entry.path()).unwrap();
                for n in needles {
                    assert!(
                        !content.windows(n.len()).any(|w| w == n),
                        "{} holds plaintext",
                        entry.path().display()
                    );
                }
                if entry.path() != s.key_file() {
                    let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "{}", entry.path().display());
                }
            }
        }
        // the key file and two secrets, no temporary file left over
        assert_eq!(files, 3);
    }

    /// Two stores on one folder (as two processes would be; each has its own write lock): the
    /// exclusive create still lets exactly one candidate in, and nothing temporary is left over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn get_or_create_is_exclusive_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<EmbeddedSecretStore> = (0..4)
            .map(|_| EmbeddedSecretStore::open(dir.path()).unwrap())
            .collect();
        for round in 0..20 {
            let p = path(&format!("system/key-{round}"));
            let mut tasks = Vec::new();
            for (i, s) in stores.iter().enumerate() {
                for j in 0..4 {
                    let s = s.clone();
                    let p = p.clone();
                    tasks.push(tokio::spawn(async move {
                        s.get_or_create(&p, &value(format!("c{i}-{j}").as_bytes()))
                            .await
                            .unwrap()
                    }));
                }
            }
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await.unwrap());
            }
            let stored = stores[0].get(&p).await.unwrap().unwrap();
            assert!(got.iter().all(|v| *v == stored), "round {round}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("secrets"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// A file that cannot be opened is an error, never replaced by a new candidate.
    #[tokio::test]
    async fn get_or_create_keeps_an_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let p = path("system/cache-key");
        s.put(&p, &value(b"kept")).await.unwrap();
        drop(s);
        let key = dir.path().join("secret-store.key");
        std::fs::write(&key, [42u8; 32]).unwrap();
        let s = EmbeddedSecretStore::open(dir.path()).unwrap();
        let e = s.get_or_create(&p, &value(b"new")).await.unwrap_err();
        assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
    }

    #[tokio::test]
    async fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedSecretStore::open(dir.path()).unwrap());
        let key = dir.path().join("secret-store.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("secret-store.key"), "{e}");
    }
}
