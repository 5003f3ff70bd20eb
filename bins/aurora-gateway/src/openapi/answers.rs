//! What the gateway adds to every operation: the identity header or secret, the answers to bad bodies, and rate limits.

use super::*;

pub(super) fn is_identity_header(param: &Value) -> bool {
    let named = |n: &str| {
        param
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(n))
    };
    param.get("in").and_then(Value::as_str) == Some("header")
        && (named(connector_core::http::USER_HEADER)
            || named(connector_core::http::INTERNAL_SECRET_HEADER))
}

/// §1 as security schemes: every route but the open ones needs `X-User-ID`, and `X-Internal-Secret`
/// when the gateway has one. An operation that declares its own requirement keeps it (the
/// credentials route always needs both). The identity headers are no longer parameters of their own.
/// Each guarded operation may answer 401.
pub(super) fn document_identity(doc: &mut Value, open: &[&str]) {
    if let Some(d) = doc.as_object_mut() {
        if let Some(schemes) =
            object_entry(d, "components").and_then(|c| object_entry(c, "securitySchemes"))
        {
            schemes.insert(
                USER_SCHEME.to_owned(),
                json!({
                    "type": "apiKey",
                    "in": "header",
                    "name": connector_core::http::USER_HEADER,
                    "description": "The caller's user id: 1 to 128 characters of letters, digits \
                        and `_ . @ : -`, given once. Set by the trusted frontend or service.",
                }),
            );
            schemes.insert(
                SECRET_SCHEME.to_owned(),
                json!({
                    "type": "apiKey",
                    "in": "header",
                    "name": connector_core::http::INTERNAL_SECRET_HEADER,
                    "description": "The shared secret of the gateway's trusted callers \
                        (`AURORA_INTERNAL_SECRET`), given once. Needed on every guarded route when \
                        the gateway has one, and always on the credentials route.",
                }),
            );
        }
    }
    for_each_operation(doc, |path, op| {
        if let Some(Value::Array(params)) = op.get_mut("parameters") {
            params.retain(|p| !is_identity_header(p));
            if params.is_empty() {
                op.remove("parameters");
            }
        }
        if open.contains(&path) {
            return;
        }
        op.entry("security").or_insert_with(|| {
            json!([
                {USER_SCHEME: [], SECRET_SCHEME: []},
                {USER_SCHEME: []},
            ])
        });
        add_error(
            op,
            "401",
            "`unauthenticated`: `X-User-ID` missing, malformed or given twice, or \
             `X-Internal-Secret` missing, wrong or given twice where it is needed",
        );
    });
    // Path-level parameters too.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            if let Some(Value::Array(params)) = item.get_mut("parameters") {
                params.retain(|p| !is_identity_header(p));
            }
        }
    }
}

/// Every operation that takes a body may answer, before its handler runs (`app::guard`): 400
/// (malformed), 408 (the body did not arrive within the deadline), 413 (above 64 KiB) and 415 (a
/// Content-Type that is not JSON, or a form where the route takes one). An operation with query
/// parameters may answer 400 (a malformed one).
pub(super) fn document_body_answers(doc: &mut Value) {
    for_each_operation(doc, |_, op| {
        let has_query = op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| {
                ps.iter()
                    .any(|p| p.get("in").and_then(Value::as_str) == Some("query"))
            });
        let body_types: Vec<String> = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        if has_query {
            add_error(op, "400", "`invalid_request`: a malformed query parameter");
        }
        if op.contains_key("requestBody") {
            add_error(op, "400", "`invalid_request`: the body is malformed");
            add_error(
                op,
                "408",
                "`request_timeout`: the body did not arrive within the gateway's deadline \
                 (`AURORA_BODY_TIMEOUT_SECS`)",
            );
            add_error(
                op,
                "413",
                "`payload_too_large`: the body is larger than 64 KiB",
            );
            let form = body_types
                .iter()
                .any(|t| t == "application/x-www-form-urlencoded");
            add_error(
                op,
                "415",
                if form {
                    "`unsupported_media_type`: a body whose Content-Type is neither JSON \
                     (`application/json`, `application/…+json`) nor \
                     `application/x-www-form-urlencoded`"
                } else {
                    "`unsupported_media_type`: a body whose Content-Type is not JSON \
                     (`application/json`, `application/…+json`)"
                },
            );
        }
    });
}

/// Every operation of a rate-limited route (`crate::ratelimit`) may answer 429: say so, with the
/// `Retry-After` header and the error body.
pub(super) fn document_rate_limits(doc: &mut Value, limited: &[&str]) {
    let response = json!({
        "description": "`rate_limited`: this caller made the configured number of requests of this \
            kind in the current minute",
        "headers": {"Retry-After": {
            "description": "seconds until the window ends",
            "schema": {"type": "integer"},
        }},
        "content": {"application/json": {"schema": {"$ref": format!("{SCHEMA_REF}{ERROR_BODY}")}}},
    });
    for_each_operation(doc, |path, op| {
        if !limited.contains(&path) {
            return;
        }
        if let Some(responses) = object_entry(op, "responses") {
            responses.entry("429").or_insert_with(|| response.clone());
        }
    });
}
