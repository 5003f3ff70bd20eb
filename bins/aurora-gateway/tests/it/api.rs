//! HTTP-surface tests of the gateway with the Scaleway plugin, run against the embedded default and
//! against real PostgreSQL + Redis + OpenBao.

use crate::common::{
    connect_scaleway as connect, new_user as user, trusted, Backend, ScwAccount, TestApp,
    INTERNAL_SECRET,
};
use connector_core::SecretPath;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

/// Assert that a secret value appears in no log line and no database column.
async fn assert_not_leaked(app: &TestApp, secret: &str) {
    let dump = app.db_dump().await;
    // The log capture really holds data, so the search below can fail.
    assert!(!dump.contains(secret), "a secret reached the database");
    let logs = crate::common::captured_logs();
    assert!(logs.contains("aurora::http"), "request logs are captured");
    assert!(!logs.contains(secret), "a secret reached the logs");
}

async fn providers_are_listed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let resp = app.get("u1", "/api/providers").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let scw = body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "scaleway")
        .expect("scaleway listed");
    assert_eq!(scw["displayName"], "Scaleway");
    assert_eq!(scw["authKind"], "api_key");
    assert!(scw["capabilities"].as_array().unwrap().len() >= 2);

    let resp = app
        .http
        .get(app.url("/api/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "unauthenticated");
}

async fn scaleway_connect_list_credentials_disconnect(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let acct = ScwAccount::new(3);
    acct.mount(&app.scaleway).await;
    let u = user();

    let body = connect(&app, &u, &acct).await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["organizationId"], acct.organization_id);
    assert_eq!(body["projectId"], acct.default_project);
    assert_eq!(body["projectsCount"], 3);
    let id = body["connectionId"].as_str().unwrap().to_owned();

    // Listed, with the §7 fields.
    let list: Value = app
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["id"], id);
    assert_eq!(c["provider"], "scaleway");
    assert_eq!(c["accountId"], acct.organization_id);
    assert_eq!(c["status"], "active");
    for field in [
        "displayName",
        "statusReason",
        "readOnly",
        "createdAt",
        "updatedAt",
        "lastValidatedAt",
        "expiresAt",
    ] {
        assert!(c.get(field).is_some(), "missing {field}");
    }

    // Projects route, every project.
    let projects: Value = app
        .get(&u, "/scaleway_api/scaleway/projects")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(projects["projects"].as_array().unwrap().len(), 3);

    // The secret is in the secret store, at the connection's path.
    let path = SecretPath::from_stored(&format!("users/{u}/scaleway/{id}")).unwrap();
    let stored = app
        .platform
        .secrets()
        .get(&path)
        .await
        .unwrap()
        .expect("secret stored");
    let stored: Value = stored.decode().unwrap();
    assert_eq!(stored["secretKey"], acct.secret_key);

    // Credentials on use (twice: the second comes from the cache).
    for _ in 0..2 {
        let resp = app.credentials(&u, &id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let creds: Value = resp.json().await.unwrap();
        assert_eq!(creds["connectionId"], id);
        assert_eq!(creds["provider"], "scaleway");
        assert_eq!(creds["mode"], "full");
        assert_eq!(creds["credentials"]["accessKey"], acct.access_key);
        assert_eq!(creds["credentials"]["secretKey"], acct.secret_key);
        assert_eq!(creds["credentials"]["organizationId"], acct.organization_id);
    }
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The second came from a cache: the shared one (`hit`) or the in-process tier (`local`).
    let hits: u64 = ["hit", "local"]
        .iter()
        .filter_map(|r| {
            let series = format!("aurora_cache_lookups_total{{result=\"{r}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum();
    assert!(hits >= 1, "{metrics}");
    assert!(
        metrics.contains("aurora_provider_call_duration_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/scaleway_api/scaleway/connect\""),
        "{metrics}"
    );

    // Live validation.
    let resp = app
        .post(&u, &format!("/api/connections/{id}/validate"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "active");
    assert!(v["lastValidatedAt"].is_string());

    // The dump really holds the rows (the access key id is not secret), so the search can fail.
    assert!(app.db_dump().await.contains(&acct.access_key));
    assert_not_leaked(&app, &acct.secret_key).await;

    // Disconnect through the provider route: secret, cache and row are gone.
    let resp = app
        .post(&u, "/scaleway_api/scaleway/disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["disconnected"], 1);
    assert!(app.platform.secrets().get(&path).await.unwrap().is_none());
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let key = connector_core::broker::cache_key(
        id.parse().unwrap(),
        connector_core::CredentialMode::Full,
    );
    assert!(
        app.platform.cache().get(&key).await.unwrap().is_none(),
        "cache evicted"
    );
    let audit: Value = app
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
    assert!(
        actions.contains(&"connect")
            && actions.contains(&"disconnect")
            && actions.contains(&"credentials_issued"),
        "{actions:?}"
    );
    // Every issue is accounted for: the two issues above, counted in one line or two.
    let issued: u64 = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "credentials_issued")
        .map(|e| {
            assert_eq!(e["actor"], "internal", "{e}");
            assert_eq!(e["detail"]["mode"], "full", "{e}");
            e["detail"]["count"].as_u64().unwrap_or(1)
        })
        .sum();
    assert_eq!(issued, 2, "{audit}");
    assert_not_leaked(&app, &acct.secret_key).await;
}

async fn scaleway_bad_input_and_provider_errors(b: Backend) {
    let app = TestApp::spawn(b).await;
    let u = user();
    let acct = ScwAccount::new(1);

    // Format checks: 400, naming the field, never echoing the secret.
    let cases = [
        json!({"accessKey": "AKIA123", "secretKey": acct.secret_key}),
        json!({"accessKey": acct.access_key, "secretKey": "not-a-uuid-hunter2"}),
        json!({"accessKey": acct.access_key, "secretKey": acct.secret_key, "organizationId": "x"}),
        json!({"accessKey": acct.access_key}),
    ];
    for body in cases {
        let resp = app
            .post(&u, "/scaleway_api/scaleway/connect")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["code"], "invalid_request");
        assert!(!e["message"].as_str().unwrap().contains("hunter2"));
    }

    // Owner binding.
    let mut body = acct.connect_body();
    body["userId"] = json!("someone-else");
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "user_mismatch");

    // snake_case aliases are accepted; Scaleway refuses the key → 422.
    Mock::given(method("GET"))
        .and(path_regex("^/iam/v1alpha1/api-keys/.*"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"message": "authentication is denied", "type": "denied_authentication"}),
        ))
        .up_to_n_times(1)
        .mount(&app.scaleway)
        .await;
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&json!({"access_key": acct.access_key, "secret_key": acct.secret_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "credentials_rejected");
    assert!(
        !e["message"]
            .as_str()
            .unwrap()
            .contains("denied_authentication"),
        "no raw provider body"
    );

    // Scaleway 5xx → 502.
    Mock::given(method("GET"))
        .and(path_regex("^/iam/v1alpha1/api-keys/.*"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.scaleway)
        .await;
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "provider_unavailable"
    );

    // Nothing was stored by any of these.
    let list: Value = app
        .get(&u, "/api/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    let folder = SecretPath::user_provider_folder(
        &connector_core::UserId::parse(&u).unwrap(),
        &connector_core::ProviderId::from_static("scaleway"),
    );
    assert!(app
        .platform
        .secrets()
        .list(&folder)
        .await
        .unwrap()
        .is_empty());
    assert_not_leaked(&app, &acct.secret_key).await;
}

async fn users_are_isolated(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let (alice, bob) = (user(), user());
    let id = connect(&app, &alice, &acct).await["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = uuid::Uuid::new_v4().to_string();

    for target in [&id, &missing] {
        for (verb, p) in [
            ("GET", format!("/api/connections/{target}")),
            ("DELETE", format!("/api/connections/{target}")),
            ("POST", format!("/api/connections/{target}/validate")),
            ("GET", format!("/api/connections/{target}/credentials")),
        ] {
            let req = match verb {
                "GET" => app.get(&bob, &p),
                "DELETE" => app.delete(&bob, &p),
                _ => app.post(&bob, &p),
            };
            let resp = req
                .header("X-Internal-Secret", INTERNAL_SECRET)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "{verb} {p}");
            let body: Value = resp.json().await.unwrap();
            // Identical answer for another user's id and an id that does not exist.
            assert_eq!(body["code"], "not_found");
            assert_eq!(body["message"], "no such connection");
        }
    }
    let list: Value = app
        .get(&bob, "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    // Bob's provider disconnect does not touch Alice's connection.
    let d: Value = app
        .post(&bob, "/scaleway_api/scaleway/disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["disconnected"], 0);
    let resp = app
        .get(&alice, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn multi_account_and_reconnect(b: Backend) {
    let app = TestApp::spawn(b).await;
    let u = user();
    let a = ScwAccount::new(2);
    let b2 = ScwAccount::new(1);
    a.mount(&app.scaleway).await;
    b2.mount(&app.scaleway).await;
    let first = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&a.connect_body())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    // Same organization again: the same connection is updated.
    let mut again = a.connect_body();
    again["projectId"] = json!(a.projects[1].0);
    let second: Value = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&again)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["connectionId"], first["connectionId"]);
    assert_eq!(second["projectId"], a.projects[1].0);
    // Another organization adds a connection.
    let third: Value = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&b2.connect_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(third["connectionId"], first["connectionId"]);
    let list: Value = app
        .get(&u, "/api/connections?provider=scaleway")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    // A project of another organization is refused.
    let mut foreign = a.connect_body();
    foreign["projectId"] = json!(b2.projects[0].0);
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Delete one through §7.
    let id = third["connectionId"].as_str().unwrap();
    let resp = app
        .delete(&u, &format!("/api/connections/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["disconnected"], 1);
    let list: Value = app
        .get(&u, "/api/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn contract_conventions(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = user();
    // Unknown path: 404 with the error body, even without identity.
    let resp = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "not_found");
    // Wrong method on a known path.
    let resp = app.http.put(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "error");
    // The internal secret is required when configured.
    let resp = app.get(&u, "/api/connections").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .get(&u, "/api/connections")
        .header("X-Internal-Secret", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Malformed X-User-ID.
    let resp = app
        .get("bad user!", "/api/connections")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Body over 64 KiB.
    let big = json!({"accessKey": "x".repeat(70 * 1024), "secretKey": "y"});
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    // Malformed JSON.
    let resp = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "invalid_request"
    );
    // Bad credential mode.
    let resp = app
        .credentials(&u, &uuid::Uuid::new_v4().to_string(), "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Open routes.
    let h: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok"}));
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["status"], "ok");
    assert_eq!(
        r["checks"],
        json!({"database": "ok", "secretStore": "ok", "cache": "ok"})
    );
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/providers",
        "/api/connections",
        "/api/connections/{id}",
        "/api/connections/{id}/validate",
        "/api/connections/{id}/credentials",
        "/healthz",
        "/readyz",
        "/metrics",
        "/scaleway_api/scaleway/connect",
        "/scaleway_api/scaleway/projects",
        "/scaleway_api/scaleway/disconnect",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}

async fn credentials_need_internal_secret(b: Backend) {
    // No AURORA_INTERNAL_SECRET configured: the credentials route answers 401 and says why.
    let app = TestApp::spawn(b).await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let body: Value = app
        .post(&u, "/scaleway_api/scaleway/connect")
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = body["connectionId"].as_str().unwrap();
    let resp = app.credentials(&u, id, "read_only").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let e: Value = resp.json().await.unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("AURORA_INTERNAL_SECRET"),
        "{e}"
    );
}

/// The credentials route keeps the connection row in process; a status change and a disconnect
/// drop it at once on the replica that wrote them (the others hear it over Redis: `replicas.rs`).
async fn kept_rows_follow_every_change(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    if b == Backend::Servers {
        // Rows are kept only while the invalidation channel is heard.
        aurora_testkit::eventually(
            "the gateway to listen to invalidations",
            std::time::Duration::from_secs(5),
            async || app.platform.broker().local_tier_active(),
        )
        .await;
    }
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    let u = user();
    let body = connect(&app, &u, &acct).await;
    let id: connector_core::ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();
    let owner = connector_core::UserId::parse(&u).unwrap();
    assert!(!app.platform.broker().holds_local_row(id));
    let resp = app
        .credentials(&u, &id.to_string(), "full")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(app.platform.broker().holds_local_row(id), "the row is kept");

    app.platform
        .update_status(
            &owner,
            id,
            connector_core::StatusUpdate {
                status: connector_core::ConnectionStatus::NeedsReconnect,
                status_reason: Some("refused".into()),
                last_validated_at: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        !app.platform.broker().holds_local_row(id),
        "dropped at once"
    );
    let resp = app
        .credentials(&u, &id.to_string(), "full")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "needs_reconnect");

    let resp = app
        .delete(&u, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!app.platform.broker().holds_local_row(id));
    let resp = app
        .credentials(&u, &id.to_string(), "full")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

both_backends!(
    kept_rows_follow_every_change,
    providers_are_listed,
    scaleway_connect_list_credentials_disconnect,
    scaleway_bad_input_and_provider_errors,
    users_are_isolated,
    multi_account_and_reconnect,
    contract_conventions,
    credentials_need_internal_secret,
);

/// A body announced above 64 KiB is refused on any route, and every answer carries a request id.
#[tokio::test]
async fn oversized_body_on_any_route_and_request_ids() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let resp = app
        .post(
            "u1",
            &format!("/api/connections/{}/validate", uuid::Uuid::new_v4()),
        )
        .body(vec![b'x'; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = app
        .get("u1", "/api/providers")
        .header("X-Request-ID", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");
}
