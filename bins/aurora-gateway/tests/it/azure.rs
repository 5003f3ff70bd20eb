//! The Azure plugin through the whole gateway, against the embedded default and against real
//! PostgreSQL + Redis + OpenBao.
//!
//! The token endpoint is the real oauth2-mock-server (it mints the access tokens, RS256 JWTs, with the
//! client-credentials grant). oauth2-mock-server serves `/token` only and accepts any client, so a
//! small wiremock front stands where Entra ID's `{authority}/{tenant}/oauth2/v2.0/token` is: it
//! knows the tenants, the applications and their secrets, answers the AADSTS refusals the mock
//! cannot produce (wrong secret, unknown tenant, unknown application, expired secret), and forwards
//! every valid grant to the mock's `/token`. Resource Manager is a wiremock fake that accepts only
//! the tokens the mock issued and lists, page by page (`nextLink`), the subscriptions of the
//! principal the token belongs to.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::common::{trusted_json, Backend, Options, TestApp, INTERNAL_SECRET};
use aurora_testkit::Peer;
use connector_core::SecretPath;
use parking_lot::Mutex;
use serde_json::{json, Value};
use wiremock::matchers::{any, body_string_contains, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SCOPE: &str = "https://management.azure.com/.default";
const API_VERSION: &str = "2022-12-01";

// ---- the peers ----

/// The oauth2-mock-server of this test binary (started once; its watchdog stops it when the binary
/// exits).
async fn oauth2_url() -> String {
    static PEER: OnceLock<Peer> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        PEER.get_or_init(|| aurora_testkit::oauth2_mock().expect("oauth2-mock-server"))
            .url
            .clone()
    })
    .await
    .unwrap()
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .expect("form body");
    url.query_pairs().into_owned().collect()
}

/// POST a form to oauth2-mock-server's `/token`. wiremock answers synchronously, so the call runs on
/// a thread of its own with its own runtime.
fn forward_token(oauth2: &str, form: Vec<(&'static str, String)>) -> (u16, Vec<u8>) {
    let url = format!("{oauth2}/token");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let resp = reqwest::Client::new()
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("oauth2-mock-server answers");
            let status = resp.status().as_u16();
            (status, resp.bytes().await.unwrap().to_vec())
        })
    })
    .join()
    .unwrap()
}

#[derive(Clone)]
struct App {
    secret: String,
    expired: bool,
}

#[derive(Default)]
struct Directory {
    tenants: HashSet<String>,
    /// (tenant, client id) → application.
    apps: HashMap<(String, String), App>,
    /// client id → the subscriptions it has a role on.
    visible: HashMap<String, Vec<Value>>,
    /// access token → client id.
    tokens: HashMap<String, String>,
    page_size: usize,
}

fn aadsts(status: u16, error: &str, code: u64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: RAW-PROVIDER-TEXT. Trace ID: 0 Correlation ID: 0 Timestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "0", "correlation_id": "0",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
    }))
}

/// Entra ID's token endpoint: checks the tenant, the application and its secret, then forwards the
/// grant to oauth2-mock-server (with `aud` = the client id, so each principal's tokens differ).
struct TokenEndpoint {
    dir: Arc<Mutex<Directory>>,
    oauth2: String,
}

impl Respond for TokenEndpoint {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let segs: Vec<&str> = req.url.path().trim_matches('/').split('/').collect();
        if segs.len() != 4 || segs[1..] != ["oauth2", "v2.0", "token"] {
            return ResponseTemplate::new(404);
        }
        let tenant = segs[0].to_owned();
        let form = parse_form(&req.body);
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        if get("grant_type") != "client_credentials" {
            return aadsts(400, "unsupported_grant_type", 70003);
        }
        if get("scope") != SCOPE {
            return aadsts(400, "invalid_scope", 70011);
        }
        let client = get("client_id");
        {
            let dir = self.dir.lock();
            if !dir.tenants.contains(&tenant) {
                return aadsts(400, "invalid_request", 90002);
            }
            match dir.apps.get(&(tenant, client.clone())) {
                None => return aadsts(400, "unauthorized_client", 700016),
                Some(app) if app.secret != get("client_secret") => {
                    return aadsts(401, "invalid_client", 7000215)
                }
                Some(app) if app.expired => return aadsts(401, "invalid_client", 7000222),
                Some(_) => {}
            }
        }
        let (status, body) = forward_token(
            &self.oauth2,
            vec![
                ("grant_type", "client_credentials".into()),
                ("scope", SCOPE.into()),
                ("aud", client.clone()),
            ],
        );
        if status == 200 {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let token = v["access_token"].as_str().unwrap().to_owned();
            self.dir.lock().tokens.insert(token, client);
        }
        ResponseTemplate::new(status).set_body_raw(body, "application/json")
    }
}

/// Resource Manager's Subscriptions API, for the tokens oauth2-mock-server issued.
struct ResourceManager {
    dir: Arc<Mutex<Directory>>,
    base: String,
}

impl Respond for ResourceManager {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let token = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let dir = self.dir.lock();
        let Some(client) = dir.tokens.get(token) else {
            return ResponseTemplate::new(401).set_body_json(json!({"error": {
                "code": "InvalidAuthenticationToken", "message": "RAW-PROVIDER-TEXT"}}));
        };
        let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
        if q.get("api-version").map(String::as_str) != Some(API_VERSION) {
            return ResponseTemplate::new(400);
        }
        let subs = dir.visible.get(client).cloned().unwrap_or_default();
        let segs: Vec<&str> = req.url.path().trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["subscriptions"] => {
                let skip: usize = q
                    .get("$skiptoken")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let size = if dir.page_size == 0 {
                    100
                } else {
                    dir.page_size
                };
                let end = (skip + size).min(subs.len());
                let mut body = json!({"value": subs.get(skip..end).unwrap_or_default()});
                if end < subs.len() {
                    body["nextLink"] = json!(format!(
                        "{}/subscriptions?api-version={API_VERSION}&%24skiptoken={end}",
                        self.base
                    ));
                }
                ResponseTemplate::new(200).set_body_json(body)
            }
            ["subscriptions", id] => match subs.iter().find(|s| s["subscriptionId"] == *id) {
                Some(s) => ResponseTemplate::new(200).set_body_json(s),
                None => ResponseTemplate::new(404).set_body_json(json!({"error": {
                    "code": "SubscriptionNotFound", "message": "RAW-PROVIDER-TEXT"}})),
            },
            _ => ResponseTemplate::new(404),
        }
    }
}

struct Principal {
    tenant: String,
    client_id: String,
    secret: String,
}

struct FakeAzure {
    entra: MockServer,
    arm: MockServer,
    dir: Arc<Mutex<Directory>>,
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn subscription(name: &str, state: &str) -> Value {
    let id = uuid();
    json!({
        "id": format!("/subscriptions/{id}"),
        "subscriptionId": id,
        "displayName": name,
        "state": state,
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}
    })
}

impl FakeAzure {
    async fn start() -> Self {
        let dir = Arc::new(Mutex::new(Directory::default()));
        let entra = MockServer::start().await;
        let arm = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(TokenEndpoint {
                dir: dir.clone(),
                oauth2: oauth2_url().await,
            })
            .with_priority(10)
            .mount(&entra)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResourceManager {
                dir: dir.clone(),
                base: arm.uri(),
            })
            .with_priority(10)
            .mount(&arm)
            .await;
        Self { entra, arm, dir }
    }

    fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("AURORA_AZURE_AUTHORITY_URL".into(), self.entra.uri()),
            ("AURORA_AZURE_MANAGEMENT_URL".into(), self.arm.uri()),
        ]
    }

    /// A new application with a secret, in `tenant` (a new tenant when `None`), with a role on `subs`.
    fn principal(&self, tenant: Option<&str>, subs: &[Value]) -> Principal {
        let tenant = tenant.map(str::to_owned).unwrap_or_else(uuid);
        let p = Principal {
            tenant: tenant.clone(),
            client_id: uuid(),
            secret: format!("Q8~{}.secret", uuid::Uuid::new_v4().simple()),
        };
        let mut dir = self.dir.lock();
        dir.tenants.insert(tenant.clone());
        dir.apps.insert(
            (tenant, p.client_id.clone()),
            App {
                secret: p.secret.clone(),
                expired: false,
            },
        );
        dir.visible.insert(p.client_id.clone(), subs.to_vec());
        p
    }

    fn expire(&self, p: &Principal) {
        if let Some(app) = self
            .dir
            .lock()
            .apps
            .get_mut(&(p.tenant.clone(), p.client_id.clone()))
        {
            app.expired = true;
        }
    }

    /// Which client the token was issued to.
    fn holder(&self, token: &str) -> Option<String> {
        self.dir.lock().tokens.get(token).cloned()
    }
}

// ---- helpers ----

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

async fn spawn(b: Backend, fake: &FakeAzure, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = fake.settings();
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestApp::spawn_with(
        b,
        Options {
            internal_secret: Some(INTERNAL_SECRET.into()),
            settings,
            ..Options::default()
        },
    )
    .await
}

fn login_body(p: &Principal) -> Value {
    json!({"tenantId": p.tenant, "clientId": p.client_id, "clientSecret": p.secret})
}

async fn post(app: &TestApp, user: &str, path: &str, body: &Value) -> (u16, Value) {
    trusted_json(app.post(user, path).json(body)).await
}

async fn get(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    trusted_json(app.get(user, path)).await
}

async fn login(app: &TestApp, user: &str, body: &Value) -> Value {
    let (status, body) = post(app, user, "/azure/login", body).await;
    assert_eq!(status, 200, "login failed: {body}");
    body
}

/// The error body of §1, with a message free of secrets and raw provider text.
fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, secrets: &[&str]) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["code"], code, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        !msg.contains("RAW-PROVIDER-TEXT"),
        "raw provider text: {msg}"
    );
    for s in secrets {
        assert!(!msg.contains(s), "secret in message: {msg}");
    }
}

/// Assert that no secret appears in any log line or database column.
async fn assert_not_leaked(app: &TestApp, secrets: &[&str]) {
    let dump = app.db_dump().await;
    let logs = crate::common::captured_logs();
    assert!(logs.contains("aurora::http"), "request logs are captured");
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!dump.contains(s), "a secret reached the database");
        assert!(!logs.contains(s), "a secret reached the logs");
    }
}

async fn nothing_stored(app: &TestApp, u: &str) {
    let (_, list) = get(app, u, "/api/connections").await;
    assert_eq!(list, json!([]));
    let folder = SecretPath::user_provider_folder(
        &connector_core::UserId::parse(u).unwrap(),
        &connector_core::ProviderId::from_static("azure"),
    );
    assert!(app
        .platform
        .secrets()
        .list(&folder)
        .await
        .unwrap()
        .is_empty());
}

// ---- tests ----

async fn azure_login_list_credentials_disconnect(b: Backend) {
    let fake = FakeAzure::start().await;
    let subs = [
        subscription("Production", "Enabled"),
        subscription("Sandbox", "Enabled"),
    ];
    let main = fake.principal(None, &subs);
    let ro = fake.principal(Some(&main.tenant), &subs[..1]);
    let app = spawn(b, &fake, &[]).await;
    let u = user();
    let sub_id = subs[0]["subscriptionId"].as_str().unwrap().to_owned();

    // The provider is listed without any change to the gateway.
    let (_, providers) = get(&app, &u, "/api/providers").await;
    let az = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "azure")
        .expect("azure listed");
    assert_eq!(az["authKind"], "service_principal");
    assert!(az["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("read_only_mode")));

    let mut body = login_body(&main);
    body["userId"] = json!(u);
    body["subscriptionId"] = json!(sub_id.to_uppercase());
    body["readOnlyCredentials"] = json!({"clientId": ro.client_id, "clientSecret": ro.secret});
    let r = login(&app, &u, &body).await;
    assert_eq!(r["status"], "success");
    assert_eq!(r["tenantId"], main.tenant);
    assert_eq!(r["subscriptionId"], sub_id);
    assert_eq!(r["subscriptionName"], "Production");
    assert!(r["message"].as_str().unwrap().contains("Production"));
    let id = r["connectionId"].as_str().unwrap().to_owned();

    // Listed, with the §7 fields; the account id is the subscription id.
    let (status, list) = get(&app, &u, "/api/connections?provider=azure").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["id"], id);
    assert_eq!(c["provider"], "azure");
    assert_eq!(c["accountId"], sub_id);
    assert_eq!(c["displayName"], "Production");
    assert_eq!(c["status"], "active");
    assert_eq!(c["readOnly"], true);
    for field in [
        "statusReason",
        "createdAt",
        "updatedAt",
        "lastValidatedAt",
        "expiresAt",
    ] {
        assert!(c.get(field).is_some(), "missing {field}");
    }

    // Both client secrets are in the secret store, at the connection's path.
    let path = SecretPath::from_stored(&format!("users/{u}/azure/{id}")).unwrap();
    let stored: Value = app
        .platform
        .secrets()
        .get(&path)
        .await
        .unwrap()
        .expect("secret stored")
        .decode()
        .unwrap();
    assert_eq!(stored["clientSecret"], main.secret);
    assert_eq!(stored["readOnly"]["clientSecret"], ro.secret);

    // Credentials on use: a management token of the main principal in full mode (twice: the
    // second from the cache), of the read-only principal in read_only mode.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let resp = app.credentials(&u, &id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let creds: Value = resp.json().await.unwrap();
        assert_eq!(creds["connectionId"], id);
        assert_eq!(creds["provider"], "azure");
        assert_eq!(creds["accountId"], sub_id);
        assert_eq!(creds["mode"], "full");
        let c = &creds["credentials"];
        assert_eq!(c["tokenType"], "Bearer");
        assert_eq!(c["tenantId"], main.tenant);
        assert_eq!(c["subscriptionId"], sub_id);
        assert_eq!(c["expiresAt"], creds["expiresAt"]);
        let token = c["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(token.split('.').count(), 3, "a JWT from oauth2-mock-server");
        assert_eq!(
            fake.holder(&token).as_deref(),
            Some(main.client_id.as_str())
        );
        tokens.push(token);
    }
    assert_eq!(tokens[0], tokens[1], "the second came from the cache");
    let creds: Value = app
        .credentials(&u, &id, "read_only")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ro_token = creds["credentials"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fake.holder(&ro_token).as_deref(),
        Some(ro.client_id.as_str())
    );
    assert_eq!(creds["mode"], "read_only");

    // Live validation (both principals, the subscription).
    let (status, v) = post(
        &app,
        &u,
        &format!("/api/connections/{id}/validate"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "active");

    let secrets = [
        main.secret.as_str(),
        ro.secret.as_str(),
        tokens[0].as_str(),
        ro_token.as_str(),
    ];
    // The dump really holds the row (the client id is not secret), so the search can fail.
    assert!(app.db_dump().await.contains(&main.client_id));
    assert_not_leaked(&app, &secrets).await;

    // Disconnect through the provider route: secret, cache and row are gone.
    let (status, d) = post(&app, &u, "/azure/disconnect", &json!({"userId": u})).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "success");
    assert_eq!(d["disconnected"], 1);
    assert!(app.platform.secrets().get(&path).await.unwrap().is_none());
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    for mode in [
        connector_core::CredentialMode::Full,
        connector_core::CredentialMode::ReadOnly,
    ] {
        let key = connector_core::broker::cache_key(id.parse().unwrap(), mode);
        assert!(
            app.platform.cache().get(&key).await.unwrap().is_none(),
            "cache evicted"
        );
    }
    nothing_stored(&app, &u).await;
    let (_, d) = post(&app, &u, "/azure/disconnect", &json!({})).await;
    assert_eq!(d["disconnected"], 0);
    assert_not_leaked(&app, &secrets).await;
}

async fn azure_refusals_in_plain_words(b: Backend) {
    let fake = FakeAzure::start().await;
    let subs = [subscription("Production", "Enabled")];
    let p = fake.principal(None, &subs);
    let app = spawn(b, &fake, &[]).await;
    let u = user();

    // A wrong secret (AADSTS7000215).
    let mut body = login_body(&p);
    body["clientSecret"] = json!("Q8~wrong-hunter2");
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(
        status,
        &e,
        422,
        "credentials_rejected",
        &["hunter2", &p.secret],
    );
    assert!(
        e["message"].as_str().unwrap().contains("AADSTS7000215"),
        "{e}"
    );

    // An unknown tenant (AADSTS90002).
    let mut body = login_body(&p);
    let other_tenant = uuid();
    body["tenantId"] = json!(other_tenant);
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(status, &e, 422, "credentials_rejected", &[&p.secret]);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("does not know tenant") && msg.contains(&other_tenant),
        "{msg}"
    );

    // An unknown application (AADSTS700016).
    let mut body = login_body(&p);
    body["clientId"] = json!(uuid());
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(status, &e, 422, "credentials_rejected", &[&p.secret]);
    assert!(
        e["message"].as_str().unwrap().contains("no application"),
        "{e}"
    );

    // An expired secret (AADSTS7000222).
    let expired = fake.principal(Some(&p.tenant), &subs);
    fake.expire(&expired);
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&expired)).await;
    assert_error(status, &e, 422, "credentials_rejected", &[&expired.secret]);
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");

    // The read-only principal's secret is wrong: its field is named.
    let ro = fake.principal(Some(&p.tenant), &subs);
    let mut body = login_body(&p);
    body["read_only_credentials"] =
        json!({"client_id": ro.client_id, "client_secret": "Q8~nope-hunter3"});
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(
        status,
        &e,
        422,
        "credentials_rejected",
        &["hunter3", &p.secret],
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("readOnlyCredentials"),
        "{e}"
    );

    // Format checks: GUIDs, and a secret that is present.
    for (field, value) in [
        ("tenantId", json!("contoso.onmicrosoft.com")),
        ("clientId", json!("my-app")),
        ("subscriptionId", json!("sub-1")),
        ("clientSecret", json!("")),
    ] {
        let mut body = login_body(&p);
        body[field] = value;
        let (status, e) = post(&app, &u, "/azure/login", &body).await;
        assert_error(status, &e, 400, "invalid_request", &[&p.secret]);
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }

    // Owner binding.
    let mut body = login_body(&p);
    body["userId"] = json!("someone-else");
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(status, &e, 403, "user_mismatch", &[]);

    nothing_stored(&app, &u).await;
    assert_not_leaked(
        &app,
        &[&p.secret, &expired.secret, &ro.secret, "Q8~wrong-hunter2"],
    )
    .await;
}

async fn azure_subscription_choice_and_pagination(b: Backend) {
    let fake = FakeAzure::start().await;
    fake.dir.lock().page_size = 2;
    // Five subscriptions over three pages; the first enabled one is on page 2.
    let subs = [
        subscription("Old", "Disabled"),
        subscription("Legacy", "Deleted"),
        subscription("Overdue", "PastDue"),
        subscription("Main", "Enabled"),
        subscription("Last", "Enabled"),
    ];
    let p = fake.principal(None, &subs);
    let app = spawn(b, &fake, &[]).await;
    let u = user();
    let id_of = |i: usize| subs[i]["subscriptionId"].as_str().unwrap().to_owned();

    let r = login(&app, &u, &login_body(&p)).await;
    assert_eq!(
        r["subscriptionId"],
        id_of(3),
        "the first enabled one, from page 2"
    );
    let first = r["connectionId"].clone();

    // A requested subscription on the last page.
    let mut body = login_body(&p);
    body["subscriptionId"] = json!(id_of(4));
    let r = login(&app, &u, &body).await;
    assert_eq!(r["subscriptionName"], "Last");
    assert_ne!(
        r["connectionId"], first,
        "another subscription adds a connection"
    );

    // By name, and a reconnect of the same subscription updates its connection.
    let mut body = login_body(&p);
    body["subscriptionName"] = json!("main");
    let r = login(&app, &u, &body).await;
    assert_eq!(r["subscriptionId"], id_of(3));
    assert_eq!(r["connectionId"], first);
    let (_, list) = get(&app, &u, "/api/connections?provider=azure").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // A requested subscription that is disabled, or that the principal cannot see: 400.
    for (sub, needle) in [
        (id_of(0), "Disabled"),
        (id_of(2), "PastDue"),
        (uuid(), "does not exist"),
    ] {
        let mut body = login_body(&p);
        body["subscriptionId"] = json!(sub);
        let (status, e) = post(&app, &u, "/azure/login", &body).await;
        assert_error(status, &e, 400, "invalid_request", &[&p.secret]);
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }

    // No enabled subscription at all, and none visible: 400.
    let none_enabled = fake.principal(None, &subs[..3]);
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&none_enabled)).await;
    assert_error(status, &e, 400, "invalid_request", &[]);
    assert!(
        e["message"].as_str().unwrap().contains("none of the 3"),
        "{e}"
    );
    let none_visible = fake.principal(None, &[]);
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&none_visible)).await;
    assert_error(status, &e, 400, "invalid_request", &[]);

    // The read-only principal must have a role on the chosen subscription.
    let ro = fake.principal(Some(&p.tenant), &subs[4..]);
    let mut body = login_body(&p);
    body["readOnlyCredentials"] = json!({"clientId": ro.client_id, "clientSecret": ro.secret});
    let (status, e) = post(&app, &u, "/azure/login", &body).await;
    assert_error(status, &e, 400, "invalid_request", &[&ro.secret]);
    assert!(e["message"].as_str().unwrap().contains("Reader"), "{e}");

    // Disconnect one subscription by id; the other stays.
    let (status, d) = post(
        &app,
        &u,
        "/azure/disconnect",
        &json!({"subscriptionId": id_of(4)}),
    )
    .await;
    assert_eq!((status, d["disconnected"].clone()), (200, json!(1)), "{d}");
    let (_, list) = get(&app, &u, "/api/connections?provider=azure").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["accountId"], id_of(3));
}

async fn azure_expired_secret_needs_reconnect(b: Backend) {
    let fake = FakeAzure::start().await;
    let subs = [subscription("Production", "Enabled")];
    let p = fake.principal(None, &subs);
    let app = spawn(b, &fake, &[]).await;
    let u = user();
    let id = login(&app, &u, &login_body(&p)).await["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // The secret expires at Azure: the next check marks the connection, and credentials stop.
    fake.expire(&p);
    let (status, v) = post(
        &app,
        &u,
        &format!("/api/connections/{id}/validate"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "needs_reconnect");
    let reason = v["statusReason"].as_str().unwrap();
    assert!(
        reason.contains("expired") && !reason.contains("RAW-PROVIDER-TEXT"),
        "{reason}"
    );
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "needs_reconnect"
    );

    // A new secret: logging in again heals the same connection.
    {
        let mut dir = fake.dir.lock();
        let app_entry = dir
            .apps
            .get_mut(&(p.tenant.clone(), p.client_id.clone()))
            .unwrap();
        app_entry.expired = false;
        app_entry.secret = format!("{}-new", p.secret);
    }
    let mut body = login_body(&p);
    body["clientSecret"] = json!(format!("{}-new", p.secret));
    let r = login(&app, &u, &body).await;
    assert_eq!(r["connectionId"], id);
    let (_, c) = get(&app, &u, &format!("/api/connections/{id}")).await;
    assert_eq!(c["status"], "active");
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

async fn azure_provider_faults(b: Backend) {
    let fake = FakeAzure::start().await;
    let subs = [subscription("Production", "Enabled")];
    let p = fake.principal(None, &subs);
    let app = spawn(b, &fake, &[("AURORA_AZURE_TIMEOUT_SECS", "1")]).await;
    let u = user();

    // Entra ID answers 5xx.
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503).set_body_string("RAW-PROVIDER-TEXT"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.entra)
        .await;
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&p)).await;
    assert_error(status, &e, 502, "provider_unavailable", &[&p.secret]);

    // Entra ID does not answer in time.
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.entra)
        .await;
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&p)).await;
    assert_error(status, &e, 502, "provider_unavailable", &[&p.secret]);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 seconds"),
        "{e}"
    );

    // Resource Manager answers 5xx, then throttles, then does not answer in time.
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500).set_body_string("RAW-PROVIDER-TEXT"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.arm)
        .await;
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&p)).await;
    assert_error(status, &e, 502, "provider_unavailable", &[&p.secret]);
    Mock::given(any())
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "17"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.arm)
        .await;
    let resp = app
        .post(&u, "/azure/login")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&login_body(&p))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "17");
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "rate_limited");
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.arm)
        .await;
    let (status, e) = post(&app, &u, "/azure/login", &login_body(&p)).await;
    assert_error(status, &e, 502, "provider_unavailable", &[]);
    nothing_stored(&app, &u).await;

    // A passing fault during a check degrades the connection; it does not ask for a reconnect.
    let id = login(&app, &u, &login_body(&p)).await["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.arm)
        .await;
    let (_, v) = post(
        &app,
        &u,
        &format!("/api/connections/{id}/validate"),
        &json!({}),
    )
    .await;
    assert_eq!(v["status"], "degraded", "{v}");
    // Credentials on use when Entra ID is down: 502, and the next call works again.
    Mock::given(method("POST"))
        .and(body_string_contains(p.client_id.as_str()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.entra)
        .await;
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_not_leaked(&app, &[&p.secret]).await;
}

async fn azure_users_are_isolated(b: Backend) {
    let fake = FakeAzure::start().await;
    let subs = [subscription("Production", "Enabled")];
    let p = fake.principal(None, &subs);
    let app = spawn(b, &fake, &[]).await;
    let (alice, bob) = (user(), user());
    let id = login(&app, &alice, &login_body(&p)).await["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = uuid();
    for target in [&id, &missing] {
        for (verb, path) in [
            ("GET", format!("/api/connections/{target}")),
            ("DELETE", format!("/api/connections/{target}")),
            ("POST", format!("/api/connections/{target}/validate")),
            ("GET", format!("/api/connections/{target}/credentials")),
        ] {
            let req = match verb {
                "GET" => app.get(&bob, &path),
                "DELETE" => app.delete(&bob, &path),
                _ => app.post(&bob, &path),
            };
            let resp = req
                .header("X-Internal-Secret", INTERNAL_SECRET)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "{verb} {path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["message"], "no such connection");
        }
        let (status, e) = post(
            &app,
            &bob,
            "/azure/disconnect",
            &json!({"connectionId": target}),
        )
        .await;
        assert_error(status, &e, 404, "not_found", &[]);
    }
    let (status, e) = post(
        &app,
        &bob,
        "/azure/disconnect",
        &json!({"subscriptionId": subs[0]["subscriptionId"]}),
    )
    .await;
    assert_error(status, &e, 404, "not_found", &[]);
    let (_, d) = post(&app, &bob, "/azure/disconnect", &json!({})).await;
    assert_eq!(d["disconnected"], 0);
    let (_, list) = get(&app, &bob, "/api/connections").await;
    assert_eq!(list, json!([]));
    // Bob connecting the same subscription gets a connection of his own.
    let bobs = login(&app, &bob, &login_body(&p)).await["connectionId"].clone();
    assert_ne!(bobs, json!(id));
    let (status, _) = get(&app, &alice, &format!("/api/connections/{id}")).await;
    assert_eq!(status, 200);
    let (_, d) = post(&app, &bob, "/azure/disconnect", &json!({})).await;
    assert_eq!(d["disconnected"], 1);
    let (status, _) = get(&app, &alice, &format!("/api/connections/{id}")).await;
    assert_eq!(status, 200, "Alice's connection survives Bob's disconnect");
}

both_backends!(
    azure_login_list_credentials_disconnect,
    azure_refusals_in_plain_words,
    azure_subscription_choice_and_pagination,
    azure_expired_secret_needs_reconnect,
    azure_provider_faults,
    azure_users_are_isolated,
);

/// The OpenAPI document carries the Azure routes.
#[tokio::test]
async fn openapi_lists_the_azure_routes() {
    let fake = FakeAzure::start().await;
    let app = spawn(Backend::Embedded, &fake, &[]).await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in ["/azure/login", "/azure/disconnect"] {
        assert!(doc["paths"][p]["post"].is_object(), "openapi lacks {p}");
    }
}
