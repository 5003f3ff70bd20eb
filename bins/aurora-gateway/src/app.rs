//! The actix-web application: shared state, §1 rules for every route (identity, trusted caller, body
//! limit, error body), metrics and request logs, the plugin routes and the shared routes.

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{middleware, web, App, HttpMessage, HttpResponse, ResponseError};
use connector_core::http::USER_HEADER;
use connector_core::{ApiError, AuthConfig, Caller, Platform};
use tracing::Instrument;

use crate::config::GatewayConfig;
use crate::registry::Connectors;
use crate::{openapi, routes};

/// §1: request bodies above this answer 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Routes that need no caller identity.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/api/openapi.json"];

/// What every handler can reach through `web::Data<AppState>`.
pub struct AppState {
    pub platform: Platform,
    pub connectors: Connectors,
    pub auth: AuthConfig,
    pub open_paths: HashSet<String>,
    pub openapi_json: String,
    pub rate_limits: crate::ratelimit::RateLimiter,
    /// A request body must have arrived within this (`AURORA_BODY_TIMEOUT_SECS`), else 408.
    pub body_timeout: Duration,
}

impl AppState {
    pub fn new(platform: Platform, connectors: Connectors, cfg: &GatewayConfig) -> Self {
        let mut open_paths: HashSet<String> = OPEN_PATHS.iter().map(|s| s.to_string()).collect();
        for c in connectors.values() {
            open_paths.extend(c.info().open_paths.iter().map(|p| p.to_string()));
        }
        let openapi_json = openapi::document(&connectors);
        // Checked when the configuration was loaded; the defaults only serve hand-built configs.
        let limits =
            crate::ratelimit::RateLimitConfig::from_settings(&cfg.settings).unwrap_or_default();
        let rate_limits =
            crate::ratelimit::RateLimiter::new(limits, &connectors, platform.cache.clone());
        Self {
            platform,
            connectors,
            auth: AuthConfig {
                internal_secret: cfg.internal_secret.clone(),
            },
            open_paths,
            openapi_json,
            rate_limits,
            body_timeout: cfg.body_timeout,
        }
    }
}

/// Mount everything on one `App`. Called once per worker.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state.clone())
            .app_data(web::Data::new(state.auth.clone()))
            .app_data(web::Data::new(state.platform.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(|err, _req| json_error(err).into()),
            )
            .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
            .app_data(
                web::FormConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(|err, _req| {
                        let e = match err {
                            actix_web::error::UrlencodedError::Overflow { .. } => {
                                ApiError::payload_too_large()
                            }
                            _ => ApiError::invalid_request("the form body is malformed"),
                        };
                        e.into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                ApiError::invalid_request(format!("malformed query string: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_err, _req| ApiError::not_found("no such resource").into()),
            );
        // The shared routes before the plugins' (patterns are tried in order; no two overlap).
        routes::configure(cfg);
        for connector in state.connectors.values() {
            connector.clone().configure(cfg);
        }
    }
}

fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::payload_too_large(),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            connector_core::ErrorCode::UnsupportedMediaType,
            "a request body must be JSON: send it with Content-Type: application/json",
        ),
        E::Deserialize(e) => {
            // serde's message names the field and the expectation, never the value of a string.
            ApiError::invalid_request(format!(
                "the JSON body is invalid: {}",
                connector_core::http::sanitize_json_error(&e)
            ))
        }
        _ => ApiError::invalid_request("the JSON body could not be read"),
    }
}

/// §1 for every non-open route, whatever plugin mounted it: a valid `X-User-ID` and, when configured,
/// the internal secret. Handlers check again through the `Caller` extractor. Then the body rules of
/// every routed request: JSON only (415), and read in full within the body deadline (408), so a
/// client that stops sending cannot hold a connection and a worker's attention for ever.
async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // §1: a body announced above the limit is refused before any handler reads it, whatever the route.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT) {
        let resp = ApiError::payload_too_large().error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let open = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.open_paths.contains(req.path()))
        .unwrap_or(false);
    // An unmatched path answers 404 whoever asks; every matched non-open route needs a caller.
    let routed = matched_route(&req).is_some();
    if !open && routed {
        if let Err(e) = Caller::from_request_parts(req.request()) {
            let resp = e.error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    if routed && has_body(&req) {
        if let Err(e) = body_media_type(&req, open) {
            return Ok(refuse_body(req, e));
        }
        let deadline = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.body_timeout)
            .unwrap_or(Duration::from_secs(10));
        match read_body(&mut req, deadline).await {
            Ok(bytes) => req.set_payload(actix_web::dev::Payload::from(bytes)),
            Err(e) => return Ok(refuse_body(req, e)),
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

/// Whether the request announces a body (a non-zero length, or chunks).
fn has_body(req: &ServiceRequest) -> bool {
    let h = req.headers();
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => h.contains_key(header::TRANSFER_ENCODING),
    }
}

/// A body must be JSON (`application/json` or `application/<x>+json`); open routes (the OAuth
/// callback, which a provider may post as a form) also take `application/x-www-form-urlencoded`.
fn body_media_type(req: &ServiceRequest, open: bool) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let form = open && essence == "application/x-www-form-urlencoded";
    if json || form {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            connector_core::ErrorCode::UnsupportedMediaType,
            "a request body must be JSON: send it with Content-Type: application/json",
        ))
    }
}

/// The whole body, at most [`BODY_LIMIT`] bytes, within `deadline`: 408 when it does not arrive in
/// time, 413 when it is larger, 400 when the transfer itself is malformed (bad chunking).
async fn read_body(
    req: &mut ServiceRequest,
    deadline: Duration,
) -> Result<actix_web::web::Bytes, ApiError> {
    use futures::StreamExt;
    let mut payload = req.take_payload();
    let read = async {
        let mut body = actix_web::web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|_| ApiError::invalid_request("the request body could not be read"))?;
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(ApiError::payload_too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            connector_core::ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )),
    }
}

/// Answer a body refusal and close the connection: what is left of the body is not read.
fn refuse_body<B>(req: ServiceRequest, e: ApiError) -> ServiceResponse<EitherBody<B>> {
    let mut resp = e.error_response();
    resp.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    req.into_response(resp).map_into_right_body()
}

/// The route pattern the request's path matches (`None`: no route), computed once by [`observe`].
#[derive(Clone)]
pub struct MatchedRoute(pub Option<String>);

/// The request's route pattern: from [`observe`]'s note, else computed.
pub fn matched_route(req: &ServiceRequest) -> Option<String> {
    match req.extensions().get::<MatchedRoute>() {
        Some(m) => m.0.clone(),
        None => req.match_pattern(),
    }
}

/// Metrics by route pattern and status, a request log line, and the contract's error body for errors
/// that actix answers itself (405, 404 of an unmatched path, …).
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let user_present = req.headers().contains_key(USER_HEADER);
    let request_id = request_id(&req);
    // Matching the path against every route pattern is costly (regular expressions): done once
    // here, and read back by the inner middleware.
    let pattern = req.match_pattern();
    req.extensions_mut().insert(MatchedRoute(pattern.clone()));
    let span = tracing::info_span!("request", id = %request_id);
    let res = next.call(req).instrument(span.clone()).await?;
    let route = pattern.unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status();
    let mut res = normalize_error(res);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let _entered = span.enter();
    if let Some(state) = state {
        let m = &state.platform.metrics;
        m.http_requests
            .with_label_values(&[&route, &method, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[&route, &method])
            .observe(started.elapsed().as_secs_f64());
    }
    // The route pattern, never the raw path or query (an OAuth callback carries `code`).
    tracing::info!(
        target: "aurora::http",
        method = %method,
        route = %route,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        user_header = user_present,
        "request"
    );
    Ok(res)
}

const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-ID` when it is a sane token, else a new UUID; echoed in the answer and
/// attached to every log line of the request.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn normalize_error<B: MessageBody + 'static>(res: ServiceResponse<B>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().starts_with(b"application/json"))
        .unwrap_or(false);
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res.map_into_boxed_body();
    }
    let e = match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no route serves this path"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            connector_core::ErrorCode::MethodNotAllowed,
            "this path does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        StatusCode::UNAUTHORIZED => ApiError::unauthenticated("authentication is required"),
        s if s.is_client_error() => ApiError::new(
            s,
            connector_core::ErrorCode::InvalidRequest,
            "the request is malformed",
        ),
        _ => ApiError::internal(),
    };
    let (req, old) = res.into_parts();
    let mut new = e.error_response();
    if let Some(allow) = old.headers().get(header::ALLOW) {
        new.headers_mut().insert(header::ALLOW, allow.clone());
    }
    ServiceResponse::new(req, new)
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("no route serves this path").error_response()
}

/// Build the HTTP server on an already bound listener.
pub fn server(
    state: web::Data<AppState>,
    listeners: Vec<TcpListener>,
    workers: usize,
) -> anyhow::Result<Server> {
    server_with(state, listeners, workers, None)
}

/// [`server`], with client connections capped at `max_connections` (all workers together; see
/// [`crate::limits`]). At the cap a worker stops accepting: new connections wait in the listen
/// queue instead of failing for lack of file descriptors.
pub fn server_with(
    state: web::Data<AppState>,
    listeners: Vec<TcpListener>,
    workers: usize,
    max_connections: Option<usize>,
) -> anyhow::Result<Server> {
    let worker_count = if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let mut builder = Server::build().workers(worker_count).shutdown_timeout(30);
    if let Some(max) = max_connections {
        // At the cap a worker stops accepting; new connections wait in the listen queue.
        builder = builder.max_concurrent_connections((max / worker_count).max(1));
    }
    for l in listeners {
        let addr = l.local_addr()?;
        let state = state.clone();
        // What `HttpServer::listen` builds, with each connection's stream wrapped so the HTTP
        // parser's own error answers carry the JSON error body too (`wire.rs`).
        builder = builder.listen(format!("aurora-{addr}"), l, move || {
            let app = App::new()
                .wrap(middleware::from_fn(crate::ratelimit::limit))
                .wrap(middleware::from_fn(guard))
                .wrap(middleware::from_fn(observe))
                .wrap(middleware::DefaultHeaders::new().add((
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                )))
                .configure(configure(state.clone()))
                .default_service(web::to(not_found));
            let factory = app
                .into_factory()
                .map_err(|e: actix_web::Error| e.error_response());
            let h1 = actix_http::HttpService::build()
                .client_request_timeout(Duration::from_secs(10))
                .local_addr(addr)
                .h1(actix_service::map_config(factory, |_| {
                    actix_web::dev::AppConfig::default()
                }));
            actix_service::fn_service(|io: actix_web::rt::net::TcpStream| async move {
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((crate::wire::JsonErrors::new(io), peer))
            })
            .and_then(h1)
        })?;
    }
    Ok(builder.run())
}

/// Build the state from a platform: the registered connectors are built once, outside the per-worker
/// closure.
pub fn state(
    platform: Platform,
    connectors: Connectors,
    cfg: &GatewayConfig,
) -> web::Data<AppState> {
    web::Data::new(AppState::new(platform, connectors, cfg))
}
