//! The AWS routes in an in-process actix app, on a real platform over the embedded backends
//! (`aurora_testkit::TestPlatform`), against a wiremock STS: setup, connect (accepted and refused),
//! the account listing, credentials through the platform, disconnect.

use std::sync::Arc;

use actix_web::{test, App};
use aurora_testkit::TestPlatform;
use chrono::Utc;
use connector_core::{ConnectionId, ConnectionStatus, Connector, CredentialMode, Settings};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "111122223333";
const ROLE: &str = "arn:aws:iam::111122223333:role/AuroraConnectorRole";
const PRINCIPAL: &str = "arn:aws:iam::999999999999:role/aurora-gateway";

fn assume_ok(access_key: &str) -> ResponseTemplate {
    let exp = (Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>stub-secret-access-key</SecretAccessKey>
      <SessionToken>stub-session-token</SessionToken>
      <Expiration>{exp}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:aurora</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/AuroraConnectorRole/aurora</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#
        ))
}

fn identity(account: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::{account}:assumed-role/AuroraConnectorRole/aurora</Arn>
    <UserId>AROAEXAMPLE:aurora</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
        ))
}

fn access_denied() -> ResponseTemplate {
    ResponseTemplate::new(403)
        .insert_header("content-type", "text/xml")
        .set_body_string(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>
  <RequestId>4f2e0c5a-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"#,
        )
}

/// How the wiremock STS treats `AssumeRole`.
#[derive(Clone, Copy, PartialEq)]
enum Sts {
    /// Only with the external ID (the role enforces it): the normal case.
    EnforcesExternalId,
    /// Never (the role does not trust the gateway).
    RefusesAll,
    /// Even without the external ID (a confused-deputy risk).
    AcceptsAll,
}

struct Harness {
    server: MockServer,
    tp: TestPlatform,
    connector: Arc<dyn Connector>,
}

async fn mount_sts(server: &MockServer, sts: Sts) {
    let assume = || Mock::given(method("POST")).and(body_string_contains("Action=AssumeRole"));
    match sts {
        Sts::EnforcesExternalId => {
            assume()
                .and(body_string_contains("ExternalId="))
                .respond_with(assume_ok("ASIASTUBEXAMPLE1"))
                .with_priority(1)
                .mount(server)
                .await;
            assume()
                .respond_with(access_denied())
                .with_priority(2)
                .mount(server)
                .await;
        }
        Sts::RefusesAll => assume().respond_with(access_denied()).mount(server).await,
        Sts::AcceptsAll => {
            assume()
                .respond_with(assume_ok("ASIASTUBEXAMPLE1"))
                .mount(server)
                .await
        }
    }
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .respond_with(identity(ACCOUNT))
        .mount(server)
        .await;
}

async fn harness(sts: Sts) -> Harness {
    let server = MockServer::start().await;
    mount_sts(&server, sts).await;
    let settings = Settings::new()
        .with("AWS_REGION", "eu-west-1")
        .with("AWS_ENDPOINT_URL_STS", server.uri())
        .with("AWS_ACCESS_KEY_ID", "AKIAGATEWAYEXAMPLE")
        .with("AWS_SECRET_ACCESS_KEY", "gateway-secret")
        .with("AURORA_AWS_PRINCIPAL_ARN", PRINCIPAL)
        .with("AURORA_AWS_MAX_ATTEMPTS", "1")
        .with("AURORA_AWS_RETRY_BASE_MS", "1")
        .with("AURORA_AWS_TIMEOUT_SECS", "5");
    let tp = TestPlatform::new(settings).await.unwrap();
    let connector = connector_aws::build(&tp.platform).unwrap();
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

fn get(uri: &str, user: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(uri)
        .insert_header(("X-User-ID", user))
}

fn post(uri: &str, user: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri(uri)
        .insert_header(("X-User-ID", user))
        .set_json(body)
}

/// `GET /aws/setup`, then `POST /aws/auth` with the workspace's external ID: the answer's status and
/// body.
macro_rules! connect {
    ($app:expr, $user:expr) => {{
        let resp = test::call_service(&$app, get("/aws/setup", $user).to_request()).await;
        assert_eq!(resp.status(), 200);
        let setup: Value = test::read_body_json(resp).await;
        let ext = setup["externalId"].as_str().unwrap().to_owned();
        let resp = test::call_service(
            &$app,
            post(
                "/aws/auth",
                $user,
                json!({"roleArn": ROLE, "externalId": ext}),
            )
            .to_request(),
        )
        .await;
        let status = resp.status().as_u16();
        let body: Value = test::read_body_json(resp).await;
        (status, body, ext)
    }};
}

async fn assume_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("Action=AssumeRole"))
        .count()
}

#[actix_web::test]
async fn connect_stores_the_row_and_the_secret_and_lists_the_account() {
    let h = harness(Sts::EnforcesExternalId).await;
    let app = app!(h);
    let (status, body, ext) = connect!(app, "alice");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["accountId"], ACCOUNT);
    assert!(!body.to_string().contains(&ext));
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();

    let row = h.tp.row("alice", id).await.unwrap().expect("the row");
    assert_eq!(row.account_id, ACCOUNT);
    assert_eq!(row.status, ConnectionStatus::Active);
    assert_eq!(row.metadata["roleArn"], ROLE);
    assert_eq!(row.metadata["region"], "eu-west-1");
    assert!(!row.metadata.to_string().contains(&ext));
    let secret: Value =
        h.tp.platform
            .load_secret(&row)
            .await
            .unwrap()
            .expect("the secret")
            .decode()
            .unwrap();
    assert_eq!(secret["roleArn"], ROLE);
    assert_eq!(secret["externalId"], ext.as_str());

    let resp = test::call_service(&app, get("/aws/get-credentials", "alice").to_request()).await;
    assert_eq!(resp.status(), 200);
    let list: Value = test::read_body_json(resp).await;
    assert_eq!(list["hasCredentials"], true);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(list["accounts"][0]["accountId"], ACCOUNT);
    assert_eq!(list["accounts"][0]["connectionId"], id.to_string());
    assert!(!list.to_string().contains(&ext));

    // Someone else sees nothing.
    let resp = test::call_service(&app, get("/aws/get-credentials", "bob").to_request()).await;
    let list: Value = test::read_body_json(resp).await;
    assert_eq!(list["hasCredentials"], false);
}

#[actix_web::test]
async fn a_role_sts_refuses_is_not_stored() {
    let h = harness(Sts::RefusesAll).await;
    let app = app!(h);
    let (status, body, _) = connect!(app, "alice");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "credentials_rejected");
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
    assert!(assume_calls(&h.server).await >= 1);
}

#[actix_web::test]
async fn a_role_that_does_not_require_the_external_id_is_refused() {
    let h = harness(Sts::AcceptsAll).await;
    let app = app!(h);
    let (status, body, _) = connect!(app, "alice");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "external_id_not_enforced");
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
}

#[actix_web::test]
async fn another_workspaces_external_id_is_refused_before_sts() {
    let h = harness(Sts::EnforcesExternalId).await;
    let app = app!(h);
    let resp = test::call_service(
        &app,
        post(
            "/aws/auth",
            "alice",
            json!({"roleArn": ROLE, "externalId": "0123456789abcdef0123456789abcdef01234567"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["code"], "external_id_mismatch");
    assert_eq!(assume_calls(&h.server).await, 0);
    assert!(h.tp.rows("alice").await.unwrap().is_empty());
}

#[actix_web::test]
async fn credentials_come_from_sts_once_then_from_the_cache() {
    let h = harness(Sts::EnforcesExternalId).await;
    let app = app!(h);
    let (status, body, _) = connect!(app, "alice");
    assert_eq!(status, 200, "{body}");
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();
    let conn = h.tp.row("alice", id).await.unwrap().unwrap();
    let before = assume_calls(&h.server).await;
    for _ in 0..3 {
        let creds =
            h.tp.platform
                .credentials(h.connector.clone(), &conn, CredentialMode::Full)
                .await
                .unwrap();
        let v: Value = creds.credentials.decode().unwrap();
        assert_eq!(v["accessKeyId"], "ASIASTUBEXAMPLE1");
        assert_eq!(v["secretAccessKey"], "stub-secret-access-key");
        assert_eq!(v["sessionToken"], "stub-session-token");
        assert!(creds.expires_at.unwrap() > Utc::now());
    }
    assert_eq!(assume_calls(&h.server).await, before + 1);
}

#[actix_web::test]
async fn disconnect_removes_the_row_and_the_secret() {
    let h = harness(Sts::EnforcesExternalId).await;
    let app = app!(h);
    let (status, body, _) = connect!(app, "alice");
    assert_eq!(status, 200, "{body}");
    let id: ConnectionId = body["connectionId"].as_str().unwrap().parse().unwrap();
    let row = h.tp.row("alice", id).await.unwrap().unwrap();
    assert!(h.tp.has_secret(&row.secret_ref).await.unwrap());

    // Not bob's: 404, nothing removed.
    let uri = format!("/aws/disconnect?connectionId={id}");
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&uri)
            .insert_header(("X-User-ID", "bob"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert!(h.tp.row("alice", id).await.unwrap().is_some());

    let resp = test::call_service(
        &app,
        post("/aws/disconnect", "alice", json!({"accountId": ACCOUNT})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 1);
    assert!(h.tp.row("alice", id).await.unwrap().is_none());
    assert!(!h.tp.has_secret(&row.secret_ref).await.unwrap());
    let err =
        h.tp.platform
            .owned_connection(&row.user_id, id)
            .await
            .unwrap_err();
    assert_eq!(err.status.as_u16(), 404);
}
