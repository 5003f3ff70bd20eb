//! The §1 guard in front of every routed request: identity, the internal secret, JSON-only bodies read in full within the body deadline.

use super::*;

pub(super) fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::payload_too_large(),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            connector_core::error::ErrorCode::UnsupportedMediaType,
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
pub(super) async fn guard(
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
pub(super) fn has_body(req: &ServiceRequest) -> bool {
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
pub(super) fn body_media_type(req: &ServiceRequest, open: bool) -> Result<(), ApiError> {
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
            connector_core::error::ErrorCode::UnsupportedMediaType,
            "a request body must be JSON: send it with Content-Type: application/json",
        ))
    }
}

/// The whole body, at most [`BODY_LIMIT`] bytes, within `deadline`: 408 when it does not arrive in
/// time, 413 when it is larger, 400 when the transfer itself is malformed (bad chunking).
pub(super) async fn read_body(
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
            connector_core::error::ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )),
    }
}

/// Answer a body refusal and close the connection: what is left of the body is not read.
pub(super) fn refuse_body<B>(req: ServiceRequest, e: ApiError) -> ServiceResponse<EitherBody<B>> {
    let mut resp = e.error_response();
    resp.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    req.into_response(resp).map_into_right_body()
}
