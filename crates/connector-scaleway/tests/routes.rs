//! The Scaleway routes in an in-process actix app, over in-memory fakes of the store, the secret
//! store and the cache (defined here, so this crate depends on no backend crate), against a stubbed
//! Scaleway API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{test, web, App};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use connector_core::store::{AuditStore, ConnectionStore};
use connector_core::{
    ApiError, AuditEvent, Cache, CacheError, ConnectionId, ConnectionRecord, ConnectionStatus,
    Connector, CredentialMode, NewConnection, Platform, ProviderId, SecretPath, SecretStore,
    SecretStoreError, SecretValue, Settings, StatusUpdate, StoreError, UserId,
};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "SCWABCDEFGHIJKLMNOPQ";
const SECRET: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const ORG: &str = "11111111-2222-3333-4444-555555555555";
const USER: &str = "99999999-8888-7777-6666-555555555555";

// ---- fakes ----

#[derive(Default)]
struct MemStore {
    rows: Mutex<Vec<ConnectionRecord>>,
    audit: Mutex<Vec<AuditEvent>>,
}

#[async_trait]
impl ConnectionStore for MemStore {
    fn backend_name(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn upsert_connection(
        &self,
        n: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let now = Utc::now();
        if let Some(r) = rows.iter_mut().find(|r| {
            r.user_id == n.user_id && r.provider == n.provider && r.account_id == n.account_id
        }) {
            r.display_name = n.display_name;
            r.status = n.status;
            r.status_reason = n.status_reason;
            r.read_only = n.read_only;
            r.metadata = n.metadata;
            r.last_validated_at = n.last_validated_at;
            r.expires_at = n.expires_at;
            r.updated_at = now;
            return Ok((r.clone(), false));
        }
        let r = ConnectionRecord {
            id: n.id,
            user_id: n.user_id,
            provider: n.provider,
            account_id: n.account_id,
            display_name: n.display_name,
            status: n.status,
            status_reason: n.status_reason,
            read_only: n.read_only,
            secret_ref: n.secret_ref,
            metadata: n.metadata,
            created_at: now,
            updated_at: now,
            last_validated_at: n.last_validated_at,
            expires_at: n.expires_at,
        };
        rows.push(r.clone());
        Ok((r, true))
    }
    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .find(|r| &r.user_id == user && r.id == id)
            .cloned())
    }
    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .find(|r| &r.user_id == user && &r.provider == provider && r.account_id == account_id)
            .cloned())
    }
    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .filter(|r| &r.user_id == user && provider.is_none_or(|p| &r.provider == p))
            .cloned()
            .collect())
    }
    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        u: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(rows
            .iter_mut()
            .find(|r| &r.user_id == user && r.id == id)
            .map(|r| {
                r.status = u.status;
                r.status_reason = u.status_reason;
                if u.last_validated_at.is_some() {
                    r.last_validated_at = u.last_validated_at;
                }
                r.clone()
            }))
    }
    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(rows
            .iter_mut()
            .find(|r| &r.user_id == user && r.id == id)
            .map(|r| {
                r.metadata = metadata;
                r.expires_at = expires_at;
                r.clone()
            }))
    }
    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let before = rows.len();
        rows.retain(|r| !(&r.user_id == user && r.id == id));
        Ok(rows.len() != before)
    }
    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(refs
            .iter()
            .filter(|r| rows.iter().any(|row| &row.secret_ref == *r))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AuditStore for MemStore {
    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.audit.lock().unwrap().push(event);
        Ok(())
    }
    async fn list_audit(
        &self,
        _: &UserId,
        _: Option<ConnectionId>,
        _: Option<DateTime<Utc>>,
        _: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.audit.lock().unwrap().clone())
    }
    async fn prune_audit(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
    // The webhook outbox: this fake has none.
    async fn enqueue_webhook(&self, _: NewOutboxEvent) -> Result<(), StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn claim_webhooks(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn finish_webhook_attempt(
        &self,
        _: uuid::Uuid,
        _: &str,
        _: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn list_webhooks(
        &self,
        _: Option<OutboxState>,
        _: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Err(no("the webhook outbox"))
    }
    async fn prune_webhooks(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Err(no("the webhook outbox"))
    }
}

/// What this fake does not keep.
fn no(what: &str) -> StoreError {
    aurora_testkit::fakes::not_kept(what)
}

aurora_testkit::fake_store_rest!(MemStore);

#[derive(Default)]
struct MemSecrets(Mutex<HashMap<String, SecretValue>>);

#[async_trait]
impl SecretStore for MemSecrets {
    fn backend_name(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, p: &SecretPath, v: &SecretValue) -> Result<(), SecretStoreError> {
        self.0.lock().unwrap().insert(p.as_str().into(), v.clone());
        Ok(())
    }
    async fn get(&self, p: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.0.lock().unwrap().get(p.as_str()).cloned())
    }
    async fn delete(&self, p: &SecretPath) -> Result<(), SecretStoreError> {
        self.0.lock().unwrap().remove(p.as_str());
        Ok(())
    }
    async fn list(&self, folder: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        let prefix = format!("{}/", folder.as_str());
        Ok(self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }
}

struct NoCache;

#[async_trait]
impl Cache for NoCache {
    fn backend_name(&self) -> &'static str {
        "none"
    }
    fn is_shared(&self) -> bool {
        false
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }
    async fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), CacheError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<(), CacheError> {
        Ok(())
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, CacheError> {
        Ok(0)
    }
}

// ---- harness ----

struct Harness {
    server: MockServer,
    store: Arc<MemStore>,
    secrets: Arc<MemSecrets>,
    platform: Platform,
    connector: Arc<dyn Connector>,
}

fn pid(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

async fn harness() -> Harness {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .and(header("X-Auth-Token", SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_key": ACCESS, "user_id": USER, "application_id": null,
            "default_project_id": pid(101), "expires_at": "2099-01-01T00:00:00Z", "description": ""
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/users/{USER}")))
        .and(header("X-Auth-Token", SECRET))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": USER, "organization_id": ORG})),
        )
        .mount(&server)
        .await;
    for page in 1..=2usize {
        let items: Vec<Value> = ((page - 1) * 100..(page * 100).min(150))
            .map(|i| json!({"id": pid(i), "name": format!("p{i}"), "organization_id": ORG, "description": ""}))
            .collect();
        Mock::given(method("GET"))
            .and(path("/account/v3/projects"))
            .and(query_param("page", page.to_string()))
            .and(header("X-Auth-Token", SECRET))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total_count": 150, "projects": items})),
            )
            .mount(&server)
            .await;
    }
    let store = Arc::new(MemStore::default());
    let secrets = Arc::new(MemSecrets::default());
    let settings = Settings::new().with("AURORA_SCALEWAY_API_URL", server.uri());
    let platform = Platform::new(store.clone(), secrets.clone(), Arc::new(NoCache), settings)
        .await
        .unwrap();
    let descriptor = connector_core::plugin::registered()
        .unwrap()
        .get("scaleway")
        .copied()
        .expect("the crate registers its plugin");
    let connector = (descriptor.build)(&platform).unwrap();
    Harness {
        server,
        store,
        secrets,
        platform,
        connector,
    }
}

macro_rules! app {
    ($h:expr) => {{
        let c = $h.connector.clone();
        test::init_service(
            App::new()
                .app_data(
                    web::JsonConfig::default()
                        .limit(64 * 1024)
                        .error_handler(|e, _| {
                            ApiError::invalid_request(format!("invalid JSON body: {e}")).into()
                        }),
                )
                .configure(move |cfg| c.configure(cfg)),
        )
        .await
    }};
}

fn post(uri: &str, user: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri(uri)
        .insert_header(("X-User-ID", user))
        .set_json(body)
}

// ---- tests ----

#[actix_web::test]
async fn connect_stores_the_secret_apart_and_answers_the_contract() {
    let h = harness().await;
    let app = app!(h);
    let resp = test::call_service(
        &app,
        post(
            "/scaleway_api/scaleway/connect",
            "alice",
            json!({"access_key": ACCESS, "secret_key": SECRET, "userId": "alice", "ignored": true}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["organizationId"], ORG);
    assert_eq!(body["projectId"], pid(101));
    assert_eq!(body["projectsCount"], 150);
    assert!(body["message"].is_string());
    let id = body["connectionId"].as_str().unwrap().to_owned();
    assert!(!body.to_string().contains(SECRET));

    let rows = h.store.rows.lock().unwrap().clone();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id.to_string(), id);
    assert_eq!(row.account_id, ORG);
    assert_eq!(row.display_name.as_deref(), Some("p101"));
    assert_eq!(row.status, ConnectionStatus::Active);
    assert_eq!(row.metadata["projectId"], pid(101));
    assert_eq!(row.metadata["projectName"], "p101");
    assert_eq!(row.metadata["organizationId"], ORG);
    assert_eq!(row.metadata["accessKey"], ACCESS);
    assert!(row.metadata["keyExpiresAt"].is_string());
    assert!(row.expires_at.is_some());
    assert!(!format!("{row:?}").contains(SECRET));
    let audit = format!("{:?}", h.store.audit.lock().unwrap());
    assert!(!audit.contains(SECRET));

    let stored: Value = h
        .secrets
        .0
        .lock()
        .unwrap()
        .get(&row.secret_ref)
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(stored, json!({"accessKey": ACCESS, "secretKey": SECRET}));

    // The same organization again updates the connection.
    let resp = test::call_service(
        &app,
        post(
            "/scaleway_api/scaleway/connect",
            "alice",
            json!({"accessKey": ACCESS, "secretKey": SECRET.to_uppercase(), "projectId": pid(3)}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["connectionId"], id.as_str());
    assert_eq!(body["projectId"], pid(3));
    assert_eq!(h.store.rows.lock().unwrap().len(), 1);
    assert!(!h.platform.metrics().render().contains(SECRET));
}

#[actix_web::test]
async fn connect_refusals() {
    let h = harness().await;
    let app = app!(h);
    let cases = [
        (
            json!({"accessKey": ACCESS, "secretKey": SECRET, "userId": "bob"}),
            403,
            "user_mismatch",
        ),
        (
            json!({"accessKey": "SCW123", "secretKey": SECRET}),
            400,
            "invalid_request",
        ),
        (
            json!({"accessKey": ACCESS, "secretKey": "hunter2-not-a-uuid"}),
            400,
            "invalid_request",
        ),
        (
            json!({"accessKey": ACCESS, "secretKey": SECRET, "organizationId": "x"}),
            400,
            "invalid_request",
        ),
        (
            json!({"accessKey": ACCESS, "secretKey": SECRET, "organizationId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}),
            400,
            "invalid_request",
        ),
        (
            json!({"accessKey": ACCESS, "secretKey": SECRET, "projectId": pid(999)}),
            400,
            "invalid_request",
        ),
        (
            json!({"accessKey": ACCESS, "secretKey": "aaaaaaaa-0000-0000-0000-000000000000"}),
            422,
            "credentials_rejected",
        ),
        (json!({"secretKey": SECRET}), 400, "invalid_request"),
    ];
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(ResponseTemplate::new(401))
        .mount(&h.server)
        .await;
    for (body, status, code) in cases {
        let resp = test::call_service(
            &app,
            post("/scaleway_api/scaleway/connect", "alice", body.clone()).to_request(),
        )
        .await;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let v: Value = test::read_body_json(resp).await;
        assert_eq!(v["code"], code, "{body}");
        assert!(!v.to_string().contains("hunter2"));
        assert!(!v.to_string().contains(SECRET));
    }
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/scaleway_api/scaleway/connect")
            .set_json(json!({"accessKey": ACCESS, "secretKey": SECRET}))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(h.store.rows.lock().unwrap().is_empty());
    assert!(h
        .secrets
        .0
        .lock()
        .unwrap()
        .keys()
        .all(|k| !k.contains("scaleway")));
}

macro_rules! connect {
    ($app:expr, $user:expr) => {{
        let resp = test::call_service(
            &$app,
            post(
                "/scaleway_api/scaleway/connect",
                $user,
                json!({"accessKey": ACCESS, "secretKey": SECRET}),
            )
            .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let body: Value = test::read_body_json(resp).await;
        body["connectionId"].as_str().unwrap().to_owned()
    }};
}

#[actix_web::test]
async fn projects_lists_every_page_for_the_owner_only() {
    let h = harness().await;
    let app = app!(h);
    let get = |user: &str, q: &str| {
        test::TestRequest::get()
            .uri(&format!("/scaleway_api/scaleway/projects{q}"))
            .insert_header(("X-User-ID", user))
            .to_request()
    };
    let resp = test::call_service(&app, get("alice", "")).await;
    assert_eq!(resp.status(), 404);

    let id = connect!(app, "alice");
    let resp = test::call_service(&app, get("alice", "")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["status"], "success");
    let ps = body["projects"].as_array().unwrap();
    assert_eq!(ps.len(), 150);
    assert_eq!(
        ps[0],
        json!({"projectId": pid(0), "projectName": "p0", "organizationId": ORG, "description": "",
               "isDefault": false, "name": "p0", "enabled": true, "isRootProject": false})
    );
    let defaults: Vec<_> = ps.iter().filter(|p| p["isDefault"] == true).collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["projectId"], pid(101));
    assert_eq!(
        defaults[0]["isRootProject"], true,
        "the default is the root (§9.6 S2)"
    );

    let resp = test::call_service(&app, get("alice", &format!("?connectionId={id}"))).await;
    assert_eq!(resp.status(), 200);
    let resp = test::call_service(&app, get("bob", &format!("?connectionId={id}"))).await;
    assert_eq!(resp.status(), 404);
    let resp = test::call_service(&app, get("bob", "")).await;
    assert_eq!(resp.status(), 404);
    let resp = test::call_service(&app, get("alice", "?connectionId=nope")).await;
    assert_eq!(resp.status(), 400);
}

#[actix_web::test]
async fn disconnect_one_or_all() {
    let h = harness().await;
    let app = app!(h);
    let id = connect!(app, "alice");
    let _ = connect!(app, "bob");

    // Someone else's id: 404, nothing removed.
    let resp = test::call_service(
        &app,
        post(
            "/scaleway_api/scaleway/disconnect",
            "bob",
            json!({"connectionId": id}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(h.store.rows.lock().unwrap().len(), 2);

    let resp = test::call_service(
        &app,
        post(
            "/scaleway_api/scaleway/disconnect",
            "alice",
            json!({"userId": "bob"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 403);

    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&format!(
                "/scaleway_api/scaleway/disconnect?connectionId={id}"
            ))
            .insert_header(("X-User-ID", "alice"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["disconnected"], 1);
    assert!(body["message"].is_string());

    // No body at all: every Scaleway connection of the caller (none left for alice).
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/scaleway_api/scaleway/disconnect")
            .insert_header(("X-User-ID", "alice"))
            .to_request(),
    )
    .await;
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 0);

    let resp = test::call_service(
        &app,
        post("/scaleway_api/scaleway/disconnect", "bob", json!({})).to_request(),
    )
    .await;
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["disconnected"], 1);
    assert!(h.store.rows.lock().unwrap().is_empty());
    assert!(h
        .secrets
        .0
        .lock()
        .unwrap()
        .keys()
        .all(|k| !k.contains("scaleway")));

    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/scaleway_api/scaleway/disconnect")
            .insert_header(("X-User-ID", "bob"))
            .set_payload(vec![b' '; 70 * 1024])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 413);
}

#[actix_web::test]
async fn validate_and_credentials_through_the_platform() {
    let h = harness().await;
    let app = app!(h);
    let id: ConnectionId = connect!(app, "alice").parse().unwrap();
    let user = UserId::parse("alice").unwrap();
    let conn = h.platform.owned_connection(&user, id).await.unwrap();

    let checked = h
        .platform
        .validate(h.connector.as_ref(), &conn, connector_core::Actor::User)
        .await
        .unwrap();
    assert_eq!(checked.status, ConnectionStatus::Active);

    for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
        let creds = h
            .platform
            .credentials(h.connector.clone(), &checked, mode)
            .await
            .unwrap();
        let v: Value = creds.credentials.decode().unwrap();
        assert_eq!(
            v,
            json!({"accessKey": ACCESS, "secretKey": SECRET, "organizationId": ORG, "projectId": pid(101)})
        );
        assert_eq!(creds.expires_at, checked.expires_at);
    }

    // The key is deleted at Scaleway: the next check marks the connection for a reconnect.
    h.server.reset().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&h.server)
        .await;
    let checked = h
        .platform
        .validate(h.connector.as_ref(), &checked, connector_core::Actor::User)
        .await
        .unwrap();
    assert_eq!(checked.status, ConnectionStatus::NeedsReconnect);
    assert!(!checked.status_reason.unwrap_or_default().contains(SECRET));
}

#[actix_web::test]
async fn info_and_openapi() {
    let h = harness().await;
    let info = serde_json::to_value(h.connector.info()).unwrap();
    assert_eq!(
        info,
        json!({"id": "scaleway", "displayName": "Scaleway", "authKind": "api_key",
               "capabilities": ["multi_account", "credentials", "validate"]})
    );
    let doc = serde_json::to_value(h.connector.openapi()).unwrap();
    assert!(doc["paths"]["/scaleway_api/scaleway/connect"]["post"].is_object());
    assert!(doc["paths"]["/scaleway_api/scaleway/projects"]["get"].is_object());
    assert!(doc["paths"]["/scaleway_api/scaleway/disconnect"]["post"].is_object());
}

#[actix_web::test]
async fn a_bad_base_url_fails_the_build() {
    let platform = Platform::new(
        Arc::new(MemStore::default()),
        Arc::new(MemSecrets::default()),
        Arc::new(NoCache),
        Settings::new().with("AURORA_SCALEWAY_API_URL", "ftp://nope"),
    )
    .await
    .unwrap();
    let err = connector_scaleway::build(&platform).err().unwrap();
    assert!(err.0.contains("AURORA_SCALEWAY_API_URL"));
    let platform = Platform::new(
        Arc::new(MemStore::default()),
        Arc::new(MemSecrets::default()),
        Arc::new(NoCache),
        Settings::new().with("AURORA_SCALEWAY_TIMEOUT_SECS", "0"),
    )
    .await
    .unwrap();
    assert!(connector_scaleway::build(&platform).is_err());
}
