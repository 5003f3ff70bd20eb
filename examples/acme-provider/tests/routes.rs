//! The Acme routes in an in-process actix app, on a real platform over the embedded backends
//! (`aurora_testkit::TestPlatform`), against a wiremock Acme API: connect (accepted, refused,
//! throttled, Acme down), credentials and validation through the connector, disconnect.

use std::sync::Arc;

use actix_web::{test, App};
use aurora_testkit::TestPlatform;
use connector_core::{ConnectionId, ConnectionStatus, Connector, CredentialMode, Settings};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "acme-key-MARKER-0123456789";
const ACCOUNT: &str = "acct_42";

struct Harness {
    server: MockServer,
    tp: TestPlatform,
    connector: Arc<dyn Connector>,
}

/// Acme knows one key (`KEY`); `throttled` and `broken` answer 429 and 503; any other key is 401.
async fn harness() -> Harness {
    let server = MockServer::start().await;
    let account = |key: &str, answer: ResponseTemplate| {
        Mock::given(method("GET"))
            .and(path("/v1/account"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(answer)
            .with_priority(1)
    };
    account(
        KEY,
        ResponseTemplate::new(200).set_body_json(json!({"id": ACCOUNT, "name": "Acme Corp"})),
    )
    .mount(&server)
    .await;
    account(
        "throttled",
        ResponseTemplate::new(429).insert_header("retry-after", "7"),
    )
    .mount(&server)
    .await;
    account(
        "broken",
        ResponseTemplate::new(503).set_body_string("upstream trace MARKER-BODY"),
    )
    .mount(&server)
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/account"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "bad key"})))
        .with_priority(2)
        .mount(&server)
        .await;
    let settings = Settings::new().with(acme_provider::API_URL_SETTING, server.uri());
    let tp = TestPlatform::new(settings).await.unwrap();
    let connector = acme_provider::build(&tp.platform).unwrap();
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

/// `POST uri` as `user` with `body`: the answer's status, `Retry-After` and JSON body.
macro_rules! post {
    ($app:expr, $uri:expr, $user:expr, $body:expr) => {{
        let req = test::TestRequest::post()
            .uri($uri)
            .insert_header(("X-User-ID", $user))
            .set_json($body)
            .to_request();
        let resp = test::call_service(&$app, req).await;
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = test::read_body_json(resp).await;
        (status, retry, body)
    }};
}

#[actix_web::test]
async fn connect_stores_the_account_and_the_key_then_credentials_and_disconnect() {
    let h = harness().await;
    let app = app!(h);
    let (status, _, body) = post!(
        app,
        acme_provider::CONNECT_PATH,
        "alice",
        json!({"apiKey": format!("  {KEY} ")})
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["accountId"], ACCOUNT);
    assert_eq!(body["created"], true);
    assert!(!body.to_string().contains(KEY));
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();

    let row = h.tp.row("alice", id).await.unwrap().expect("the row");
    assert_eq!(row.provider.as_str(), "acme");
    assert_eq!(row.account_id, ACCOUNT);
    assert_eq!(row.display_name.as_deref(), Some("Acme Corp"));
    assert_eq!(row.status, ConnectionStatus::Active);
    assert!(!row.metadata.to_string().contains(KEY));
    let secret =
        h.tp.platform
            .load_secret(&row)
            .await
            .unwrap()
            .expect("the secret");
    let doc: Value = secret.decode().unwrap();
    assert_eq!(doc, json!({"apiKey": KEY}), "the key is stored trimmed");

    // What the broker would hand to an internal service, and the periodic check.
    let issued = h
        .connector
        .issue_credentials(&row, &secret, CredentialMode::ReadOnly)
        .await
        .unwrap();
    let creds: Value = issued.credentials.decode().unwrap();
    assert_eq!(creds["apiKey"], KEY);
    assert!(issued.expires_at.is_none());
    h.connector.validate(&row, &secret).await.unwrap();

    // Connecting the same account again updates the row.
    let (status, _, body) = post!(
        app,
        acme_provider::CONNECT_PATH,
        "alice",
        json!({"apiKey": KEY})
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["connectionId"], id.to_string());

    let (status, _, body) = post!(app, acme_provider::DISCONNECT_PATH, "alice", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disconnected"], 1, "{body}");
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
    assert!(!h.tp.has_secret(&row.secret_ref).await.unwrap());
}

#[actix_web::test]
async fn acme_refusals_and_faults_map_to_the_error_codes_without_the_key_or_the_body() {
    let h = harness().await;
    let app = app!(h);
    let cases = [
        ("wrong-key-MARKER", 422, "credentials_rejected"),
        ("throttled", 429, "rate_limited"),
        ("broken", 502, "provider_unavailable"),
    ];
    for (key, want, code) in cases {
        let (status, retry, body) = post!(
            app,
            acme_provider::CONNECT_PATH,
            "bob",
            json!({"apiKey": key})
        );
        assert_eq!(status, want, "{key}: {body}");
        assert_eq!(body["code"], code, "{key}: {body}");
        assert!(!body.to_string().contains("MARKER"), "{key}: {body}");
        if want == 429 {
            assert_eq!(retry.as_deref(), Some("7"));
        }
    }
    assert!(h.tp.rows("bob").await.unwrap().is_empty(), "nothing stored");
    let calls = h.server.received_requests().await.unwrap().len();
    assert_eq!(calls, 3, "one Acme call per connect");
}

#[actix_web::test]
async fn connect_checks_the_body_before_calling_acme() {
    let h = harness().await;
    let app = app!(h);
    let (status, _, body) = post!(
        app,
        acme_provider::CONNECT_PATH,
        "carol",
        json!({"apiKey": "  "})
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request");
    let (status, _, body) = post!(
        app,
        acme_provider::CONNECT_PATH,
        "carol",
        json!({"apiKey": KEY, "userId": "mallory"})
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "user_mismatch");
    assert!(h.server.received_requests().await.unwrap().is_empty());
}

#[actix_web::test]
async fn a_base_url_that_is_not_http_stops_the_build() {
    let tp = TestPlatform::new(Settings::new().with(acme_provider::API_URL_SETTING, "ftp://x"))
        .await
        .unwrap();
    let e = acme_provider::build(&tp.platform).err().expect("refused");
    assert!(e.0.contains("AURORA_ACME_API_URL"), "{}", e.0);
}
