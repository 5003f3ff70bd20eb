//! The Azure routes in an in-process actix app, on a real platform over the embedded backends
//! (`aurora_testkit::TestPlatform`), against a wiremock Entra ID and Resource Manager: login
//! (accepted and refused), credentials through the platform, disconnect.

use std::sync::Arc;

use actix_web::{test, App};
use aurora_testkit::TestPlatform;
use connector_core::{ConnectionId, ConnectionStatus, Connector, CredentialMode, Settings};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const SECRET: &str = "Abc8Q~hunter2-secret";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.token-MARKER.sig";
const LOGIN: &str = "/azure/login";
const DISCONNECT: &str = "/azure/disconnect";

fn sub_id(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

fn sub(i: usize, state: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{}", sub_id(i)),
        "subscriptionId": sub_id(i),
        "tenantId": TENANT,
        "displayName": format!("sub-{i}"),
        "state": state,
        "authorizationSource": "RoleBased"
    })
}

struct Harness {
    server: MockServer,
    tp: TestPlatform,
    connector: Arc<dyn Connector>,
}

async fn harness() -> Harness {
    let server = MockServer::start().await;
    let token_path = format!("/{TENANT}/oauth2/v2.0/token");
    // Only this principal's secret gets a token; any other is refused as Entra ID does.
    Mock::given(method("POST"))
        .and(path(token_path.as_str()))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_id={CLIENT}")))
        .and(body_string_contains("hunter2-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path.as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: x",
            "error_codes": [7000215],
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .and(query_param("api-version", "2022-12-01"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [sub(1, "Enabled"), sub(2, "Enabled"), sub(3, "Disabled")]}),
        ))
        .mount(&server)
        .await;
    let settings = Settings::new()
        .with("AURORA_AZURE_AUTHORITY_URL", server.uri())
        .with(
            "AURORA_AZURE_MANAGEMENT_URL",
            format!("{}/arm", server.uri()),
        );
    let tp = TestPlatform::new(settings).await.unwrap();
    let connector = connector_azure::build(&tp.platform).unwrap();
    Harness {
        server,
        tp,
        connector,
    }
}

macro_rules! app {
    ($h:expr) => {
        test::init_service(App::new().configure($h.tp.configure($h.connector.clone(), None))).await
    };
}

fn post(uri: &str, user: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri(uri)
        .insert_header(("X-User-ID", user))
        .set_json(body)
}

/// `POST /azure/login` with `secret` for subscription `i`: the answer's status and body.
macro_rules! login {
    ($app:expr, $user:expr, $secret:expr, $i:expr) => {{
        let resp = test::call_service(
            &$app,
            post(
                LOGIN,
                $user,
                json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": $secret,
                       "subscriptionId": sub_id($i)}),
            )
            .to_request(),
        )
        .await;
        let status = resp.status().as_u16();
        let body: Value = test::read_body_json(resp).await;
        (status, body)
    }};
}

async fn token_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/oauth2/v2.0/token"))
        .count()
}

#[actix_web::test]
async fn login_stores_the_subscription_and_keeps_the_secret_apart() {
    let h = harness().await;
    let app = app!(h);
    let (status, body) = login!(app, "alice", SECRET, 2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["subscriptionId"], sub_id(2));
    assert_eq!(body["subscriptionName"], "sub-2");
    assert_eq!(body["tenantId"], TENANT);
    assert!(!body.to_string().contains("hunter2"));
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();

    let row = h.tp.row("alice", id).await.unwrap().expect("the row");
    assert_eq!(row.account_id, sub_id(2));
    assert_eq!(row.status, ConnectionStatus::Active);
    assert_eq!(row.metadata["clientId"], CLIENT);
    assert_eq!(row.metadata["subscriptionsVisible"], 3);
    assert!(!row.metadata.to_string().contains("hunter2"));
    let secret: Value =
        h.tp.platform
            .load_secret(&row)
            .await
            .unwrap()
            .expect("the secret")
            .decode()
            .unwrap();
    assert_eq!(secret["clientSecret"], SECRET);
    assert_eq!(secret["tenantId"], TENANT);

    // The same subscription again updates the one connection.
    let (status, again) = login!(app, "alice", SECRET, 2);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["connectionId"], body["connectionId"]);
    assert_eq!(h.tp.rows("alice").await.unwrap().len(), 1);
}

#[actix_web::test]
async fn refusals_store_nothing() {
    let h = harness().await;
    let app = app!(h);
    let (status, body) = login!(app, "alice", "Abc8Q~wrong-secret-value", 2);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "credentials_rejected");
    assert!(!body.to_string().contains("wrong-secret"));

    // A disabled subscription, then one the principal cannot see.
    let (status, body) = login!(app, "alice", SECRET, 3);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request");
    let (status, body) = login!(app, "alice", SECRET, 9);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request");

    // Another user's id in the body.
    let resp = test::call_service(
        &app,
        post(
            LOGIN,
            "alice",
            json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET, "userId": "bob"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
    assert!(h.tp.rows("bob").await.unwrap().is_empty());
}

#[actix_web::test]
async fn credentials_are_a_token_fetched_once_then_cached() {
    let h = harness().await;
    let app = app!(h);
    let (status, body) = login!(app, "alice", SECRET, 1);
    assert_eq!(status, 200, "{body}");
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();
    let conn = h.tp.row("alice", id).await.unwrap().unwrap();
    let before = token_calls(&h.server).await;
    for _ in 0..3 {
        let creds =
            h.tp.platform
                .credentials(h.connector.clone(), &conn, CredentialMode::Full)
                .await
                .unwrap();
        let v: Value = creds.credentials.decode().unwrap();
        assert_eq!(v["accessToken"], TOKEN);
        assert_eq!(v["subscriptionId"], sub_id(1));
        assert_eq!(v["tenantId"], TENANT);
        assert!(creds.expires_at.is_some());
    }
    assert_eq!(token_calls(&h.server).await, before + 1);
}

#[actix_web::test]
async fn disconnect_removes_the_row_and_the_secret() {
    let h = harness().await;
    let app = app!(h);
    let (_, body) = login!(app, "alice", SECRET, 1);
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();
    let row = h.tp.row("alice", id).await.unwrap().unwrap();

    let resp = test::call_service(
        &app,
        post(DISCONNECT, "bob", json!({"connectionId": id.to_string()})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert!(h.tp.has_secret(&row.secret_ref).await.unwrap());

    let resp = test::call_service(
        &app,
        post(DISCONNECT, "alice", json!({"subscriptionId": sub_id(1)})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 1);
    assert!(h.tp.row("alice", id).await.unwrap().is_none());
    assert!(!h.tp.has_secret(&row.secret_ref).await.unwrap());
}
