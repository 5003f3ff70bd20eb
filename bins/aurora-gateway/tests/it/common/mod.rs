//! Test harness: spawns the real gateway in-process on a loopback port, against the embedded default
//! or the real servers (PostgreSQL, Redis, OpenBao), with a wiremock Scaleway API, and captures logs.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, OnceLock};

use aurora_gateway::{app, backends, registry, GatewayConfig};
use aurora_testkit::PgSchema;
use connector_core::{Connector, Platform, Settings, Store};
use connector_store::SqlStore;
use parking_lot::Mutex;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const INTERNAL_SECRET: &str = "test-internal-secret-Zq81";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Servers,
}

/// Everything the process logged, at debug level and above, from every test of this binary.
pub fn captured_logs() -> String {
    let buf = log_buffer().lock();
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || BufWriter(writer_buf.clone()))
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct BufWriter(Arc<Mutex<Vec<u8>>>);
impl Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wraps the real store, for fault injection.
pub type StoreWrapper = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store>>;

/// How to build one gateway.
#[derive(Default)]
pub struct Options {
    pub internal_secret: Option<String>,
    /// Replace the Redis URL (servers backend), e.g. a closed port to simulate Redis down.
    pub redis_url: Option<String>,
    /// Use this OpenBao instead of the shared one (addr, token).
    pub vault: Option<(String, String)>,
    /// Wrap the real store (fault injection).
    pub wrap_store: Option<StoreWrapper>,
    /// Extra settings (provider endpoints: `AURORA_AWS_…`, `AWS_ENDPOINT_URL_STS`, …).
    pub settings: Vec<(String, String)>,
    /// Extra connectors, mounted beside the registered plugins.
    pub extra_connectors: Vec<Arc<dyn Connector>>,
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub http: reqwest::Client,
    pub scaleway: MockServer,
    pub platform: Platform,
    pub store: Arc<SqlStore>,
    pub config: GatewayConfig,
    handle: actix_web::dev::ServerHandle,
    background: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg: Option<PgSchema>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> Self {
        log_buffer();
        let dir = tempfile::tempdir().expect("tempdir");
        let scaleway = MockServer::start().await;
        let mut settings = Settings::new()
            .with("AURORA_BIND", "127.0.0.1:0")
            .with("AURORA_DATA_DIR", dir.path().to_string_lossy())
            .with("AURORA_SCALEWAY_API_URL", scaleway.uri());
        if let Some(s) = &opts.internal_secret {
            settings.set("AURORA_INTERNAL_SECRET", s);
        }
        let mut pg = None;
        if backend == Backend::Servers {
            let schema = aurora_testkit::postgres_schema_url().await.expect(
                "PostgreSQL is required for the servers suite (cargo xtask test starts it)",
            );
            settings.set("AURORA_DATABASE_URL", &schema.url);
            pg = Some(schema);
            settings.set(
                "AURORA_REDIS_URL",
                opts.redis_url
                    .clone()
                    .unwrap_or_else(aurora_testkit::redis_url),
            );
            settings.set("AURORA_REDIS_PREFIX", aurora_testkit::unique_prefix("gw"));
            let (addr, token) = match &opts.vault {
                Some(v) => v.clone(),
                None => {
                    let bao = aurora_testkit::shared_openbao();
                    (bao.addr.clone(), bao.token.clone())
                }
            };
            settings.set("AURORA_VAULT_ADDR", addr);
            settings.set("AURORA_VAULT_TOKEN", token);
            settings.set(
                "AURORA_VAULT_PREFIX",
                format!("test-{}", uuid::Uuid::new_v4().simple()),
            );
        }
        // Last, so a test can point a second gateway at the first one's backends (`backend_settings`).
        for (k, v) in &opts.settings {
            settings.set(k, v);
        }
        let config = GatewayConfig::from_settings(settings).expect("config");
        let (mut platform, store) = backends::build_platform(&config).await.expect("backends");
        if let Some(wrap) = opts.wrap_store {
            platform.wrap_store(wrap);
        }
        let mut connectors = registry::build_connectors(&platform).expect("connectors");
        for c in opts.extra_connectors {
            connectors.insert(c.info().id, c);
        }
        let background = aurora_gateway::jobs::spawn(&platform, &connectors, &config);
        let state = app::state(platform.clone(), connectors, &config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = app::server(state, vec![listener], 2).expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            backend,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            scaleway,
            platform,
            store,
            config,
            handle,
            background,
            _dir: dir,
            pg,
        }
    }

    pub fn url(&self, p: &str) -> String {
        format!("{}{}", self.base, p)
    }

    pub fn get(&self, user: &str, p: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(p)).header("X-User-ID", user)
    }

    pub fn post(&self, user: &str, p: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(p)).header("X-User-ID", user)
    }

    pub fn delete(&self, user: &str, p: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(p)).header("X-User-ID", user)
    }

    /// `GET /api/connections/{id}/credentials` as a trusted internal caller.
    pub fn credentials(&self, user: &str, id: &str, mode: &str) -> reqwest::RequestBuilder {
        self.get(
            user,
            &format!("/api/connections/{id}/credentials?mode={mode}"),
        )
        .header("X-Internal-Secret", INTERNAL_SECRET)
    }

    /// The settings that locate this gateway's database, secret store and cache: pass them in
    /// `Options::settings` to start a second gateway (a restart, another replica) on the same state.
    /// The first `TestApp` must outlive the second (it owns the data folder and the schema).
    pub fn backend_settings(&self) -> Vec<(String, String)> {
        const KEYS: &[&str] = &[
            "AURORA_DATA_DIR",
            "AURORA_DATABASE_URL",
            "AURORA_REDIS_URL",
            "AURORA_REDIS_PREFIX",
            "AURORA_VAULT_ADDR",
            "AURORA_VAULT_TOKEN",
            "AURORA_VAULT_PREFIX",
        ];
        KEYS.iter()
            .filter_map(|k| {
                self.config
                    .settings
                    .get(k)
                    .map(|v| (k.to_string(), v.to_owned()))
            })
            .collect()
    }

    /// Every row of every table, as text.
    pub async fn db_dump(&self) -> String {
        self.store.dump_text().await.expect("dump")
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Abort the gateway's background jobs (as its shutdown does); with `stop`, a full stop.
    pub fn stop_jobs(&self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
        for task in &self.background {
            task.abort();
        }
        if let Some(pg) = self.pg.take() {
            // Best effort: the schema is unique to this test.
            std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    let _ = rt.block_on(pg.drop_schema());
                }
            });
        }
    }
}

/// A random Scaleway access key id (`SCW` + 17 characters).
pub fn access_key() -> String {
    let s = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("SCW{}", &s[..17])
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One Scaleway account as the stub serves it.
pub struct ScwAccount {
    pub access_key: String,
    pub secret_key: String,
    pub organization_id: String,
    pub user_id: String,
    pub projects: Vec<(String, String)>,
    pub default_project: String,
}

impl ScwAccount {
    pub fn new(projects: usize) -> Self {
        let projects: Vec<(String, String)> = (0..projects)
            .map(|i| (uuid(), format!("project-{i}")))
            .collect();
        let default_project = projects.first().map(|p| p.0.clone()).unwrap_or_default();
        Self {
            access_key: access_key(),
            secret_key: uuid(),
            organization_id: uuid(),
            user_id: uuid(),
            projects,
            default_project,
        }
    }

    pub fn connect_body(&self) -> Value {
        json!({"accessKey": self.access_key, "secretKey": self.secret_key})
    }

    /// Mount the IAM and Account answers for this key on the stub.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path(format!("/iam/v1alpha1/api-keys/{}", self.access_key)))
            .and(wiremock::matchers::header(
                "X-Auth-Token",
                self.secret_key.as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_key": self.access_key,
                "secret_key": null,
                "user_id": self.user_id,
                "description": "aurora",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
                "expires_at": null,
                "default_project_id": self.default_project,
                "editable": true,
                "creation_ip": "192.0.2.1"
            })))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/iam/v1alpha1/users/{}", self.user_id)))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": self.user_id,
                "email": "owner@example.com",
                "organization_id": self.organization_id,
                "type": "owner",
                "status": "activated"
            })))
            .mount(server)
            .await;
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|(id, name)| {
                json!({
                    "id": id, "name": name, "organization_id": self.organization_id,
                    "description": format!("{name} description"),
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
                })
            })
            .collect();
        Mock::given(method("GET"))
            .and(path("/account/v3/projects"))
            .and(query_param(
                "organization_id",
                self.organization_id.as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "total_count": projects.len(),
                "projects": projects
            })))
            .mount(server)
            .await;
    }
}

/// Run the same async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Embedded).await
                }
            )*
        }
        mod servers {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !aurora_testkit::servers_available(stringify!($name)) {
                        return;
                    }
                    super::$name($crate::common::Backend::Servers).await
                }
            )*
        }
    };
}

/// A gateway that requires the internal secret (`INTERNAL_SECRET`).
pub fn trusted() -> Options {
    Options {
        internal_secret: Some(INTERNAL_SECRET.into()),
        ..Options::default()
    }
}

/// Send `req` as the trusted caller (`X-Internal-Secret`); the status and the JSON body.
pub async fn trusted_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A user id no other test uses.
pub fn new_user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

/// Connect a Scaleway account (mounted on the stub by the caller) as a trusted caller; the answer.
pub async fn connect_scaleway(app: &TestApp, user: &str, acct: &ScwAccount) -> Value {
    let resp = app
        .post(user, "/scaleway_api/scaleway/connect")
        .header("X-Internal-Secret", INTERNAL_SECRET)
        .json(&acct.connect_body())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "connect failed: {body}");
    body
}
