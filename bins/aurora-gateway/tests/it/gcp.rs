//! The Google Cloud plugin through the gateway: the browser flow against a real oauth2-mock-server,
//! the Google Cloud APIs stubbed with wiremock (through `AURORA_GCP_API_URL`), the durable setup
//! (restart, needs_selection, failure, isolation), credentials on use and force-disconnect; against
//! the embedded default and the real servers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aurora_testkit::Peer;
use std::sync::Arc;

use crate::common::{Backend, Options, TestApp, INTERNAL_SECRET};
use connector_core::store::{NewSetupTask, SetupOutcome, SetupState};
use connector_core::{
    Actor, ConnectSpec, ConnectionRecord, ConnectionStatus, Connector, ProviderId, SecretPath,
    SecretValue, UserId,
};
use reqwest::Url;
use serde_json::{json, Value};
use wiremock::matchers::{
    body_string_contains, header_exists, method, path, path_regex, query_param,
    query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "aurora-test-client.apps.example";
const CLIENT_SECRET: &str = "gcp-client-secret-Qw71";
const PUBLIC: &str = "https://aurora.example";
const FRONTEND: &str = "https://app.example";
const PERMISSIONS: &[&str] = &[
    "resourcemanager.projects.get",
    "compute.instances.list",
    "logging.logEntries.list",
    "monitoring.timeSeries.list",
];

// ---------------------------------------------------------------------------------------------
// Peers and stubs
// ---------------------------------------------------------------------------------------------

/// One oauth2-mock-server for the whole test binary (its watchdog stops it when the process ends).
async fn oauth_peer() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    if let Some(p) = PEER.get() {
        return p;
    }
    let peer = tokio::task::spawn_blocking(|| {
        aurora_testkit::oauth2_mock()
            .expect("oauth2-mock-server is required (cargo xtask services installs it)")
    })
    .await
    .unwrap();
    // Another test may have started one meanwhile: the extra one is stopped on drop.
    let _ = PEER.set(peer);
    PEER.get().unwrap()
}

/// The GCP settings of a gateway whose OAuth endpoints are at `oauth` and Google APIs at `api`.
fn gcp_settings(oauth: &str, api: &str) -> Vec<(String, String)> {
    [
        ("AURORA_GCP_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AURORA_GCP_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("AURORA_GCP_AUTH_URL", format!("{oauth}/authorize")),
        ("AURORA_GCP_TOKEN_URL", format!("{oauth}/token")),
        ("AURORA_GCP_REVOKE_URL", format!("{oauth}/revoke")),
        ("AURORA_GCP_USERINFO_URL", format!("{oauth}/userinfo")),
        ("AURORA_GCP_API_URL", api.to_owned()),
        ("AURORA_PUBLIC_URL", PUBLIC.to_owned()),
        ("AURORA_FRONTEND_URL", FRONTEND.to_owned()),
        ("AURORA_GCP_SETUP_POLL_MS", "50".to_owned()),
        ("AURORA_GCP_SETUP_RETRY_DELAY_MS", "50".to_owned()),
        ("AURORA_GCP_IAM_RETRY_DELAY_MS", "20".to_owned()),
        ("AURORA_GCP_OPERATION_POLL_MS", "20".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    base
}

fn options(settings: Vec<(String, String)>) -> Options {
    Options {
        internal_secret: Some(INTERNAL_SECRET.into()),
        settings,
        ..Options::default()
    }
}

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

#[derive(Clone)]
struct Proj {
    id: String,
    name: String,
    billing: bool,
}

fn projects(n: usize, billing: bool) -> Vec<Proj> {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    (1..=n)
        .map(|i| Proj {
            id: format!("proj-{tag}-{i}"),
            name: format!("Project {i}"),
            billing,
        })
        .collect()
}

/// Resource Manager `projects:search` in pages of `page_size` (plus one project being deleted on the
/// first page, which the setup must skip).
async fn mount_search(server: &MockServer, list: &[Proj], page_size: usize) {
    let chunks: Vec<&[Proj]> = list.chunks(page_size.max(1)).collect();
    let pages = chunks.len().max(1);
    for i in 0..pages {
        let chunk = chunks.get(i).copied().unwrap_or(&[]);
        let mut items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, p)| {
                json!({
                    "name": format!("projects/{}", 100_000 + i * 1000 + j),
                    "parent": "organizations/123456789",
                    "projectId": p.id,
                    "state": "ACTIVE",
                    "displayName": p.name,
                    "createTime": "2025-01-01T00:00:00Z",
                    "etag": "W/\"x\""
                })
            })
            .collect();
        if i == 0 {
            items.push(json!({"name": "projects/999", "projectId": "being-deleted", "state": "DELETE_REQUESTED", "displayName": "Old"}));
        }
        let mut body = json!({ "projects": items });
        if i + 1 < pages {
            body["nextPageToken"] = json!(format!("page-{}", i + 2));
        }
        let m = Mock::given(method("GET"))
            .and(path("/cloudresourcemanager/v3/projects:search"))
            .and(header_exists("authorization"));
        let m = if i == 0 {
            m.and(query_param_is_missing("pageToken"))
        } else {
            m.and(query_param("pageToken", format!("page-{}", i + 1)))
        };
        m.respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(server)
            .await;
    }
}

async fn mount_billing(server: &MockServer, p: &Proj, delay: Option<Duration>) {
    let mut resp = ResponseTemplate::new(200).set_body_json(json!({
        "name": format!("projects/{}/billingInfo", p.id),
        "projectId": p.id,
        "billingAccountName": if p.billing { "billingAccounts/012345-ABCDEF-678901" } else { "" },
        "billingEnabled": p.billing
    }));
    if let Some(d) = delay {
        resp = resp.set_delay(d);
    }
    Mock::given(method("GET"))
        .and(path(format!(
            "/cloudbilling/v1/projects/{}/billingInfo",
            p.id
        )))
        .and(header_exists("authorization"))
        .respond_with(resp)
        .mount(server)
        .await;
}

/// Service Usage (a pending operation, done at the first poll) and testIamPermissions (everything
/// granted).
async fn mount_enable_and_iam(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/serviceusage/v1/projects/[^/]+/services:batchEnable$",
        ))
        .and(body_string_contains("compute.googleapis.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "operations/acat.p2-123-abc", "metadata": {}, "done": false}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/serviceusage/v1/operations/acat.p2-123-abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "operations/acat.p2-123-abc", "done": true,
            "response": {"@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"}
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/cloudresourcemanager/v3/projects/[^/]+:testIamPermissions$",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "permissions": PERMISSIONS })),
        )
        .mount(server)
        .await;
}

/// Every Google API of a setup over `list`.
async fn mount_google(server: &MockServer, list: &[Proj], page_size: usize) {
    mount_search(server, list, page_size).await;
    for p in list {
        mount_billing(server, p, None).await;
    }
    mount_enable_and_iam(server).await;
}

/// Requests the stub received with this method whose path satisfies `pred`.
async fn received(
    server: &MockServer,
    m: &str,
    pred: impl Fn(&str) -> bool,
) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == m && pred(r.url.path()))
        .collect()
}

/// The form fields of a request body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    Url::parse(&format!("http://x/?{text}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

/// Google's OAuth endpoints as a wiremock stub (to see exactly what the gateway sends).
async fn mount_oauth_stub(server: &MockServer, access: &str, refresh: &str, refreshed: &str) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access, "expires_in": 3599, "refresh_token": refresh,
            "scope": "https://www.googleapis.com/auth/cloud-platform openid https://www.googleapis.com/auth/userinfo.email",
            "token_type": "Bearer"
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": refreshed, "expires_in": 3599, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/cloud-platform openid"
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/userinfo"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sub": "110248495921238986420", "email": "ada@example.com", "email_verified": true
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Flow helpers
// ---------------------------------------------------------------------------------------------

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Login {
    url: Url,
    state: String,
    /// `name=value` of the browser-binding cookie the login answer set (none with the setting off).
    cookie: Option<String>,
    /// The whole `Set-Cookie` value, attributes included.
    set_cookie: Option<String>,
}

async fn login(app: &TestApp, u: &str) -> Login {
    let resp = app
        .post(u, "/gcp/login")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&json!({"userId": u}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("aurora_gcp_state_"));
    let cookie = set_cookie
        .as_deref()
        .map(|c| c.split(';').next().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert!(body["expiresAt"].is_string());
    let raw = body["login_url"].as_str().unwrap();
    let url = Url::parse(raw).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    Login {
        url,
        state,
        cookie,
        set_cookie,
    }
}

/// The browser at the consent screen: the authorization server redirects back with code and state.
/// Returns the callback's query string.
async fn authorize(l: &Login) -> String {
    let resp = browser().get(l.url.clone()).send().await.unwrap();
    assert_eq!(
        resp.status(),
        302,
        "the authorization server redirects back"
    );
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    let loc = Url::parse(&loc).unwrap();
    assert_eq!(
        format!("{}{}", loc.origin().ascii_serialization(), loc.path()),
        format!("{PUBLIC}/gcp/callback")
    );
    loc.query().unwrap().to_owned()
}

/// `GET /gcp/callback?{query}` as the browser that started login `l` (no X-User-ID, the login's
/// cookie); returns status and Location.
async fn callback(app: &TestApp, l: &Login, query: &str) -> (u16, String) {
    callback_with(app, l.cookie.as_deref(), query).await
}

/// `GET /gcp/callback?{query}` as a browser holding `cookie` (`name=value`), if any.
async fn callback_with(app: &TestApp, cookie: Option<&str>, query: &str) -> (u16, String) {
    let (status, loc, _) = callback_full(app, cookie, query).await;
    (status, loc)
}

/// As `callback_with`, plus the answer's `Set-Cookie` values, or its error body for a 4xx.
async fn callback_full(
    app: &TestApp,
    cookie: Option<&str>,
    query: &str,
) -> (u16, String, Vec<String>) {
    let mut req = browser().get(app.url(&format!("/gcp/callback?{query}")));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let loc = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut extra: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    if status >= 400 {
        extra.push(resp.text().await.unwrap());
    }
    (status, loc, extra)
}

/// The task id of a successful callback's redirect.
fn pending_task(loc: &str) -> String {
    let prefix = format!("{FRONTEND}/chat?login=gcp_setup_pending&task_id=");
    assert!(loc.starts_with(&prefix), "{loc}");
    loc[prefix.len()..].to_owned()
}

async fn status(app: &TestApp, u: &str, task: &str) -> (u16, Value) {
    let resp = app
        .get(u, &format!("/gcp/setup/status/{task}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Poll until `done` (or 30 s), checking every answer's shape and that step and progress never go
/// down. Returns the last answer and the highest progress seen.
async fn poll(app: &TestApp, u: &str, task: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll_from(app, u, task, 0, done).await
}

async fn poll_from(
    app: &TestApp,
    u: &str,
    task: &str,
    mut last_progress: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last_step = 0;
    let mut last = Value::Null;
    let finished = aurora_testkit::poll_until(Duration::from_secs(30), async || {
        let (code, s) = status(app, u, task).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["taskId"], task);
        assert_eq!(s["total_steps"], 7);
        let progress = s["progress"].as_i64().unwrap();
        let step = s["step"].as_i64().unwrap();
        assert!(
            (0..=100).contains(&progress) && (0..=7).contains(&step),
            "{s}"
        );
        assert!(
            progress >= last_progress,
            "progress went down: {last_progress} -> {s}"
        );
        assert!(step >= last_step, "step went down: {last_step} -> {s}");
        let state = s["state"].as_str().unwrap();
        assert!(
            ["PENDING", "STARTED", "PROGRESS", "SUCCESS", "FAILURE"].contains(&state),
            "{s}"
        );
        assert_eq!(
            s["complete"],
            json!(state == "SUCCESS" || state == "FAILURE")
        );
        assert!(s["status"].is_string());
        last_progress = progress;
        last_step = step;
        let finished = done(&s);
        last = s;
        finished
    })
    .await;
    assert!(finished.is_some(), "timed out; last status {last}");
    last
}

fn complete(s: &Value) -> bool {
    s["complete"] == json!(true)
}

async fn connections(app: &TestApp, u: &str) -> Vec<Value> {
    let v: Value = app
        .get(u, "/api/connections?provider=gcp")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array().unwrap().clone()
}

fn gcp_folder(u: &str) -> SecretPath {
    SecretPath::user_provider_folder(&UserId::parse(u).unwrap(), &ProviderId::from_static("gcp"))
}

async fn metadata(app: &TestApp, u: &str, id: &str) -> Value {
    app.platform
        .store()
        .get_connection(&UserId::parse(u).unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .expect("connection row")
        .metadata
}

/// No value of `needles` in any log line or database column.
async fn assert_not_leaked(app: &TestApp, needles: &[&str]) {
    let dump = app.db_dump().await;
    let logs = crate::common::captured_logs();
    assert!(logs.contains("aurora::http"), "request logs are captured");
    for n in needles {
        assert!(!n.is_empty());
        assert!(!dump.contains(n), "a secret reached the database");
        assert!(!logs.contains(n), "a secret reached the logs");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// login → /authorize → callback → token exchange with the verifier → setup to SUCCESS → credentials
/// (refresh) → validate → force-disconnect (revoke), against oauth2-mock-server.
async fn browser_flow_against_oauth2_mock_server(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    let mut list = projects(3, true);
    list[1].billing = false;
    mount_google(&api, &list, 2).await;
    // The first permission check sees IAM not yet propagated on the first project.
    Mock::given(method("POST"))
        .and(path(format!(
            "/cloudresourcemanager/v3/projects/{}:testIamPermissions",
            list[0].id
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let u = user();

    // The authorization URL (§2).
    let l = login(&app, &u).await;
    // The state is bound to this browser: a short-lived cookie for the callback only.
    let set_cookie = l
        .set_cookie
        .as_deref()
        .expect("the login answer sets the browser cookie");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/gcp/callback",
        "Max-Age=600",
    ] {
        assert!(
            set_cookie.split("; ").any(|a| a == attr),
            "{attr} missing: {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains(&l.state),
        "the cookie is not the state"
    );
    let raw = l.url.as_str();
    assert!(raw.starts_with(&format!("{}/authorize?", oauth.url)));
    assert!(
        raw.contains("redirect_uri=https%3A%2F%2Faurora.example%2Fgcp%2Fcallback"),
        "{raw}"
    );
    let q: Vec<(String, String)> = l
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(field(&q, "response_type"), Some("code"));
    assert_eq!(field(&q, "client_id"), Some(CLIENT_ID));
    assert_eq!(
        field(&q, "scope"),
        Some("https://www.googleapis.com/auth/cloud-platform openid email")
    );
    assert_eq!(field(&q, "access_type"), Some("offline"));
    assert_eq!(field(&q, "prompt"), Some("consent"));
    assert_eq!(field(&q, "code_challenge_method"), Some("S256"));
    assert_eq!(field(&q, "code_challenge").unwrap().len(), 43);
    assert!(l.state.len() >= 43);
    // Only the state's hash is stored.
    let dump = app.db_dump().await;
    assert!(dump.contains("oauth_states:"));
    assert!(!dump.contains(&l.state), "the raw state is not stored");

    // The browser goes to the consent screen and comes back with code and state.
    let query = authorize(&l).await;
    let back: Vec<(String, String)> = form(query.as_bytes());
    assert_eq!(field(&back, "state"), Some(l.state.as_str()));
    let code = field(&back, "code").unwrap().to_owned();

    // The callback needs no X-User-ID (open) and redirects to the frontend with the task.
    let started = Instant::now();
    let (st, loc) = callback(&app, &l, &query).await;
    assert_eq!(st, 302, "{loc}");
    let task = pending_task(&loc);
    let list_now = connections(&app, &u).await;
    assert_eq!(list_now.len(), 1);
    assert!(
        ["pending", "active"].contains(&list_now[0]["status"].as_str().unwrap()),
        "{list_now:?}"
    );

    let done = poll(&app, &u, &task, complete).await;
    let took = started.elapsed();
    eprintln!(
        "gcp setup: callback to SUCCESS in {} ms ({b:?})",
        took.as_millis()
    );
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["step"], 7);
    assert!(done.get("error").is_none(), "{done}");
    let result = &done["result"];
    assert_eq!(result["status"], "success");
    let got: Vec<&str> = result["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["projectId"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [list[0].id.as_str(), list[2].id.as_str()],
        "billing-enabled, active projects"
    );

    // Every page was read, the APIs enabled on the two chosen projects, IAM retried once.
    assert_eq!(
        received(&api, "GET", |p| p.ends_with("projects:search"))
            .await
            .len(),
        2
    );
    let enabled = received(&api, "POST", |p| p.ends_with("services:batchEnable")).await;
    assert_eq!(enabled.len(), 2);
    let body: Value = serde_json::from_slice(&enabled[0].body).unwrap();
    assert!(body["serviceIds"]
        .as_array()
        .unwrap()
        .contains(&json!("compute.googleapis.com")));
    assert_eq!(
        received(&api, "POST", |p| p
            .contains(&format!("{}:testIamPermissions", list[0].id)))
        .await
        .len(),
        2,
        "retried while IAM propagated"
    );
    assert!(
        received(&api, "POST", |p| p.contains("being-deleted"))
            .await
            .is_empty()
            && received(&api, "GET", |p| p.contains("being-deleted"))
                .await
                .is_empty()
    );

    // The connection is active, its account the subject (the mock has no e-mail), projects in
    // its metadata.
    let conns = connections(&app, &u).await;
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c["status"], "active");
    assert_eq!(c["provider"], "gcp");
    assert_eq!(c["accountId"], "johndoe");
    let id = c["id"].as_str().unwrap().to_owned();
    let meta = metadata(&app, &u, &id).await;
    assert_eq!(meta["projectIds"], json!([list[0].id, list[2].id]));
    assert_eq!(meta["defaultProjectId"], json!(list[0].id));
    assert_eq!(meta["setupTaskId"], json!(task));

    // The refresh token is in the secret store.
    let stored: Value = app
        .platform
        .secrets()
        .get(&gcp_folder(&u).child(&id).unwrap())
        .await
        .unwrap()
        .expect("secret stored")
        .decode()
        .unwrap();
    let refresh = stored["refreshToken"].as_str().unwrap().to_owned();
    assert!(!refresh.is_empty());

    // Credentials on use: a fresh access token from the refresh token, then from the cache.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let resp = app.credentials(&u, &id, "full").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["provider"], "gcp");
        assert_eq!(v["accountId"], "johndoe");
        let creds = &v["credentials"];
        assert_eq!(creds["tokenType"], "Bearer");
        assert!(creds["expiresAt"].is_string());
        let at = creds["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(at.split('.').count(), 3, "the mock issues JWTs");
        tokens.push(at);
    }
    assert_eq!(
        tokens[0], tokens[1],
        "the second call is served from the cache"
    );
    // The mock rotates refresh tokens on every refresh: the newest one was written back.
    let now_stored: Value = app
        .platform
        .secrets()
        .get(&gcp_folder(&u).child(&id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .decode()
        .unwrap();
    let rotated = now_stored["refreshToken"].as_str().unwrap().to_owned();

    // A live check.
    let resp = app
        .post(&u, &format!("/api/connections/{id}/validate"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "active");

    // A stale rotation never overwrites a newer secret: a check that read the secret before a
    // reconnect stored a newer one refreshes (the mock rotates the token) and leaves the newer one.
    let path = gcp_folder(&u).child(&id).unwrap();
    let before = app.platform.secrets().get(&path).await.unwrap().unwrap();
    let mut newer: Value = before.decode().unwrap();
    newer["refreshToken"] = json!("1//newer-from-a-reconnect");
    app.platform
        .secrets()
        .put(
            &path,
            &SecretValue::from_bytes(serde_json::to_vec(&newer).unwrap()),
        )
        .await
        .unwrap();
    let record = app
        .platform
        .store()
        .get_connection(&UserId::parse(&u).unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let connectors = aurora_gateway::registry::build_connectors(&app.platform).unwrap();
    let gcp = connectors.get(&ProviderId::parse("gcp").unwrap()).unwrap();
    gcp.validate(&record, &before)
        .await
        .expect("the stale check itself succeeds");
    let after: Value = app
        .platform
        .secrets()
        .get(&path)
        .await
        .unwrap()
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(after["refreshToken"], "1//newer-from-a-reconnect");
    // The rest of the flow with the token the gateway itself rotated.
    app.platform.secrets().put(&path, &before).await.unwrap();

    // Force-disconnect: revoked at the mock, secrets gone, connection gone.
    let resp = app
        .post(&u, "/api/gcp/force-disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["status"], "success");
    assert_eq!(d["disconnected"], 1);
    assert!(connections(&app, &u).await.is_empty());
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&u))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        app.credentials(&u, &id, "full")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for op in [
        "exchange_code",
        "refresh_token",
        "userinfo",
        "revoke",
        "search_projects",
        "batch_enable",
    ] {
        assert!(
            metrics.contains(&format!(
                "aurora_provider_call_duration_seconds_count{{operation=\"{op}\",outcome=\"ok\",provider=\"gcp\"}}"
            )),
            "{op} not recorded as ok:\n{metrics}"
        );
    }

    // No token, code or state in the logs or the database.
    assert_not_leaked(
        &app,
        &[
            &code,
            &l.state,
            &refresh,
            &rotated,
            &tokens[0],
            CLIENT_SECRET,
        ],
    )
    .await;
}

/// The exact token-endpoint contract (wiremock): the code exchange carries the verifier, the client
/// and the redirect URI; credentials on use refresh; `invalid_grant` → needs_reconnect; the
/// force-disconnect revokes the refresh token.
async fn token_contract_and_invalid_grant(b: Backend) {
    let oauth = MockServer::start().await;
    mount_oauth_stub(
        &oauth,
        "ya29.first-access-Zx",
        "1//refresh-one-Kp",
        "ya29.refreshed-Mv",
    )
    .await;
    let api = MockServer::start().await;
    let list = projects(1, true);
    mount_google(&api, &list, 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.uri(), &api.uri()))).await;
    let u = user();
    let l = login(&app, &u).await;
    let (st, loc) = callback(
        &app,
        &l,
        &format!("code=4%2F0Ab-test-code&state={}&scope=email", l.state),
    )
    .await;
    assert_eq!(st, 302);
    let task = pending_task(&loc);
    let done = poll(&app, &u, &task, complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");

    let exchanges = received(&oauth, "POST", |p| p == "/token").await;
    let exchange = exchanges
        .iter()
        .map(|r| form(&r.body))
        .find(|f| field(f, "grant_type") == Some("authorization_code"))
        .expect("a code exchange");
    assert_eq!(field(&exchange, "code"), Some("4/0Ab-test-code"));
    assert_eq!(
        field(&exchange, "redirect_uri"),
        Some(&*format!("{PUBLIC}/gcp/callback"))
    );
    assert_eq!(field(&exchange, "client_id"), Some(CLIENT_ID));
    assert_eq!(field(&exchange, "client_secret"), Some(CLIENT_SECRET));
    let verifier = field(&exchange, "code_verifier").expect("the PKCE verifier is sent");
    assert_eq!(verifier.len(), 43);
    let challenge = l
        .url
        .query_pairs()
        .find(|(k, _)| k == "code_challenge")
        .unwrap()
        .1
        .into_owned();
    assert_ne!(verifier, challenge, "the verifier is not the challenge");
    let verifier = verifier.to_owned();

    let conns = connections(&app, &u).await;
    assert_eq!(
        conns[0]["accountId"], "ada@example.com",
        "the e-mail from userinfo"
    );
    let id = conns[0]["id"].as_str().unwrap().to_owned();
    let resp = app.credentials(&u, &id, "read_only").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["credentials"]["accessToken"], "ya29.refreshed-Mv");
    assert_eq!(v["mode"], "read_only");
    let refreshes: Vec<_> = received(&oauth, "POST", |p| p == "/token")
        .await
        .iter()
        .map(|r| form(&r.body))
        .filter(|f| field(f, "grant_type") == Some("refresh_token"))
        .collect();
    assert!(!refreshes.is_empty());
    assert!(refreshes
        .iter()
        .all(|f| field(f, "refresh_token") == Some("1//refresh-one-Kp")
            && field(f, "client_id") == Some(CLIENT_ID)));

    // Google now refuses the grant.
    oauth.reset().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
        .mount(&oauth)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&oauth)
        .await;
    app.platform.broker().evict(id.parse().unwrap()).await;
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "credentials_rejected");
    assert!(
        !e["message"]
            .as_str()
            .unwrap()
            .contains("expired or revoked."),
        "no raw body"
    );
    let c: Value = app
        .get(&u, &format!("/api/connections/{id}"))
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "needs_reconnect", "{c}");
    let resp = app.credentials(&u, &id, "full").send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "needs_reconnect"
    );

    // Force-disconnect revokes the refresh token at the revoke endpoint.
    let resp = app
        .post(&u, "/api/gcp/force-disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&json!({"userId": u}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revokes = received(&oauth, "POST", |p| p == "/revoke").await;
    assert_eq!(revokes.len(), 1);
    assert_eq!(
        field(&form(&revokes[0].body), "token"),
        Some("1//refresh-one-Kp")
    );
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&u))
        .await
        .unwrap()
        .is_empty());

    assert_not_leaked(
        &app,
        &[
            "ya29.first-access-Zx",
            "ya29.refreshed-Mv",
            "1//refresh-one-Kp",
            "4/0Ab-test-code",
            &verifier,
            &l.state,
            CLIENT_SECRET,
        ],
    )
    .await;
}

/// Forged, expired and replayed states answer 400 and store nothing; a missing code is 400 and does
/// not use the state up.
async fn state_forged_expired_replayed(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    mount_google(&api, &projects(1, true), 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let u = user();
    let expect_400 = |(st, loc): (u16, String), what: &str| {
        assert_eq!(st, 400, "{what}: {loc}");
    };

    // Forged.
    let (st, _) = callback_with(
        &app,
        None,
        "code=abc&state=AAAAforgedAAAAforgedAAAAforgedAAAAforgedAAA",
    )
    .await;
    assert_eq!(st, 400);
    let resp = browser()
        .get(app.url("/gcp/callback?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_state");
    let resp = browser()
        .post(app.url("/gcp/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("code=abc&state=forged-by-form")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_state");
    let resp = browser()
        .get(app.url("/gcp/callback?code=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_state");

    // A missing code: 400 invalid_request, and the state is still usable.
    let l = login(&app, &u).await;
    let resp = browser()
        .get(app.url(&format!("/gcp/callback?state={}", l.state)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "invalid_request"
    );

    // Replayed: the first callback succeeds, the same one again is refused.
    let query = authorize(&l).await;
    let (st, loc) = callback(&app, &l, &query).await;
    assert_eq!(st, 302, "{loc}");
    let task = pending_task(&loc);
    expect_400(callback(&app, &l, &query).await, "replayed");
    // Also as a form post.
    let resp = browser()
        .post(app.url("/gcp/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    poll(&app, &u, &task, complete).await;
    assert_eq!(
        connections(&app, &u).await.len(),
        1,
        "the replay stored nothing"
    );

    // Expired: a state whose validity ended (moved 20 minutes back in the store) is refused.
    let v = user();
    let l = login(&app, &v).await;
    let dump = app.db_dump().await;
    let line = dump
        .lines()
        .find(|line| line.starts_with("oauth_states:") && line.contains(&format!("user_id={v} |")))
        .expect("the login's state row");
    let hash = line
        .split(" | ")
        .next()
        .unwrap()
        .trim_start_matches("oauth_states: state_hash=")
        .to_owned();
    let now = chrono::Utc::now();
    let mut rec = app
        .platform
        .store()
        .take_oauth_state(&hash, now)
        .await
        .unwrap()
        .expect("the stored state");
    rec.created_at = now - chrono::Duration::minutes(20);
    rec.expires_at = now - chrono::Duration::minutes(10);
    app.platform.store().put_oauth_state(rec).await.unwrap();
    let query = authorize(&l).await;
    expect_400(callback(&app, &l, &query).await, "expired");
    assert!(
        app.platform
            .store()
            .take_oauth_state(&hash, now)
            .await
            .unwrap()
            .is_none(),
        "the expired state was removed"
    );
    // Nothing was stored for this user.
    assert!(connections(&app, &v).await.is_empty());
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&v))
        .await
        .unwrap()
        .is_empty());
}

/// A refused code exchange (here: the mock refuses a verifier that does not match the challenge) and
/// a declined consent both send the browser to `gcp_failed`, storing nothing.
async fn refused_exchange_and_declined_consent(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let u = user();
    let a = login(&app, &u).await;
    let b_login = login(&app, &u).await;
    // The code was issued for login A's challenge; the callback names login B's state, so the
    // gateway sends B's verifier and the mock refuses the exchange.
    let query_a = authorize(&a).await;
    let code_a = form(query_a.as_bytes())
        .into_iter()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1;
    let (st, loc) = callback(
        &app,
        &b_login,
        &format!("code={code_a}&state={}", b_login.state),
    )
    .await;
    assert_eq!(st, 302);
    assert_eq!(loc, format!("{FRONTEND}/chat?login=gcp_failed"));
    assert!(connections(&app, &u).await.is_empty());

    // The user declines at the consent screen.
    let c = login(&app, &u).await;
    let (st, loc) = callback(&app, &c, &format!("error=access_denied&state={}", c.state)).await;
    assert_eq!(st, 302);
    assert_eq!(loc, format!("{FRONTEND}/chat?login=gcp_failed"));
    // Its state is used up.
    let (st, _) = callback(&app, &c, &format!("code=x&state={}", c.state)).await;
    assert_eq!(st, 400);
    assert!(connections(&app, &u).await.is_empty());
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&u))
        .await
        .unwrap()
        .is_empty());
}

/// Login CSRF (RFC 9700 §4.7): user A obtains a login link and someone else's browser completes the
/// consent. That browser lacks A's cookie (or holds another login's): the callback is refused, stores
/// nothing and leaves A's state usable; A's own browser then completes it, and the cookie is cleared.
async fn state_cookie_binds_the_login_to_its_browser(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    mount_google(&api, &projects(1, true), 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let a = user();
    let la = login(&app, &a).await;
    let cookie_a = la
        .cookie
        .clone()
        .expect("the login sets the browser cookie");
    let (name_a, value_a) = cookie_a.split_once('=').unwrap();
    // Another browser (another user's login) has its own cookie.
    let v = user();
    let lv = login(&app, &v).await;
    let cookie_v = lv.cookie.clone().unwrap();
    let (name_v, value_v) = cookie_v.split_once('=').unwrap();
    assert_ne!(name_a, name_v, "one cookie name per login");
    assert_ne!(value_a, value_v);

    // The victim's browser completes the consent on A's link.
    let query = authorize(&la).await;
    let refused = |(st, _, extra): (u16, String, Vec<String>), needle: &str, what: &str| {
        assert_eq!(st, 400, "{what}: {extra:?}");
        let body: Value = serde_json::from_str(extra.last().unwrap()).unwrap();
        assert_eq!(body["code"], "invalid_state", "{what}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(
            !extra.iter().any(|c| c.starts_with("aurora_gcp_state_")),
            "{what}: a refusal does not touch the cookie"
        );
    };
    // No cookie at all.
    refused(
        callback_full(&app, None, &query).await,
        "did not bring the sign-in cookie",
        "no cookie",
    );
    // Only the cookie of its own login (another name).
    refused(
        callback_full(&app, Some(&cookie_v), &query).await,
        "did not bring the sign-in cookie",
        "another login's cookie",
    );
    // A cookie of A's name holding another browser's value, among unrelated cookies.
    let forged = format!("theme=dark; {name_a}={value_v}; other=1");
    refused(
        callback_full(&app, Some(&forged), &query).await,
        "started in another browser",
        "another browser's value",
    );
    // A declined consent without the cookie cannot use A's state up either.
    refused(
        callback_full(
            &app,
            None,
            &format!("error=access_denied&state={}", la.state),
        )
        .await,
        "did not bring the sign-in cookie",
        "declined without the cookie",
    );
    assert!(
        connections(&app, &a).await.is_empty(),
        "nothing was connected"
    );
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&a))
        .await
        .unwrap()
        .is_empty());

    // A's own browser (its cookie among others) completes the same consent: the state was kept.
    let (st, loc, cookies) = callback_full(
        &app,
        Some(&format!("theme=dark; {cookie_v}; {cookie_a}")),
        &query,
    )
    .await;
    assert_eq!(st, 302, "{loc} {cookies:?}");
    let task = pending_task(&loc);
    let cleared = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name_a}=;")))
        .expect("the used cookie is cleared");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/gcp/callback"));
    let done = poll(&app, &a, &task, complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(connections(&app, &a).await.len(), 1);
    // The cookie is single use with its state.
    let (st, _) = callback(&app, &la, &query).await;
    assert_eq!(st, 400);
    assert_not_leaked(&app, &[value_a, value_v, &la.state]).await;
}

/// `AURORA_GCP_STATE_COOKIE=off` (a proxy that drops the cookie): no cookie is set, none is
/// required, and the gateway warns about it at start.
async fn state_cookie_off_accepts_a_callback_without_it(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    mount_google(&api, &projects(1, true), 10).await;
    let app = TestApp::spawn_with(
        b,
        options(with(
            gcp_settings(&oauth.url, &api.uri()),
            &[("AURORA_GCP_STATE_COOKIE", "off")],
        )),
    )
    .await;
    assert!(
        crate::common::captured_logs().contains("AURORA_GCP_STATE_COOKIE=off"),
        "the gateway warns at start"
    );
    let u = user();
    let l = login(&app, &u).await;
    assert!(l.set_cookie.is_none(), "no cookie with the setting off");
    let (st, loc, cookies) = callback_full(&app, None, &authorize(&l).await).await;
    assert_eq!(st, 302, "{loc}");
    assert!(cookies.is_empty(), "{cookies:?}");
    let done = poll(&app, &u, &pending_task(&loc), complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
}

/// The gateway is stopped in the middle of step 3; a second gateway on the same database and secret
/// store takes the lapsed lease over and finishes from the checkpoint. Progress never goes down.
async fn setup_killed_half_way_finishes_after_restart(b: Backend) {
    let oauth = oauth_peer().await;
    let list = projects(4, true);
    // The first gateway's Google: billing of the third project never answers in time.
    let api1 = MockServer::start().await;
    mount_search(&api1, &list, 10).await;
    for (i, p) in list.iter().enumerate() {
        let delay = (i == 2).then(|| Duration::from_secs(120));
        mount_billing(&api1, p, delay).await;
    }
    mount_enable_and_iam(&api1).await;
    let lease = [("AURORA_GCP_SETUP_LEASE_SECS", "2")];
    let first = TestApp::spawn_with(
        b,
        options(with(gcp_settings(&oauth.url, &api1.uri()), &lease)),
    )
    .await;
    let u = user();
    let l = login(&first, &u).await;
    let (st, loc) = callback(&first, &l, &authorize(&l).await).await;
    assert_eq!(st, 302);
    let task = pending_task(&loc);
    let mid = poll(&first, &u, &task, |s| {
        s["step"] == 3 && s["status"].as_str().unwrap().contains("(2 of 4)")
    })
    .await;
    let seen = mid["progress"].as_i64().unwrap();
    assert!(seen > 0);
    // "Kill" the first gateway: it answers no more, and its worker is stuck in a call that will
    // not return before the lease lapses.
    first.stop().await;
    // A fresh client: a pooled keep-alive connection could outlive the listener for a moment.
    assert!(reqwest::Client::new()
        .get(first.url("/healthz"))
        .send()
        .await
        .is_err());

    let api2 = MockServer::start().await;
    mount_google(&api2, &list, 10).await;
    let settings = with(
        first
            .backend_settings()
            .into_iter()
            .chain(gcp_settings(&oauth.url, &api2.uri()))
            .collect(),
        &lease,
    );
    let second = TestApp::spawn_with(b, options(settings)).await;
    // The task is still visible, and no lower than before.
    let (code, again) = status(&second, &u, &task).await;
    assert_eq!(code, 200);
    assert!(again["progress"].as_i64().unwrap() >= seen, "{again}");
    let done = poll_from(&second, &u, &task, seen, complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["result"]["projects"].as_array().unwrap().len(), 4);
    // Resumed, not restarted: the project list and the billing already read were not asked again.
    assert!(received(&api2, "GET", |p| p.ends_with("projects:search"))
        .await
        .is_empty());
    let billing2: Vec<String> = received(&api2, "GET", |p| p.ends_with("billingInfo"))
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(
        billing2
            .iter()
            .all(|p| !p.contains(&format!("/{}/", list[0].id))
                && !p.contains(&format!("/{}/", list[1].id))),
        "{billing2:?}"
    );
    assert_eq!(billing2.len(), 2, "{billing2:?}");
    let conns = connections(&second, &u).await;
    assert_eq!(conns[0]["status"], "active");
    let audit = second.db_dump().await;
    assert!(audit.contains("setup_completed"));
    drop(second);
    drop(first);
}

/// More eligible projects than AURORA_GCP_MAX_AUTO_PROJECTS: the task ends with needs_selection, and
/// post-auth-retry continues with the user's choice.
async fn needs_selection_then_post_auth_retry(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    let list = projects(7, true);
    mount_google(&api, &list, 3).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let u = user();
    let l = login(&app, &u).await;
    let (_, loc) = callback(&app, &l, &authorize(&l).await).await;
    let task = pending_task(&loc);
    let s = poll(&app, &u, &task, complete).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(s["step"], 4);
    let r = &s["result"];
    assert_eq!(r["status"], "needs_selection");
    let eligible = r["eligibleProjects"].as_array().unwrap();
    assert_eq!(eligible.len(), 7);
    assert_eq!(
        eligible[0],
        json!({"projectId": list[0].id, "name": "Project 1"})
    );
    assert_eq!(connections(&app, &u).await[0]["status"], "pending");
    assert!(
        received(&api, "POST", |p| p.ends_with("services:batchEnable"))
            .await
            .is_empty()
    );
    let progress_before = s["progress"].as_i64().unwrap();

    let retry = |who: &str, body: Value| {
        app.post(who, "/gcp/post-auth-retry")
            .header("X-Internal-Secret", INTERNAL_SECRET)
            .json(&body)
            .send()
    };
    for bad in [
        json!({"taskId": task, "selectedProjectIds": []}),
        json!({"taskId": task}),
        json!({"taskId": task, "selectedProjectIds": [list[0].id, "not-mine"]}),
    ] {
        let resp = retry(&u, bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["code"],
            "invalid_request"
        );
    }
    let resp = retry(
        &user(),
        json!({"taskId": task, "selectedProjectIds": [list[0].id]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 404, "another user's task");
    let resp = retry(
        &u,
        json!({"taskId": task, "selectedProjectIds": [list[0].id], "userId": "someone-else"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);

    let resp = retry(
        &u,
        json!({"task_id": task, "selected_project_ids": [list[2].id, list[5].id, list[2].id]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "success");
    let next = body["taskId"].as_str().unwrap().to_owned();
    assert_ne!(next, task);
    let done = poll_from(&app, &u, &next, progress_before, complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["result"]["status"], "success");
    assert_eq!(done["result"]["selectedByUser"], true);
    let ids: Vec<&str> = done["result"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["projectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [list[2].id.as_str(), list[5].id.as_str()]);
    let enabled: Vec<String> = received(&api, "POST", |p| p.ends_with("services:batchEnable"))
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(enabled.len(), 2, "{enabled:?}");
    let conns = connections(&app, &u).await;
    assert_eq!(conns[0]["status"], "active");
    let meta = metadata(&app, &u, conns[0]["id"].as_str().unwrap()).await;
    assert_eq!(meta["projectIds"], json!([list[2].id, list[5].id]));
    // The continuation is not waiting for a choice.
    let resp = retry(
        &u,
        json!({"taskId": next, "selectedProjectIds": [list[0].id]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 409);
}

/// A setup that cannot succeed ends in FAILURE with an error (never SUCCESS), and one that keeps
/// meeting passing faults gives up after the attempt limit.
async fn setup_failure_is_reported_as_failure(b: Backend) {
    let oauth = oauth_peer().await;
    // No project has billing: nothing is eligible.
    let api = MockServer::start().await;
    mount_google(&api, &projects(2, false), 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let u = user();
    let l = login(&app, &u).await;
    let (_, loc) = callback(&app, &l, &authorize(&l).await).await;
    let task = pending_task(&loc);
    let s = poll(&app, &u, &task, complete).await;
    assert_eq!(s["state"], "FAILURE", "{s}");
    assert_eq!(s["complete"], true);
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("billing"), "{err}");
    assert_eq!(s["result"]["status"], "failed");
    let c = &connections(&app, &u).await[0];
    assert_eq!(c["status"], "degraded");
    assert!(c["statusReason"]
        .as_str()
        .unwrap()
        .contains("setup did not finish"));

    // Resource Manager keeps answering 503: two attempts, then FAILURE.
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cloudresourcemanager/v3/projects:search"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": 503, "message": "backend-detail-Xy", "status": "UNAVAILABLE"}}),
        ))
        .mount(&api)
        .await;
    let app = TestApp::spawn_with(
        b,
        options(with(
            gcp_settings(&oauth.url, &api.uri()),
            &[("AURORA_GCP_SETUP_MAX_ATTEMPTS", "2")],
        )),
    )
    .await;
    let u = user();
    let l = login(&app, &u).await;
    let (_, loc) = callback(&app, &l, &authorize(&l).await).await;
    let task = pending_task(&loc);
    let s = poll(&app, &u, &task, complete).await;
    assert_eq!(s["state"], "FAILURE", "{s}");
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(!err.contains("backend-detail-Xy"), "no raw provider body");
    assert_eq!(
        received(&api, "GET", |p| p.ends_with("projects:search"))
            .await
            .len(),
        2
    );
}

/// Another user's task answers 404, exactly as a task that does not exist.
async fn isolation_other_users_task_is_404(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    mount_google(&api, &projects(1, true), 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    let (alice, bob) = (user(), user());
    let l = login(&app, &alice).await;
    let (_, loc) = callback(&app, &l, &authorize(&l).await).await;
    let task = pending_task(&loc);
    poll(&app, &alice, &task, complete).await;

    let (code, theirs) = status(&app, &bob, &task).await;
    assert_eq!(code, 404);
    let (code2, unknown) = status(&app, &bob, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(code2, 404);
    assert_eq!(theirs, unknown, "no existence oracle");
    assert_eq!(theirs["code"], "not_found");
    assert_eq!(status(&app, &bob, "not-a-uuid").await.0, 404);
    let resp = app
        .post(&bob, "/gcp/post-auth-retry")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&json!({"taskId": task, "selectedProjectIds": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Bob's force-disconnect touches nothing of Alice's.
    let resp = app
        .post(&bob, "/api/gcp/force-disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["disconnected"], 0);
    assert_eq!(connections(&app, &alice).await.len(), 1);
    assert_eq!(status(&app, &alice, &task).await.0, 200);
    // Without the internal secret, or without a user: 401.
    let resp = app
        .get(&alice, &format!("/gcp/setup/status/{task}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A force-disconnect in the middle of a setup cancels the task, revokes every grant and deletes
/// every GCP secret of the user, including one no connection names.
async fn force_disconnect_cancels_a_running_setup(b: Backend) {
    let oauth = MockServer::start().await;
    mount_oauth_stub(&oauth, "ya29.a-Hh", "1//rt-main-Jj", "ya29.b-Kk").await;
    let api = MockServer::start().await;
    let list = projects(2, true);
    mount_search(&api, &list, 10).await;
    mount_billing(&api, &list[0], Some(Duration::from_secs(120))).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.uri(), &api.uri()))).await;
    let u = user();
    let l = login(&app, &u).await;
    let (_, loc) = callback(&app, &l, &format!("code=c0de&state={}", l.state)).await;
    let task = pending_task(&loc);
    poll(&app, &u, &task, |s| s["step"] == 3).await;
    let orphan = gcp_folder(&u)
        .child(&uuid::Uuid::new_v4().to_string())
        .unwrap();
    let doc =
        json!({"refreshToken": "1//rt-orphan-Ll", "sub": "x", "obtainedAt": chrono::Utc::now()});
    app.platform
        .secrets()
        .put(&orphan, &SecretValue::encode(&doc).unwrap())
        .await
        .unwrap();

    let resp = app
        .post(&u, "/api/gcp/force-disconnect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["disconnected"], 1);
    let (_, s) = status(&app, &u, &task).await;
    assert_eq!(s["state"], "FAILURE", "{s}");
    assert!(s["error"].as_str().unwrap().contains("disconnected"), "{s}");
    let mut revoked: Vec<String> = received(&oauth, "POST", |p| p == "/revoke")
        .await
        .iter()
        .filter_map(|r| field(&form(&r.body), "token").map(str::to_owned))
        .collect();
    revoked.sort();
    assert_eq!(revoked, ["1//rt-main-Jj", "1//rt-orphan-Ll"]);
    assert!(app
        .platform
        .secrets()
        .list(&gcp_folder(&u))
        .await
        .unwrap()
        .is_empty());
    assert!(connections(&app, &u).await.is_empty());
}

/// A GCP connector built on `app`'s platform with extra settings (another replica's view), called
/// through the `Connector` trait as the core's reconciler calls it.
fn gcp_connector(app: &TestApp, extra: &[(&str, &str)]) -> Arc<dyn Connector> {
    let mut settings = app.platform.settings().clone();
    for (k, v) in extra {
        settings.set(*k, *v);
    }
    let platform = app.platform.with_settings(settings);
    let plugins = connector_core::plugin::registered().unwrap();
    (plugins["gcp"].build)(&platform).unwrap()
}

/// What a callback wrote before it was killed: the secret and the `pending` row (naming its
/// future setup task), and nothing else. Returns the connection and the task id it names.
async fn half_done_connection(
    app: &TestApp,
    u: &str,
    account: &str,
) -> (ConnectionRecord, uuid::Uuid) {
    let task_id = uuid::Uuid::new_v4();
    let secret = SecretValue::encode(&json!({
        "refreshToken": format!("1//refresh-{account}"),
        "scope": "dummy",
        "sub": "johndoe",
        "email": null,
        "obtainedAt": chrono::Utc::now(),
    }))
    .unwrap();
    let spec = ConnectSpec {
        user: UserId::parse(u).unwrap(),
        provider: ProviderId::from_static("gcp"),
        account_id: account.to_owned(),
        display_name: Some(account.to_owned()),
        read_only: false,
        metadata: json!({
            "email": null, "sub": "johndoe", "scope": "dummy", "projects": [],
            "setupTaskId": task_id.to_string(),
        }),
        expires_at: None,
        status: ConnectionStatus::Pending,
        secret,
    };
    let (conn, _) = app.platform.connect(spec, Actor::User).await.unwrap();
    (conn, task_id)
}

/// The task of a connection, as the callback queues it.
fn task_for(conn: &ConnectionRecord, id: uuid::Uuid) -> NewSetupTask {
    NewSetupTask {
        id,
        user_id: conn.user_id.clone(),
        connection_id: Some(conn.id),
        provider: ProviderId::from_static("gcp"),
        state: SetupState::Pending,
        step: 0,
        total_steps: 7,
        progress: 0,
        status_message: "Queued: waiting for a worker".into(),
        input: json!({"connectionId": conn.id, "accountId": conn.account_id, "sub": "johndoe"}),
    }
}

async fn row(app: &TestApp, conn: &ConnectionRecord) -> ConnectionRecord {
    app.platform
        .store()
        .get_connection(&conn.user_id, conn.id)
        .await
        .unwrap()
        .expect("the connection row")
}

/// `kill -9` during a callback: a `pending` connection without its setup task. The reconciler hook
/// leaves fresh ones (inside the grace period), those with a live task and those waiting for a
/// project choice alone; re-queues the setup of one whose grant is stored (which then finishes);
/// marks `needs_reconnect` one without its grant and one whose task ended without moving it on.
async fn reconcile_repairs_pending_connections_left_without_a_task(b: Backend) {
    let oauth = oauth_peer().await;
    let api = MockServer::start().await;
    mount_google(&api, &projects(1, true), 10).await;
    let app = TestApp::spawn_with(b, options(gcp_settings(&oauth.url, &api.uri()))).await;
    // No worker and no reconciler of the gateway's own: this test drives both.
    app.stop_jobs();
    let store = app.platform.store();
    let gcp = ProviderId::from_static("gcp");

    // Waiting for the user's project choice: its task ended with `needs_selection`.
    let (waiting, waiting_task) = half_done_connection(&app, &user(), "waiting@example.com").await;
    store
        .create_setup_task(task_for(&waiting, waiting_task))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let claimed = store
        .claim_setup_task(&gcp, "test-worker", now, now + chrono::Duration::minutes(1))
        .await
        .unwrap()
        .expect("the only live task");
    assert_eq!(claimed.id, waiting_task);
    assert!(store
        .finish_setup_task(
            waiting_task,
            "test-worker",
            SetupOutcome {
                state: SetupState::Success,
                progress: 42,
                status_message: "Choose the projects to connect (7 eligible)".into(),
                error: None,
                result: Some(json!({"status": "needs_selection", "eligibleProjects": []})),
                input: None,
            },
        )
        .await
        .unwrap());
    // Its task ended (here: cancelled) but the connection was left pending.
    let (ended, ended_task) = half_done_connection(&app, &user(), "ended@example.com").await;
    store
        .create_setup_task(task_for(&ended, ended_task))
        .await
        .unwrap();
    store
        .cancel_setup_tasks(&ended.user_id, &gcp, Some(ended.id), "cancelled: test")
        .await
        .unwrap();
    // A live task (not worked yet).
    let (live, live_task) = half_done_connection(&app, &user(), "live@example.com").await;
    store
        .create_setup_task(task_for(&live, live_task))
        .await
        .unwrap();
    // The callback killed between the row and the task.
    let (killed, killed_task) = half_done_connection(&app, &user(), "killed@example.com").await;
    // The same, but the grant is gone too.
    let (no_grant, _) = half_done_connection(&app, &user(), "nogrant@example.com").await;
    app.platform
        .secrets()
        .delete(&SecretPath::from_stored(&no_grant.secret_ref).unwrap())
        .await
        .unwrap();
    let all = [&waiting, &ended, &live, &killed, &no_grant];

    // Inside the grace period (the default 10 minutes) every one is left alone.
    let replica = gcp_connector(&app, &[]);
    assert_eq!(replica.reconcile().await.unwrap(), 0);
    for c in all {
        assert_eq!(row(&app, c).await, *c, "a fresh connection is untouched");
    }
    assert!(store
        .get_setup_task(&killed.user_id, killed_task)
        .await
        .unwrap()
        .is_none());

    // Past a 1-second grace: the three half-done ones are repaired, once.
    let quick = gcp_connector(&app, &[("AURORA_GCP_RECONCILE_GRACE_SECS", "1")]);
    let mut repaired = 0;
    let done = aurora_testkit::poll_until(Duration::from_secs(20), async || {
        repaired += quick.reconcile().await.unwrap();
        assert!(repaired <= 3, "repaired {repaired}");
        repaired == 3
    })
    .await;
    assert!(done.is_some(), "repaired {repaired} of 3");
    assert_eq!(
        quick.reconcile().await.unwrap(),
        0,
        "nothing left to repair"
    );

    assert_eq!(row(&app, &waiting).await, waiting, "waiting for a choice");
    assert_eq!(row(&app, &live).await, live, "its task is live");
    let t = store
        .get_setup_task(&live.user_id, live_task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.state, t.attempts), (SetupState::Pending, 0));
    for (c, needle) in [(&ended, "cancelled: test"), (&no_grant, "interrupted")] {
        let r = row(&app, c).await;
        assert_eq!(r.status, ConnectionStatus::NeedsReconnect, "{r:?}");
        let reason = r.status_reason.unwrap();
        assert!(
            reason.contains(needle) && reason.contains("connect the Google account again"),
            "{reason}"
        );
    }
    // The killed callback's setup was queued again, under the id its connection names.
    assert_eq!(row(&app, &killed).await.status, ConnectionStatus::Pending);
    let t = store
        .get_setup_task(&killed.user_id, killed_task)
        .await
        .unwrap()
        .expect("the setup task was queued again");
    assert_eq!(
        (t.state, t.connection_id),
        (SetupState::Pending, Some(killed.id))
    );
    let audit = store
        .list_audit(&killed.user_id, Some(killed.id), None, 50)
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|e| e.action == "setup_queued" && e.detail["repaired"] == json!(true)));
    assert!(crate::common::captured_logs().contains("its setup was queued again"));

    // A worker then finishes it: the connection becomes active.
    let worker = quick.clone().spawn_background();
    let u = killed.user_id.as_str().to_owned();
    let done = poll(&app, &u, &killed_task.to_string(), complete).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(row(&app, &killed).await.status, ConnectionStatus::Active);
    for w in worker {
        w.abort();
    }
}

/// Without the OAuth client the plugin is listed and documented, and its routes answer 503.
async fn not_configured_answers_503(b: Backend) {
    let app = TestApp::spawn_with(b, options(Vec::new())).await;
    let providers: Value = app
        .get("u1", "/api/providers")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gcp = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "gcp")
        .expect("gcp listed");
    assert_eq!(gcp["displayName"], "Google Cloud");
    assert_eq!(gcp["authKind"], "oauth2");
    assert!(gcp["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("async_setup")));
    let resp = app
        .post("u1", "/gcp/login")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "not_configured");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("AURORA_GCP_CLIENT_ID"));
    // The callback is open: no identity needed to get the 503.
    let resp = browser()
        .get(app.url("/gcp/callback?code=a&state=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
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
        "/gcp/login",
        "/gcp/callback",
        "/gcp/setup/status/{task_id}",
        "/gcp/post-auth-retry",
        "/api/gcp/force-disconnect",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}

both_backends!(
    browser_flow_against_oauth2_mock_server,
    token_contract_and_invalid_grant,
    state_forged_expired_replayed,
    refused_exchange_and_declined_consent,
    state_cookie_binds_the_login_to_its_browser,
    state_cookie_off_accepts_a_callback_without_it,
    setup_killed_half_way_finishes_after_restart,
    needs_selection_then_post_auth_retry,
    setup_failure_is_reported_as_failure,
    isolation_other_users_task_is_404,
    force_disconnect_cancels_a_running_setup,
    reconcile_repairs_pending_connections_left_without_a_task,
    not_configured_answers_503,
);
