//! The Google Cloud routes in an in-process actix app, on a real platform over the embedded backends
//! (`aurora_testkit::TestPlatform`), against wiremock stubs of Google's OAuth endpoints: login and
//! callback (accepted and refused), the setup status, credentials through the platform,
//! force-disconnect. The setup worker is not started: the connection stays `pending`.

use std::sync::Arc;

use actix_web::{test, App};
use aurora_testkit::TestPlatform;
use connector_core::store::StatusUpdate;
use connector_core::{ConnectionStatus, Connector, CredentialMode, Settings, UserId};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EMAIL: &str = "a@example.com";
const REFRESH: &str = "1//refresh-hunter2";

struct Harness {
    server: MockServer,
    tp: TestPlatform,
    connector: Arc<dyn Connector>,
}

/// Google's endpoints; the code exchange answers `exchange` (status, body).
async fn harness(exchange: (u16, Value)) -> Harness {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(exchange.0).set_body_json(exchange.1))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.fresh", "expires_in": 3599, "token_type": "Bearer"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .and(header("authorization", "Bearer ya29.first"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"sub": "42", "email": EMAIL})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let u = server.uri();
    let settings = Settings::new()
        .with("AURORA_GCP_CLIENT_ID", "cid.apps")
        .with("AURORA_GCP_CLIENT_SECRET", "c-secret")
        .with("AURORA_GCP_AUTH_URL", format!("{u}/auth"))
        .with("AURORA_GCP_TOKEN_URL", format!("{u}/token"))
        .with("AURORA_GCP_REVOKE_URL", format!("{u}/revoke"))
        .with("AURORA_GCP_USERINFO_URL", format!("{u}/v1/userinfo"))
        .with("AURORA_GCP_API_URL", format!("{u}/google"))
        .with("AURORA_GCP_STATE_COOKIE", "off")
        .with("AURORA_PUBLIC_URL", "https://aurora.example")
        .with("AURORA_FRONTEND_URL", "https://app.example");
    let tp = TestPlatform::new(settings).await.unwrap();
    let connector = connector_gcp::build(&tp.platform).unwrap();
    Harness {
        server,
        tp,
        connector,
    }
}

fn exchange_ok() -> (u16, Value) {
    (
        200,
        json!({"access_token": "ya29.first", "expires_in": 3599, "refresh_token": REFRESH,
               "scope": "openid email https://www.googleapis.com/auth/cloud-platform",
               "token_type": "Bearer"}),
    )
}

macro_rules! app {
    ($h:expr) => {
        test::init_service(App::new().configure($h.tp.configure($h.connector.clone(), None))).await
    };
}

/// `POST /gcp/login` as `user`: the `state` of the authorization URL.
macro_rules! login_state {
    ($app:expr, $user:expr) => {{
        let resp = test::call_service(
            &$app,
            test::TestRequest::post()
                .uri("/gcp/login")
                .insert_header(("X-User-ID", $user))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let body: Value = test::read_body_json(resp).await;
        let url = url::Url::parse(body["login_url"].as_str().unwrap()).unwrap();
        assert_eq!(url.path(), "/auth", "{url}");
        url.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("a state in the login URL")
    }};
}

/// `GET /gcp/callback` with `code` and `state`: the answer's status and `Location`.
macro_rules! callback {
    ($app:expr, $state:expr) => {{
        let resp = test::call_service(
            &$app,
            test::TestRequest::get()
                .uri(&format!("/gcp/callback?code=4%2Fcode&state={}", $state))
                .to_request(),
        )
        .await;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location)
    }};
}

async fn calls(server: &MockServer, path: &str, grant: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == path && String::from_utf8_lossy(&r.body).contains(grant))
        .count()
}

#[actix_web::test]
async fn a_sign_in_stores_a_pending_connection_and_queues_its_setup() {
    let h = harness(exchange_ok()).await;
    let app = app!(h);
    let state = login_state!(app, "alice");
    let (status, location) = callback!(app, state);
    assert_eq!(status, 302);
    assert!(
        location.starts_with("https://app.example/chat?login=gcp_setup_pending&task_id="),
        "{location}"
    );
    let task_id = location.rsplit('=').next().unwrap().to_owned();

    let rows = h.tp.rows("alice").await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.account_id, EMAIL);
    assert_eq!(row.status, ConnectionStatus::Pending);
    assert_eq!(row.metadata["setupTaskId"], task_id.as_str());
    assert!(!row.metadata.to_string().contains("hunter2"));
    let secret: Value =
        h.tp.platform
            .load_secret(row)
            .await
            .unwrap()
            .expect("the secret")
            .decode()
            .unwrap();
    assert_eq!(secret["refreshToken"], REFRESH);

    // The state is single use.
    let (status, _) = callback!(app, state);
    assert_eq!(status, 400);
    assert_eq!(h.tp.rows("alice").await.unwrap().len(), 1);

    // The setup task is the owner's only.
    let get = |user: &str| {
        test::TestRequest::get()
            .uri(&format!("/gcp/setup/status/{task_id}"))
            .insert_header(("X-User-ID", user))
            .to_request()
    };
    let resp = test::call_service(&app, get("alice")).await;
    assert_eq!(resp.status(), 200);
    let resp = test::call_service(&app, get("bob")).await;
    assert_eq!(resp.status(), 404);
}

#[actix_web::test]
async fn a_refused_code_exchange_stores_nothing() {
    let h = harness((400, json!({"error": "invalid_grant"}))).await;
    let app = app!(h);
    let state = login_state!(app, "alice");
    let (status, location) = callback!(app, state);
    assert_eq!(status, 302);
    assert_eq!(location, "https://app.example/chat?login=gcp_failed");
    assert_eq!(calls(&h.server, "/token", "authorization_code").await, 1);
    assert!(h.tp.rows("alice").await.unwrap().is_empty());

    // An unknown state never reaches Google.
    let (status, _) = callback!(app, "not-a-state");
    assert_eq!(status, 400);
    assert_eq!(calls(&h.server, "/token", "authorization_code").await, 1);
}

#[actix_web::test]
async fn credentials_wait_for_the_setup_then_come_from_one_refresh() {
    let h = harness(exchange_ok()).await;
    let app = app!(h);
    let state = login_state!(app, "alice");
    let (status, _) = callback!(app, state);
    assert_eq!(status, 302);
    let pending = h.tp.rows("alice").await.unwrap().remove(0);
    let err =
        h.tp.platform
            .credentials(h.connector.clone(), &pending, CredentialMode::Full)
            .await
            .unwrap_err();
    assert_eq!(err.status.as_u16(), 409);
    assert_eq!(calls(&h.server, "/token", "refresh_token").await, 0);

    // As the setup worker leaves it once done.
    let active =
        h.tp.platform
            .update_status(
                &UserId::parse("alice").unwrap(),
                pending.id,
                StatusUpdate {
                    status: ConnectionStatus::Active,
                    status_reason: None,
                    last_validated_at: None,
                },
            )
            .await
            .unwrap()
            .unwrap();
    for _ in 0..3 {
        let creds =
            h.tp.platform
                .credentials(h.connector.clone(), &active, CredentialMode::Full)
                .await
                .unwrap();
        let v: Value = creds.credentials.decode().unwrap();
        assert_eq!(v["accessToken"], "ya29.fresh", "{v}");
        assert!(!v.to_string().contains("hunter2"));
    }
    assert_eq!(calls(&h.server, "/token", "refresh_token").await, 1);
}

#[actix_web::test]
async fn force_disconnect_revokes_and_removes_the_row_and_the_secret() {
    let h = harness(exchange_ok()).await;
    let app = app!(h);
    let state = login_state!(app, "alice");
    let (status, _) = callback!(app, state);
    assert_eq!(status, 302);
    let row = h.tp.rows("alice").await.unwrap().remove(0);
    assert!(h.tp.has_secret(&row.secret_ref).await.unwrap());

    let post = |user: &str| {
        test::TestRequest::post()
            .uri("/api/gcp/force-disconnect")
            .insert_header(("X-User-ID", user))
            .to_request()
    };
    // Bob has nothing to disconnect; Alice's connection stays.
    let resp = test::call_service(&app, post("bob")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 0);
    assert!(h.tp.has_secret(&row.secret_ref).await.unwrap());

    let resp = test::call_service(&app, post("alice")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 1);
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
    assert!(!h.tp.has_secret(&row.secret_ref).await.unwrap());
    let revoked = h
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/revoke")
        .count();
    assert_eq!(revoked, 1);
}
