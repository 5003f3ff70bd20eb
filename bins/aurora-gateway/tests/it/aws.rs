//! HTTP tests of the AWS plugin through the whole gateway: the real `aws-sdk-sts` against moto (a
//! real STS emulator, which does not evaluate trust policies) and against a wiremock STS that
//! answers the Query protocol (for what moto cannot do: refusals, throttling, timeouts, counting the
//! calls that reach it). Most run against the embedded default and against PostgreSQL + Redis +
//! OpenBao.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{Backend, Options, TestApp, INTERNAL_SECRET};
use chrono::{DateTime, Utc};
use connector_core::SecretPath;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header_regex, method};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// The gateway's own (fake) AWS identity in these tests.
const GATEWAY_KEY: &str = "AKIAGATEWAYTESTKEY01";
const GATEWAY_SECRET: &str = "gateway-secret-V7xq2-must-not-leak";
/// The stub's answer to the gateway's own `GetCallerIdentity` (an instance role).
const GATEWAY_ARN: &str = "arn:aws:sts::999988887777:assumed-role/aurora-gateway/i-0123456789";
const GATEWAY_PRINCIPAL: &str = "arn:aws:iam::999988887777:role/aurora-gateway";

const ACCOUNT_A: &str = "111122223333";
const ACCOUNT_B: &str = "444455556666";

fn role(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------- peers and apps

/// One moto server for the whole test binary.
async fn moto_url() -> String {
    static MOTO: OnceLock<aurora_testkit::Peer> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        MOTO.get_or_init(|| {
            aurora_testkit::moto().expect("moto is required (cargo xtask services installs it)")
        })
        .url
        .clone()
    })
    .await
    .unwrap()
}

fn settings(endpoint: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut s = vec![
        ("AWS_ENDPOINT_URL_STS".to_owned(), endpoint.to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), GATEWAY_KEY.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            GATEWAY_SECRET.to_owned(),
        ),
        ("AURORA_AWS_RETRY_BASE_MS".to_owned(), "5".to_owned()),
    ];
    s.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    s
}

/// A gateway whose STS is moto. moto accepts every `AssumeRole`, so the confused-deputy check is off.
async fn moto_app(b: Backend, extra: &[(&str, &str)]) -> (TestApp, String) {
    let url = moto_url().await;
    let mut all = vec![("AURORA_AWS_EXTERNAL_ID_CHECK", "false")];
    all.extend_from_slice(extra);
    let app = TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            settings: settings(&url, &all),
            ..Options::default()
        },
    )
    .await;
    (app, url)
}

/// A gateway whose STS is `stub`, with the confused-deputy check on (the default).
async fn stub_app(b: Backend, stub: &MockServer, extra: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            settings: settings(&stub.uri(), extra),
            ..Options::default()
        },
    )
    .await
}

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn setup(app: &TestApp, u: &str) -> Value {
    let (s, body) = call(app.get(u, "/aws/setup")).await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn external_id(app: &TestApp, u: &str) -> String {
    setup(app, u).await["externalId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn auth(app: &TestApp, u: &str, body: Value) -> (StatusCode, Value) {
    call(app.post(u, "/aws/auth").json(&body)).await
}

async fn connect(app: &TestApp, u: &str, role_arn: &str, ext: &str) -> Value {
    let (s, body) = auth(app, u, json!({"roleArn": role_arn, "externalId": ext})).await;
    assert_eq!(s, 200, "connect failed: {body}");
    body
}

async fn credentials(app: &TestApp, u: &str, id: &str, mode: &str) -> (StatusCode, Value) {
    let resp = app.credentials(u, id, mode).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// Ask moto who these credentials are. moto reads the access key id from the `Authorization`
/// header and does not check the signature, so no signing is needed.
async fn moto_whoami(url: &str, access_key_id: &str) -> (String, String) {
    let text = reqwest::Client::new()
        .post(url)
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key_id}/20260101/us-east-1/sts/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (xml_field(&text, "Account"), xml_field(&text, "Arn"))
}

fn xml_field(text: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {text}"))
        + open.len();
    let end = text[start..].find(&format!("</{tag}>")).unwrap() + start;
    text[start..end].to_owned()
}

/// Assert that none of `secrets` appears in any log line or database column.
async fn assert_not_leaked(app: &TestApp, secrets: &[&str]) {
    let dump = app.db_dump().await;
    let logs = crate::common::captured_logs();
    assert!(logs.contains("aurora::http"), "request logs are captured");
    for s in secrets {
        assert!(s.len() >= 8, "a meaningful needle");
        assert!(!dump.contains(s), "a secret reached the database");
        assert!(!logs.contains(s), "a secret reached the logs");
    }
}

// ---------------------------------------------------------------- the wiremock STS

fn stub_xml(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml")
        .set_body_string(body)
}

/// Session credentials the stub hands out.
#[derive(Clone)]
struct StubSession {
    access_key_id: String,
    secret: String,
    token: String,
}

impl StubSession {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        Self {
            access_key_id: format!("ASIA{}", &id[..16]),
            secret: format!("stub-secret-{}", uuid::Uuid::new_v4().simple()),
            token: format!("stub-token-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn response(&self, expires: DateTime<Utc>) -> ResponseTemplate {
        stub_xml(
            200,
            format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROASTUBEXAMPLE:aurora</AssumedRoleId>
      <Arn>arn:aws:sts::{ACCOUNT_A}:assumed-role/AuroraConnectorRole/aurora</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
                self.access_key_id,
                self.secret,
                self.token,
                expires.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        )
    }
}

fn stub_identity(account: &str, arn: &str) -> ResponseTemplate {
    stub_xml(
        200,
        format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDAEXAMPLE</UserId><Account>{account}</Account></GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
        ),
    )
}

/// The raw message of every stubbed error: it must never reach a user.
const RAW_STS_MESSAGE: &str = "raw-sts-message-7a1b: User is not authorized";

fn stub_error(status: u16, code: &str) -> ResponseTemplate {
    stub_xml(
        status,
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{RAW_STS_MESSAGE}</Message></Error>
  <RequestId>4f2e0c5a-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"#
        ),
    )
}

/// `AssumeRole` requests, with (`Some(true)`), without (`Some(false)`) an external ID, or all.
struct AssumeRole(Option<bool>);

impl Match for AssumeRole {
    fn matches(&self, r: &Request) -> bool {
        let body = String::from_utf8_lossy(&r.body);
        body.contains("Action=AssumeRole")
            && match self.0 {
                None => true,
                Some(with) => body.contains("ExternalId=") == with,
            }
    }
}

async fn count(stub: &MockServer, m: AssumeRole) -> usize {
    stub.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| m.matches(r))
        .count()
}

async fn assume_bodies(stub: &MockServer) -> Vec<String> {
    stub.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| AssumeRole(None).matches(r))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// The gateway's identity, and `GetCallerIdentity` of any session: `account`.
async fn mount_identities(stub: &MockServer, account: &str) {
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .and(header_regex(
            "authorization",
            &format!("Credential={GATEWAY_KEY}/"),
        ))
        .respond_with(stub_identity("999988887777", GATEWAY_ARN))
        .with_priority(1)
        .mount(stub)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .respond_with(stub_identity(
            account,
            &format!("arn:aws:sts::{account}:assumed-role/AuroraConnectorRole/aurora"),
        ))
        .with_priority(2)
        .mount(stub)
        .await;
}

/// A correctly configured role: assumed with the external ID, refused without it.
async fn mount_good_role(stub: &MockServer, account: &str, session: &StubSession) {
    mount_identities(stub, account).await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(false)))
        .respond_with(stub_error(403, "AccessDenied"))
        .with_priority(5)
        .mount(stub)
        .await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(session.response(Utc::now() + chrono::Duration::hours(1)))
        .with_priority(5)
        .mount(stub)
        .await;
}

// ---------------------------------------------------------------- moto

async fn moto_setup_connect_use_disconnect(b: Backend) {
    let (app, moto) = moto_app(b, &[]).await;
    let u = user();

    // Setup: the external ID, stable; a trust policy naming moto's identity and the external ID.
    let s = setup(&app, &u).await;
    let ext = s["externalId"].as_str().unwrap().to_owned();
    assert_eq!(ext.len(), 40);
    assert!(ext.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(external_id(&app, &u).await, ext, "stable until rotated");
    assert_ne!(external_id(&app, &user()).await, ext, "one per workspace");
    let st = &s["trustPolicy"]["Statement"][0];
    assert_eq!(
        st["Principal"]["AWS"],
        "arn:aws:sts::123456789012:user/moto"
    );
    assert_eq!(st["Action"], "sts:AssumeRole");
    assert_eq!(st["Condition"]["StringEquals"]["sts:ExternalId"], ext);
    assert_eq!(
        s["readOnlyPolicyArns"],
        json!(["arn:aws:iam::aws:policy/ReadOnlyAccess"])
    );
    let template = s["cloudFormationTemplate"].as_str().unwrap();
    assert!(template.contains("AWS::IAM::Role"));
    assert!(template.contains("MaxSessionDuration: 3600"));
    assert!(template.contains("arn:aws:sts::123456789012:user/moto"));
    assert!(
        !template.contains(&ext),
        "the template is the same for every user"
    );
    let link = s["quickCreateUrl"].as_str().unwrap();
    assert!(
        link.starts_with(
            "https://console.aws.amazon.com/cloudformation/home?region=us-east-1#/stacks/"
        ),
        "{link}"
    );
    assert!(link.contains(&format!("param_ExternalId={ext}")), "{link}");

    // A wrong external ID is refused before any STS call.
    let (st, e) = auth(
        &app,
        &u,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": "not-my-external-id"}),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["code"], "external_id_mismatch");

    // Connect.
    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    assert_eq!(c["status"], "success");
    assert_eq!(c["accountId"], ACCOUNT_A);
    let id = c["connectionId"].as_str().unwrap().to_owned();
    let exp: DateTime<Utc> = c["expiration"].as_str().unwrap().parse().unwrap();
    let left = exp - Utc::now();
    assert!(
        left > chrono::Duration::minutes(55) && left <= chrono::Duration::minutes(61),
        "{left}"
    );

    // The listing: metadata only.
    let (st, list) = call(app.get(&u, "/aws/get-credentials")).await;
    assert_eq!(st, 200);
    assert_eq!(list["hasCredentials"], true);
    let acct = &list["accounts"][0];
    assert_eq!(acct["connectionId"], id.as_str());
    assert_eq!(acct["accountId"], ACCOUNT_A);
    assert_eq!(acct["roleArn"], role(ACCOUNT_A, "AuroraConnectorRole"));
    assert_eq!(acct["readOnlyRoleArn"], Value::Null);
    assert_eq!(acct["status"], "active");
    assert!(acct["expiration"].is_string());
    assert!(!list.to_string().contains(&ext));
    let (_, v) = call(app.get(&u, &format!("/api/connections/{id}"))).await;
    assert_eq!(v["provider"], "aws");
    assert_eq!(v["accountId"], ACCOUNT_A);

    // The secret store holds what is needed to assume the role again.
    let path = SecretPath::from_stored(&format!("users/{u}/aws/{id}")).unwrap();
    let stored: Value = app
        .platform
        .secrets()
        .get(&path)
        .await
        .unwrap()
        .expect("secret stored")
        .decode()
        .unwrap();
    assert_eq!(stored["externalId"], ext);
    assert_eq!(stored["roleArn"], role(ACCOUNT_A, "AuroraConnectorRole"));

    // Credentials on use: real session credentials of the role's account; the second use is cached.
    let (st, full) = credentials(&app, &u, &id, "full").await;
    assert_eq!(st, 200, "{full}");
    assert_eq!(full["provider"], "aws");
    assert_eq!(full["accountId"], ACCOUNT_A);
    assert_eq!(full["mode"], "full");
    let cr = &full["credentials"];
    let key = cr["accessKeyId"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ASIA"), "{key}");
    let secret = cr["secretAccessKey"].as_str().unwrap().to_owned();
    let token = cr["sessionToken"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 20 && token.len() >= 20);
    let exp: DateTime<Utc> = cr["expiration"].as_str().unwrap().parse().unwrap();
    let at: DateTime<Utc> = full["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!((exp - at).num_seconds().abs() <= 1);
    let (who, arn) = moto_whoami(&moto, &key).await;
    assert_eq!(who, ACCOUNT_A);
    assert!(
        arn.contains("assumed-role/AuroraConnectorRole/aurora-"),
        "{arn}"
    );
    assert!(
        !arn.contains(&u),
        "the session name is derived, not the user id"
    );
    let (_, again) = credentials(&app, &u, &id, "full").await;
    assert_eq!(
        again["credentials"]["accessKeyId"],
        key.as_str(),
        "served from the cache"
    );
    // Read-only mode (no read-only role: the main role with the ReadOnlyAccess session policy).
    let (st, ro) = credentials(&app, &u, &id, "read_only").await;
    assert_eq!(st, 200);
    assert_eq!(ro["mode"], "read_only");
    assert_ne!(ro["credentials"]["accessKeyId"], key.as_str());

    // Live validation.
    let (st, v) = call(app.post(&u, &format!("/api/connections/{id}/validate"))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "active");

    // Nothing secret in the logs or the database (the dump does hold the connection).
    assert!(app.db_dump().await.contains(ACCOUNT_A));
    assert_not_leaked(&app, &[&ext, &secret, &token, GATEWAY_SECRET]).await;

    // Disconnect by account: secret, cached credentials and row are gone.
    let (st, d) = call(
        app.post(&u, "/aws/disconnect")
            .json(&json!({"accountId": ACCOUNT_A})),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["disconnected"], 1);
    assert!(app.platform.secrets().get(&path).await.unwrap().is_none());
    let (st, _) = credentials(&app, &u, &id, "full").await;
    assert_eq!(st, 404);
    let (_, list) = call(app.get(&u, "/aws/get-credentials")).await;
    assert_eq!(
        list,
        json!({"status": "success", "hasCredentials": false, "accounts": []})
    );
    // The workspace's external ID outlives its connections.
    assert_eq!(external_id(&app, &u).await, ext);
}

async fn moto_two_accounts_read_only_role_and_reconnect(b: Backend) {
    let (app, moto) = moto_app(b, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let a = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    let b2 = connect(&app, &u, &role(ACCOUNT_B, "path/AuroraConnectorRole"), &ext).await;
    assert_eq!(b2["accountId"], ACCOUNT_B);
    assert_ne!(a["connectionId"], b2["connectionId"]);

    // The same account again (now with a read-only role): the same connection, updated.
    let (st, again) = auth(
        &app,
        &u,
        json!({
            "role_arn": role(ACCOUNT_A, "AuroraConnectorRole"), "external_id": ext,
            "readOnlyRoleArn": role(ACCOUNT_A, "AuroraReadOnly"), "region": "eu-west-1",
            "userId": u
        }),
    )
    .await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["connectionId"], a["connectionId"]);
    assert!(again["message"].as_str().unwrap().contains("reconnected"));

    let (_, list) = call(app.get(&u, "/aws/get-credentials")).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 2);
    let (_, only_b) =
        call(app.get(&u, &format!("/aws/get-credentials?accountId={ACCOUNT_B}"))).await;
    assert_eq!(only_b["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(only_b["accounts"][0]["accountId"], ACCOUNT_B);
    let (_, a_view) =
        call(app.get(&u, &format!("/aws/get-credentials?accountId={ACCOUNT_A}"))).await;
    assert_eq!(
        a_view["accounts"][0]["readOnlyRoleArn"],
        role(ACCOUNT_A, "AuroraReadOnly")
    );
    assert_eq!(a_view["accounts"][0]["region"], "eu-west-1");
    let (st, _) = call(app.get(&u, "/aws/get-credentials?accountId=12")).await;
    assert_eq!(st, 400);

    // Each connection's credentials are for its own account; read_only uses the read-only role.
    for (conn, account, role_name) in [
        (&a, ACCOUNT_A, "AuroraConnectorRole"),
        (&b2, ACCOUNT_B, "AuroraConnectorRole"),
    ] {
        let id = conn["connectionId"].as_str().unwrap();
        let (st, c) = credentials(&app, &u, id, "full").await;
        assert_eq!(st, 200, "{c}");
        assert_eq!(c["accountId"], account);
        let (who, arn) =
            moto_whoami(&moto, c["credentials"]["accessKeyId"].as_str().unwrap()).await;
        assert_eq!(who, account);
        assert!(arn.contains(&format!("assumed-role/{role_name}/")), "{arn}");
    }
    let (_, ro) = credentials(&app, &u, a["connectionId"].as_str().unwrap(), "read_only").await;
    let (who, arn) = moto_whoami(&moto, ro["credentials"]["accessKeyId"].as_str().unwrap()).await;
    assert_eq!(who, ACCOUNT_A);
    assert!(arn.contains("assumed-role/AuroraReadOnly/"), "{arn}");

    // Disconnect one by connection id; the other stays.
    let (st, d) = call(
        app.post(&u, "/aws/disconnect")
            .json(&json!({"connectionId": b2["connectionId"]})),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["disconnected"], 1);
    let (_, list) = call(app.get(&u, "/api/connections?provider=aws")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["accountId"], ACCOUNT_A);
    // Disconnect all.
    let (_, d) = call(app.post(&u, "/aws/disconnect")).await;
    assert_eq!(d["disconnected"], 1);
}

async fn moto_refresh_on_use_with_a_short_session(b: Backend) {
    // Sessions of 120 s are always inside the broker's 5-minute margin: every use assumes anew.
    let (app, moto) = moto_app(b, &[("AURORA_AWS_SESSION_SECONDS", "120")]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    let id = c["connectionId"].as_str().unwrap();
    let mut keys = std::collections::HashSet::new();
    for _ in 0..3 {
        let (st, cr) = credentials(&app, &u, id, "full").await;
        assert_eq!(st, 200, "{cr}");
        let exp: DateTime<Utc> = cr["expiresAt"].as_str().unwrap().parse().unwrap();
        let left = (exp - Utc::now()).num_seconds();
        assert!((100..=121).contains(&left), "{left}");
        let key = cr["credentials"]["accessKeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(moto_whoami(&moto, &key).await.0, ACCOUNT_A);
        keys.insert(key);
    }
    assert_eq!(keys.len(), 3, "refreshed on every use");
}

// ---------------------------------------------------------------- the wiremock STS

async fn stub_setup_trust_policy_and_rotation(b: Backend) {
    let stub = MockServer::start().await;
    let session = StubSession::new();
    mount_good_role(&stub, ACCOUNT_A, &session).await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();

    let s = setup(&app, &u).await;
    // The gateway runs under an instance role: the principal is the role, found once.
    assert_eq!(s["principalArn"], GATEWAY_PRINCIPAL);
    assert_eq!(
        s["trustPolicy"]["Statement"][0]["Principal"]["AWS"],
        GATEWAY_PRINCIPAL
    );
    let first = s["externalId"].as_str().unwrap().to_owned();
    let _ = setup(&app, &u).await;
    let gateway_lookups = stub
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            String::from_utf8_lossy(&r.body).contains("Action=GetCallerIdentity")
                && r.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .contains(GATEWAY_KEY)
        })
        .count();
    assert_eq!(gateway_lookups, 1, "the gateway's principal is cached");

    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &first).await;
    let id = c["connectionId"].as_str().unwrap().to_owned();

    // Rotate: a new external ID, stable afterwards; the old one no longer connects.
    let (st, r) = call(app.post(&u, "/aws/setup/rotate-external-id")).await;
    assert_eq!(st, 200, "{r}");
    let second = r["externalId"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(
        r["trustPolicy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        second
    );
    assert_eq!(external_id(&app, &u).await, second);
    let (st, e) = auth(
        &app,
        &u,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": first}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["code"], "external_id_mismatch");
    // The existing connection keeps assuming with the external ID it was made with.
    let (st, _) = credentials(&app, &u, &id, "full").await;
    assert_eq!(st, 200);
    let last = assume_bodies(&stub).await.pop().unwrap();
    assert!(last.contains(&format!("ExternalId={first}")), "{last}");
    // Owner binding on rotation.
    let (st, e) = call(
        app.post(&u, "/aws/setup/rotate-external-id")
            .json(&json!({"userId": "someone-else"})),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(e["code"], "user_mismatch");
    assert_eq!(external_id(&app, &u).await, second);
    // Neither external ID is in the database or the logs.
    assert_not_leaked(&app, &[&first, &second, &session.secret, &session.token]).await;
}

async fn stub_read_only_mode_uses_a_session_policy(b: Backend) {
    let stub = MockServer::start().await;
    let session = StubSession::new();
    mount_good_role(&stub, ACCOUNT_A, &session).await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    let id = c["connectionId"].as_str().unwrap();

    let (st, ro) = credentials(&app, &u, id, "read_only").await;
    assert_eq!(st, 200, "{ro}");
    assert_eq!(
        ro["credentials"]["accessKeyId"],
        session.access_key_id.as_str()
    );
    assert_eq!(
        ro["credentials"]["secretAccessKey"],
        session.secret.as_str()
    );
    assert_eq!(ro["credentials"]["sessionToken"], session.token.as_str());
    let body = assume_bodies(&stub).await.pop().unwrap();
    assert!(
        body.contains("PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess"),
        "{body}"
    );
    assert!(body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FAuroraConnectorRole"));
    let (st, _) = credentials(&app, &u, id, "full").await;
    assert_eq!(st, 200);
    let body = assume_bodies(&stub).await.pop().unwrap();
    assert!(
        !body.contains("PolicyArns"),
        "full mode has no session policy: {body}"
    );
    assert!(body.contains("DurationSeconds=3600"), "{body}");
    assert!(body.contains("RoleSessionName=aurora-"), "{body}");
    assert!(
        !body.contains(&u),
        "the session name is derived, not the user id"
    );
}

async fn stub_access_denied_is_actionable(b: Backend) {
    let stub = MockServer::start().await;
    mount_identities(&stub, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(None))
        .respond_with(stub_error(403, "AccessDenied"))
        .mount(&stub)
        .await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let arn = role(ACCOUNT_A, "AuroraConnectorRole");
    let (st, e) = auth(&app, &u, json!({"roleArn": arn, "externalId": ext})).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["status"], "error");
    assert_eq!(e["code"], "credentials_rejected");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains(&arn), "{m}");
    assert!(m.contains("trust policy") && m.contains("principal"), "{m}");
    assert!(m.contains("sts:ExternalId"), "{m}");
    assert!(!m.contains(&ext), "no secret in the message");
    assert!(!m.contains("raw-sts-message"), "no raw provider message");
    assert_eq!(
        count(&stub, AssumeRole(None)).await,
        1,
        "a refusal is not retried"
    );
    // Nothing stored.
    let (_, list) = call(app.get(&u, "/api/connections")).await;
    assert_eq!(list, json!([]));
}

async fn stub_account_mismatch_is_refused(b: Backend) {
    let stub = MockServer::start().await;
    // The session answers as another account than the ARN's.
    mount_good_role(&stub, ACCOUNT_B, &StubSession::new()).await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let (st, e) = auth(
        &app,
        &u,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": ext}),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["code"], "credentials_rejected");
    assert!(e["message"].as_str().unwrap().contains(ACCOUNT_B));
    let (_, list) = call(app.get(&u, "/api/connections")).await;
    assert_eq!(list, json!([]));
}

async fn stub_role_without_external_id_condition_is_refused(b: Backend) {
    // This role's trust policy lacks the external-ID condition: STS lets anyone in.
    let stub = MockServer::start().await;
    mount_identities(&stub, ACCOUNT_A).await;
    let session = StubSession::new();
    Mock::given(method("POST"))
        .and(AssumeRole(None))
        .respond_with(session.response(Utc::now() + chrono::Duration::hours(1)))
        .mount(&stub)
        .await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let arn = role(ACCOUNT_A, "AuroraConnectorRole");
    let (st, e) = auth(&app, &u, json!({"roleArn": arn, "externalId": ext})).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["code"], "external_id_not_enforced");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("sts:ExternalId") && m.contains(&arn), "{m}");
    assert!(!m.contains(&ext));
    assert_eq!(count(&stub, AssumeRole(Some(true))).await, 1);
    assert_eq!(
        count(&stub, AssumeRole(Some(false))).await,
        1,
        "the probe came without an external ID"
    );
    let (_, list) = call(app.get(&u, "/api/connections")).await;
    assert_eq!(list, json!([]), "nothing stored");

    // The same for a read-only role that does not enforce it, while the main role does.
    let stub2 = MockServer::start().await;
    mount_identities(&stub2, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(false)))
        .and(body_string_contains("AuroraConnectorRole"))
        .respond_with(stub_error(403, "AccessDenied"))
        .with_priority(1)
        .mount(&stub2)
        .await;
    Mock::given(method("POST"))
        .and(AssumeRole(None))
        .respond_with(session.response(Utc::now() + chrono::Duration::hours(1)))
        .with_priority(2)
        .mount(&stub2)
        .await;
    let app2 = stub_app(b, &stub2, &[]).await;
    let ext2 = external_id(&app2, &u).await;
    let (st, e) = auth(
        &app2,
        &u,
        json!({"roleArn": arn, "externalId": ext2, "readOnlyRoleArn": role(ACCOUNT_A, "OpenReadOnly")}),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["code"], "external_id_not_enforced");
    assert!(e["message"].as_str().unwrap().contains("OpenReadOnly"));

    // With the check turned off (as for moto), the same permissive role connects.
    let app3 = stub_app(b, &stub, &[("AURORA_AWS_EXTERNAL_ID_CHECK", "false")]).await;
    let ext3 = external_id(&app3, &u).await;
    let (st, ok) = auth(&app3, &u, json!({"roleArn": arn, "externalId": ext3})).await;
    assert_eq!(st, 200, "{ok}");
}

async fn stub_throttling_is_retried_then_502(b: Backend) {
    let stub = MockServer::start().await;
    mount_identities(&stub, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(None))
        .respond_with(stub_error(400, "Throttling"))
        .mount(&stub)
        .await;
    let app = stub_app(b, &stub, &[("AURORA_AWS_MAX_ATTEMPTS", "3")]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let body = json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": ext});
    let (st, e) = auth(&app, &u, body.clone()).await;
    assert_eq!(st, 502, "{e}");
    assert_eq!(e["code"], "provider_unavailable");
    assert!(e["message"].as_str().unwrap().contains("3 attempts"), "{e}");
    assert!(!e["message"].as_str().unwrap().contains("raw-sts-message"));
    assert_eq!(count(&stub, AssumeRole(None)).await, 3, "bounded retries");

    // Throttled twice, then answered: the retries recover.
    let stub2 = MockServer::start().await;
    let session = StubSession::new();
    mount_good_role(&stub2, ACCOUNT_A, &session).await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(stub_error(400, "Throttling"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stub2)
        .await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(stub_error(503, "ServiceUnavailable"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&stub2)
        .await;
    let app2 = stub_app(b, &stub2, &[("AURORA_AWS_MAX_ATTEMPTS", "3")]).await;
    let ext2 = external_id(&app2, &u).await;
    let (st, ok) = auth(
        &app2,
        &u,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": ext2}),
    )
    .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(count(&stub2, AssumeRole(Some(true))).await, 3);
}

async fn stub_timeout_is_502(b: Backend) {
    let stub = MockServer::start().await;
    mount_identities(&stub, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(None))
        .respond_with(
            StubSession::new()
                .response(Utc::now() + chrono::Duration::hours(1))
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&stub)
        .await;
    let app = stub_app(
        b,
        &stub,
        &[
            ("AURORA_AWS_TIMEOUT_SECS", "1"),
            ("AURORA_AWS_MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let started = Instant::now();
    let (st, e) = auth(
        &app,
        &u,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": ext}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(st, 502, "{e}");
    assert_eq!(e["code"], "provider_unavailable");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s"),
        "{e}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(count(&stub, AssumeRole(None)).await, 2);
}

/// 200 concurrent credential requests on a connection whose credentials are expired (inside the
/// refresh margin): exactly one `AssumeRole` reaches STS.
async fn single_flight_on_an_expired_connection(b: Backend) {
    let stub = MockServer::start().await;
    let short = StubSession::new();
    let long = StubSession::new();
    mount_identities(&stub, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(false)))
        .respond_with(stub_error(403, "AccessDenied"))
        .mount(&stub)
        .await;
    // Connect and the first use get sessions that end in 2 minutes (so nothing is cached) ...
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(short.response(Utc::now() + chrono::Duration::minutes(2)))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&stub)
        .await;
    // ... then an hour-long one, slowly, so the callers pile up behind the refresh.
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(
            long.response(Utc::now() + chrono::Duration::hours(1))
                .set_delay(Duration::from_millis(500)),
        )
        .with_priority(2)
        .mount(&stub)
        .await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    let id = c["connectionId"].as_str().unwrap().to_owned();
    let (st, first) = credentials(&app, &u, &id, "full").await;
    assert_eq!(st, 200);
    assert_eq!(
        first["credentials"]["accessKeyId"],
        short.access_key_id.as_str()
    );
    let before = count(&stub, AssumeRole(Some(true))).await;
    assert_eq!(before, 2);

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let req = app.credentials(&u, &id, "full");
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }));
    }
    let mut keys = std::collections::HashSet::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        keys.insert(v["credentials"]["accessKeyId"].as_str().unwrap().to_owned());
    }
    let reached = count(&stub, AssumeRole(Some(true))).await - before;
    eprintln!("single-flight: 200 concurrent requests, {reached} AssumeRole reached STS");
    assert_eq!(
        reached, 1,
        "exactly one AssumeRole for 200 concurrent callers"
    );
    assert_eq!(keys.len(), 1);
    assert!(keys.contains(&long.access_key_id));
    assert_not_leaked(
        &app,
        &[&long.secret, &long.token, &short.secret, &short.token, &ext],
    )
    .await;
}

async fn stub_refusal_after_connect_needs_reconnect(b: Backend) {
    let stub = MockServer::start().await;
    let session = StubSession::new();
    mount_identities(&stub, ACCOUNT_A).await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(false)))
        .respond_with(stub_error(403, "AccessDenied"))
        .mount(&stub)
        .await;
    // The role works for the connect, then its trust policy is changed.
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(session.response(Utc::now() + chrono::Duration::hours(1)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stub)
        .await;
    Mock::given(method("POST"))
        .and(AssumeRole(Some(true)))
        .respond_with(stub_error(403, "AccessDenied"))
        .with_priority(2)
        .mount(&stub)
        .await;
    let app = stub_app(b, &stub, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    let c = connect(&app, &u, &role(ACCOUNT_A, "AuroraConnectorRole"), &ext).await;
    let id = c["connectionId"].as_str().unwrap();
    let (st, e) = credentials(&app, &u, id, "full").await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["code"], "credentials_rejected");
    let (st, v) = call(app.post(&u, &format!("/api/connections/{id}/validate"))).await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "needs_reconnect");
    assert!(v["statusReason"].as_str().unwrap().contains("trust policy"));
    let (st, e) = credentials(&app, &u, id, "full").await;
    assert_eq!(st, 409);
    assert_eq!(e["code"], "needs_reconnect");
    let (_, list) = call(app.get(&u, "/aws/get-credentials")).await;
    assert_eq!(list["accounts"][0]["status"], "needs_reconnect");
}

// ---------------------------------------------------------------- isolation and input

async fn users_cannot_read_or_use_each_others_aws_connections(b: Backend) {
    let (app, _moto) = moto_app(b, &[]).await;
    let (alice, bob) = (user(), user());
    let alice_ext = external_id(&app, &alice).await;
    let c = connect(
        &app,
        &alice,
        &role(ACCOUNT_A, "AuroraConnectorRole"),
        &alice_ext,
    )
    .await;
    let id = c["connectionId"].as_str().unwrap().to_owned();
    let bob_ext = external_id(&app, &bob).await;
    assert_ne!(bob_ext, alice_ext);

    // Bob sees nothing of Alice's connection, exactly as for an id that does not exist.
    let missing = uuid::Uuid::new_v4().to_string();
    for target in [&id, &missing] {
        for (verb, p) in [
            ("GET", format!("/api/connections/{target}")),
            ("DELETE", format!("/api/connections/{target}")),
            ("POST", format!("/api/connections/{target}/validate")),
            (
                "GET",
                format!("/api/connections/{target}/credentials?mode=full"),
            ),
            (
                "GET",
                format!("/api/connections/{target}/credentials?mode=read_only"),
            ),
        ] {
            let req = match verb {
                "GET" => app.get(&bob, &p),
                "DELETE" => app.delete(&bob, &p),
                _ => app.post(&bob, &p),
            };
            let (st, e) = call(req).await;
            assert_eq!(st, 404, "{verb} {p}");
            assert_eq!(e["message"], "no such connection");
        }
    }
    let (_, list) = call(app.get(&bob, "/aws/get-credentials")).await;
    assert_eq!(list["hasCredentials"], false);
    let (_, list) =
        call(app.get(&bob, &format!("/aws/get-credentials?accountId={ACCOUNT_A}"))).await;
    assert_eq!(list["accounts"], json!([]));
    let (st, _) = call(
        app.post(&bob, "/aws/disconnect")
            .json(&json!({"connectionId": id})),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(
        app.post(&bob, "/aws/disconnect")
            .json(&json!({"accountId": ACCOUNT_A})),
    )
    .await;
    assert_eq!(st, 404);
    let (_, d) = call(app.post(&bob, "/aws/disconnect")).await;
    assert_eq!(d["disconnected"], 0);
    // Bob cannot connect Alice's role with Alice's external ID (it is not his workspace's) ...
    let (st, e) = auth(
        &app,
        &bob,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": alice_ext}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["code"], "external_id_mismatch");
    // ... nor act as Alice through the body.
    let (st, e) = auth(
        &app,
        &bob,
        json!({"roleArn": role(ACCOUNT_A, "AuroraConnectorRole"), "externalId": bob_ext, "userId": alice}),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(e["code"], "user_mismatch");
    // Alice's connection is untouched and usable.
    let (st, cr) = credentials(&app, &alice, &id, "full").await;
    assert_eq!(st, 200, "{cr}");
    let (_, list) = call(app.get(&alice, "/aws/get-credentials")).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
}

async fn aws_input_and_contract(b: Backend) {
    let (app, _moto) = moto_app(b, &[]).await;
    let u = user();
    let ext = external_id(&app, &u).await;
    for (body, field) in [
        (json!({"externalId": ext}), "roleArn"),
        (
            json!({"roleArn": "arn:aws:iam::123:role/x", "externalId": ext}),
            "roleArn",
        ),
        (
            json!({"roleArn": "arn:aws-iso:iam::111122223333:role/x", "externalId": ext}),
            "roleArn",
        ),
        (json!({"roleArn": role(ACCOUNT_A, "R")}), "externalId"),
        (
            json!({"roleArn": role(ACCOUNT_A, "R"), "externalId": ext, "readOnlyRoleArn": role(ACCOUNT_B, "RO")}),
            "readOnlyRoleArn",
        ),
        (
            json!({"roleArn": role(ACCOUNT_A, "R"), "externalId": ext, "region": "cn-north-1"}),
            "region",
        ),
    ] {
        let (st, e) = auth(&app, &u, body.clone()).await;
        assert_eq!(st, 400, "{body}: {e}");
        assert_eq!(e["code"], "invalid_request");
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }
    // Identity and the internal secret are required.
    let resp = app.http.get(app.url("/aws/setup")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .get(&u, "/aws/setup")
        .header("X-Internal-Secret", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The provider and its routes are described.
    let (_, providers) = call(app.get(&u, "/api/providers")).await;
    let aws = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "aws")
        .expect("aws listed");
    assert_eq!(aws["authKind"], "role_assumption");
    for cap in ["multi_account", "credentials", "read_only_mode", "validate"] {
        assert!(
            aws["capabilities"]
                .as_array()
                .unwrap()
                .contains(&json!(cap)),
            "{cap}"
        );
    }
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/aws/setup",
        "/aws/setup/rotate-external-id",
        "/aws/auth",
        "/aws/get-credentials",
        "/aws/disconnect",
    ] {
        assert!(doc["paths"][p].is_object(), "openapi lacks {p}");
    }
}

both_backends!(
    moto_setup_connect_use_disconnect,
    moto_two_accounts_read_only_role_and_reconnect,
    moto_refresh_on_use_with_a_short_session,
    stub_setup_trust_policy_and_rotation,
    stub_read_only_mode_uses_a_session_policy,
    stub_access_denied_is_actionable,
    stub_account_mismatch_is_refused,
    stub_role_without_external_id_condition_is_refused,
    stub_throttling_is_retried_then_502,
    stub_timeout_is_502,
    single_flight_on_an_expired_connection,
    stub_refusal_after_connect_needs_reconnect,
    users_cannot_read_or_use_each_others_aws_connections,
    aws_input_and_contract,
);
