//! Metrics by route pattern and status, request logs and ids, and the contract's error body for what actix answers itself.

use super::*;

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
pub(super) async fn observe(
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
        let m = state.platform.metrics();
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

pub(super) const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-ID` when it is a sane token, else a new UUID; echoed in the answer and
/// attached to every log line of the request.
pub(super) fn request_id(req: &ServiceRequest) -> String {
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

pub(super) fn normalize_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> ServiceResponse<BoxBody> {
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
            connector_core::error::ErrorCode::MethodNotAllowed,
            "this path does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        StatusCode::UNAUTHORIZED => ApiError::unauthenticated("authentication is required"),
        s if s.is_client_error() => ApiError::new(
            s,
            connector_core::error::ErrorCode::InvalidRequest,
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

pub(super) async fn not_found() -> HttpResponse {
    ApiError::not_found("no route serves this path").error_response()
}
