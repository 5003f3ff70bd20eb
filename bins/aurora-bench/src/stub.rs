//! The stub providers of the benchmark, in process: an STS (AssumeRole, GetCallerIdentity over the Query
//! protocol) and the Scaleway IAM/Account APIs, with a settable latency and call counters.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};

pub const ACCOUNT: &str = "123456789012";

/// Counters and knobs shared by the handlers and the scenarios.
#[derive(Default)]
pub struct StubState {
    pub assume_role_calls: AtomicUsize,
    pub identity_calls: AtomicUsize,
    pub scaleway_key_calls: AtomicUsize,
    /// Latency added to every answer, in milliseconds.
    pub latency_ms: AtomicU64,
    /// Lifetime of the credentials AssumeRole hands out, in seconds.
    pub expiry_secs: AtomicI64,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// What the Scaleway key endpoint saw while a status sweep was recorded.
    pub sweep: Mutex<SweepLog>,
}

/// The Scaleway key lookups of a status sweep: which keys, when the first arrived and the last was
/// answered.
#[derive(Default)]
pub struct SweepLog {
    pub recording: bool,
    pub calls: usize,
    pub keys: HashSet<String>,
    pub first_call: Option<Instant>,
    pub last_answer: Option<Instant>,
}

impl StubState {
    /// Start recording a sweep (forgetting the previous one) and reset the in-flight maximum.
    pub fn record_sweep(&self) {
        *self.sweep.lock().unwrap() = SweepLog {
            recording: true,
            ..SweepLog::default()
        };
        self.max_in_flight.store(0, Ordering::SeqCst);
    }

    async fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let ms = self.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        InFlight(self)
    }
}

struct InFlight<'a>(&'a StubState);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml").body(body)
}

async fn sts(state: web::Data<Arc<StubState>>, form: web::Bytes) -> HttpResponse {
    let _g = state.enter().await;
    let text = String::from_utf8_lossy(&form);
    if text.contains("Action=AssumeRole") {
        state.assume_role_calls.fetch_add(1, Ordering::SeqCst);
        let n = state.assume_role_calls.load(Ordering::SeqCst);
        let exp = chrono::Utc::now()
            + chrono::Duration::seconds(state.expiry_secs.load(Ordering::Relaxed));
        xml(format!(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIABENCH{n:011}</AccessKeyId>
      <SecretAccessKey>benchsecret{n}</SecretAccessKey>
      <SessionToken>benchtoken{n}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROABENCH:aurora</AssumedRoleId>
      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/bench/aurora</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
            exp.format("%Y-%m-%dT%H:%M:%SZ")
        ))
    } else {
        state.identity_calls.fetch_add(1, Ordering::SeqCst);
        xml(format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/gateway</Arn><UserId>AIDABENCH</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
        ))
    }
}

/// The organization of a benchmark access key: derived from the key, so every key is its own account.
pub fn org_of(access_key: &str) -> String {
    let digits: String = access_key.chars().filter(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    format!("00000000-0000-4000-8000-{n:012}")
}

async fn scw_key(state: web::Data<Arc<StubState>>, path: web::Path<String>) -> HttpResponse {
    let ak = path.into_inner();
    {
        let mut log = state.sweep.lock().unwrap();
        if log.recording {
            log.first_call.get_or_insert_with(Instant::now);
        }
    }
    let g = state.enter().await;
    state.scaleway_key_calls.fetch_add(1, Ordering::SeqCst);
    {
        let mut log = state.sweep.lock().unwrap();
        if log.recording {
            log.calls += 1;
            log.keys.insert(ak.clone());
            log.last_answer = Some(Instant::now());
        }
    }
    drop(g);
    HttpResponse::Ok().json(serde_json::json!({
        "access_key": ak, "user_id": format!("user-{ak}"), "default_project_id": org_of(&ak),
        "description": "bench", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "expires_at": null, "editable": true
    }))
}

async fn scw_user(path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let ak = id.trim_start_matches("user-");
    HttpResponse::Ok().json(serde_json::json!({"id": id, "organization_id": org_of(ak)}))
}

#[derive(serde::Deserialize)]
struct ProjectsQuery {
    organization_id: String,
}

async fn scw_projects(q: web::Query<ProjectsQuery>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "total_count": 1,
        "projects": [{"id": q.organization_id, "name": "bench", "organization_id": q.organization_id,
            "description": "", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}]
    }))
}

/// Start the stub server on a free loopback port; returns its base URL.
pub fn start(state: Arc<StubState>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/sts/", web::post().to(sts))
            .route("/sts", web::post().to(sts))
            .route("/scw/iam/v1alpha1/api-keys/{ak}", web::get().to(scw_key))
            .route("/scw/iam/v1alpha1/users/{id}", web::get().to(scw_user))
            .route("/scw/account/v3/projects", web::get().to(scw_projects))
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(url)
}
