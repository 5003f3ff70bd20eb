//! The routes every provider shares (§7): providers, connections, credentials on use, audit, health,
//! readiness, metrics and the OpenAPI document.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use connector_core::{
    Actor, ApiError, Caller, ConnectionId, ConnectionView, CredentialMode, DisconnectResponse,
    ProviderId, ProviderInfo, TrustedCaller,
};
use serde::{Deserialize, Serialize};

use crate::app::AppState;

/// Each path is a resource, so a known path with another method answers 405 (with `Allow`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, post, resource};
    // The credentials route first: patterns are tried in order (each dynamic one is a regular
    // expression), and it is the route internal services call most.
    cfg.service(
        resource("/api/connections/{id}/credentials").route(get().to(connection_credentials)),
    )
    .service(resource("/healthz").route(get().to(healthz)))
    .service(resource("/readyz").route(get().to(readyz)))
    .service(resource("/metrics").route(get().to(metrics)))
    .service(resource("/api/openapi.json").route(get().to(openapi)))
    .service(resource("/api/providers").route(get().to(providers)))
    .service(resource("/api/connections").route(get().to(list_connections)))
    .service(
        resource("/api/connections/{id}")
            .route(get().to(get_connection))
            .route(delete().to(delete_connection)),
    )
    .service(resource("/api/connections/{id}/validate").route(post().to(validate_connection)))
    .service(resource("/api/audit").route(get().to(audit)));
}

type State = web::Data<AppState>;

fn parse_id(raw: &str) -> Result<ConnectionId, ApiError> {
    // A malformed id is just an id that does not exist.
    raw.parse()
        .map_err(|_| ApiError::not_found("no such connection"))
}

/// The caller's connection with this id, or 404.
async fn owned(
    state: &State,
    user: &connector_core::UserId,
    raw_id: &str,
) -> Result<connector_core::ConnectionRecord, ApiError> {
    state
        .platform
        .owned_connection(user, parse_id(raw_id)?)
        .await
}

/// The plugin serving a connection's provider.
fn connector_of<'a>(
    state: &'a State,
    conn: &connector_core::ConnectionRecord,
) -> Result<&'a std::sync::Arc<dyn connector_core::Connector>, ApiError> {
    state.connectors.get(&conn.provider).ok_or_else(|| {
        ApiError::conflict("the connection's provider plugin is not installed on this gateway")
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyChecks {
    database: &'static str,
    secret_store: &'static str,
    cache: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    status: &'static str,
    checks: ReadyChecks,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check<F, E>(f: F) -> &'static str
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            "unavailable"
        }
        Err(_) => "unavailable",
    }
}

/// Readiness: 503 when the database or the secret store is unreachable; a cache that is down is
/// reported but does not fail readiness.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(state: State) -> HttpResponse {
    let p = &state.platform;
    let (database, secret_store, cache) = tokio::join!(
        check(p.store().ping()),
        check(p.secrets().ping()),
        check(p.cache().ping())
    );
    let ready = database == "ok" && secret_store == "ok";
    let body = Ready {
        status: if ready { "ok" } else { "unavailable" },
        checks: ReadyChecks {
            database,
            secret_store,
            cache,
        },
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.platform.metrics().render())
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "service", responses((status = 200, body = Object)))]
pub async fn openapi(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

/// The registered connector plugins.
#[utoipa::path(get, path = "/api/providers", tag = "connections",
    responses((status = 200, body = Vec<ProviderInfo>)))]
pub async fn providers(_caller: Caller, state: State) -> HttpResponse {
    let list: Vec<ProviderInfo> = state.connectors.values().map(|c| c.info()).collect();
    HttpResponse::Ok().json(list)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this provider's connections (a provider id: `[a-z][a-z0-9_]{0,31}`; another value answers
    /// 400).
    #[param(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    provider: Option<String>,
}

/// The caller's connections, every provider, every account.
#[utoipa::path(get, path = "/api/connections", tag = "connections", params(ListQuery),
    responses((status = 200, body = Vec<ConnectionView>),
        (status = 400, body = connector_core::error::ErrorBody, description = "A malformed `provider`")))]
pub async fn list_connections(
    caller: Caller,
    state: State,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let provider = match &q.provider {
        Some(p) => {
            Some(ProviderId::parse(p).map_err(|e| ApiError::invalid_request(e.to_string()))?)
        }
        None => None,
    };
    let rows = state
        .platform
        .store()
        .list_connections(&caller.user, provider.as_ref())
        .await?;
    let views: Vec<ConnectionView> = rows.iter().map(ConnectionView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// One connection of the caller.
#[utoipa::path(get, path = "/api/connections/{id}", tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id (anything that is not a UUID answers 404 like an unknown id)")),
    responses((status = 200, body = ConnectionView), (status = 404, body = connector_core::error::ErrorBody)))]
pub async fn get_connection(
    caller: Caller,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let conn = owned(&state, &caller.user, &id).await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(&conn)))
}

/// Disconnect one account: the same clean-up as the provider's disconnect.
#[utoipa::path(delete, path = "/api/connections/{id}", tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id (anything that is not a UUID answers 404 like an unknown id)")),
    responses((status = 200, body = DisconnectResponse), (status = 404, body = connector_core::error::ErrorBody)))]
pub async fn delete_connection(
    caller: Caller,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let conn = owned(&state, &caller.user, &id).await?;
    match state.connectors.get(&conn.provider) {
        Some(connector) => {
            state
                .platform
                .disconnect(connector.as_ref(), &conn, Actor::User)
                .await?
        }
        None => {
            // The provider's plugin is no longer linked: clean up our side without a provider call.
            state
                .platform
                .disconnect(
                    &crate::unlinked::Unlinked(conn.provider.clone()),
                    &conn,
                    Actor::User,
                )
                .await?
        }
    }
    Ok(HttpResponse::Ok().json(DisconnectResponse::new(1, conn.provider.as_str())))
}

/// Check the connection live now; returns the updated connection.
#[utoipa::path(post, path = "/api/connections/{id}/validate", tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id (anything that is not a UUID answers 404 like an unknown id)")),
    responses((status = 200, body = ConnectionView), (status = 404, body = connector_core::error::ErrorBody)))]
pub async fn validate_connection(
    caller: Caller,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let conn = owned(&state, &caller.user, &id).await?;
    let connector = connector_of(&state, &conn)?;
    let updated = state
        .platform
        .validate(connector.as_ref(), &conn, Actor::User)
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(&updated)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialsQuery {
    /// `read_only` (default; also when empty) or `full`; another value answers 400.
    #[param(pattern = "^(read_only|full)?$")]
    mode: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsBody<'a> {
    connection_id: ConnectionId,
    provider: &'a str,
    account_id: &'a str,
    mode: CredentialMode,
    expires_at: Option<DateTime<Utc>>,
    credentials: &'a serde_json::value::RawValue,
    /// §9.2: `rootProjectId` and `enabledProjectIds`, for a connection with a project selection.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    selection: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Short-lived usable credentials for an internal service. Needs `X-Internal-Secret`.
#[utoipa::path(get, path = "/api/connections/{id}/credentials", tag = "connections",
    security(("userId" = [], "internalSecret" = [])),
    params(("id" = uuid::Uuid, Path, description = "The connection's id (anything that is not a UUID answers 404 like an unknown id)"), CredentialsQuery),
    responses((status = 200, body = Object, description = "{connectionId, provider, accountId, mode, expiresAt, credentials}, and for a connection with a project selection (§9.2) rootProjectId and enabledProjectIds"),
        (status = 401, body = connector_core::error::ErrorBody), (status = 404, body = connector_core::error::ErrorBody),
        (status = 409, body = connector_core::error::ErrorBody, description = "`needs_reconnect` (the provider refused the stored credentials) or `conflict` (setup not finished)"),
        (status = 502, body = connector_core::error::ErrorBody, description = "the provider could not issue credentials")))]
pub async fn connection_credentials(
    caller: TrustedCaller,
    state: State,
    id: web::Path<String>,
    q: web::Query<CredentialsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mode: CredentialMode = match q.mode.as_deref() {
        None | Some("") => CredentialMode::ReadOnly,
        Some(m) => m.parse().map_err(|e: connector_core::ids::ParseError| {
            ApiError::invalid_request(e.to_string())
        })?,
    };
    let conn = state
        .platform
        .connection_for_use(&caller.0.user, parse_id(&id)?)
        .await?;
    let connector = connector_of(&state, &conn)?;
    let creds = state
        .platform
        .credentials(connector.clone(), &conn, mode)
        .await?;
    let raw: &serde_json::value::RawValue = serde_json::from_slice(
        creds.credentials.expose_bytes(),
    )
    .map_err(|_| {
        tracing::error!(connection = %conn.id, "connector produced credentials that are not JSON");
        ApiError::internal()
    })?;
    let body = serde_json::to_vec(&CredentialsBody {
        connection_id: conn.id,
        provider: conn.provider.as_str(),
        account_id: &conn.account_id,
        mode,
        expires_at: creds.expires_at,
        credentials: raw,
        selection: connector_core::selection::credentials_fields_of(&conn.metadata),
    })
    .map_err(|_| ApiError::internal())?;
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this connection's events (a UUID; another value answers 404, like an unknown id).
    #[param(value_type = Option<uuid::Uuid>)]
    #[serde(alias = "connection_id")]
    connection_id: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many (default 100; a value outside 1 to 1000 is taken as the nearest bound).
    limit: Option<i64>,
}

/// One line of the audit trail as `GET /api/audit` answers it (`connector_core::AuditEvent` serialized;
/// this type only describes it, and a test keeps the two alike).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub struct AuditEventDoc {
    id: uuid::Uuid,
    /// The owner (the caller).
    user_id: String,
    connection_id: Option<uuid::Uuid>,
    provider: Option<String>,
    /// `connect`, `reconnect`, `disconnect`, `credentials_issued`, `status_changed`, `rotate`, …
    action: String,
    /// `user`, `internal` or `system`.
    actor: String,
    /// What happened, by action; never a secret.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    created_at: DateTime<Utc>,
}

/// The caller's audit trail, newest first. Identical credential issues of one connection within about
/// 50 ms are one line: `detail.count` says how many (absent: one), `detail.lastAt` when the last was.
#[utoipa::path(get, path = "/api/audit", tag = "connections", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEventDoc>, description = "The caller's audit lines, newest first"),
        (status = 400, body = connector_core::error::ErrorBody, description = "A malformed `since` or `limit`"),
        (status = 404, body = connector_core::error::ErrorBody, description = "A `connectionId` that is not a UUID")))]
pub async fn audit(
    caller: Caller,
    state: State,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let connection = match &q.connection_id {
        Some(raw) => Some(parse_id(raw)?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // Read-your-writes: this replica's queued audit lines are written first.
    state.platform.audit_buffer().flush().await;
    let events = state
        .platform
        .store()
        .list_audit(&caller.user, connection, q.since, limit)
        .await?;
    Ok(HttpResponse::Ok().json(events))
}
