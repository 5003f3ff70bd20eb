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
use crate::{frontend, openapi, routes};

mod guard;
mod observe;
use self::guard::*;
pub use self::observe::*;

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
            crate::ratelimit::RateLimiter::new(limits, &connectors, platform.cache().clone());
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
        frontend::configure(cfg);
        for connector in state.connectors.values() {
            connector.clone().configure(cfg);
        }
    }
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
