//! Reading what callers send: connection ids, query values, optional JSON bodies, and JSON errors without the caller's input.

use super::*;

/// A `connectionId` given by a caller (body or query), as a connection id; 400 when it is no UUID.
pub fn parse_connection_id(raw: &str) -> Result<ConnectionId, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::invalid_request("connectionId must be a UUID"))
}

/// `connectionId` (or `connection_id`) from the query string, if present; the last wins. A blank
/// value is 400: a filter that names nothing must never widen an action to every connection.
pub fn query_connection_id(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    query_value(req, ["connectionId", "connection_id"])
}

/// The parameter `keys` (a camelCase name and its snake_case spelling) from the query string, if
/// present; the last wins. A blank value is 400 ("<name> must not be empty").
pub fn query_value(req: &HttpRequest, keys: [&str; 2]) -> Result<Option<String>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_request("the query string is malformed"))?;
    let mut found = None;
    for (k, v) in pairs.into_inner() {
        if keys.contains(&k.as_str()) {
            if v.trim().is_empty() {
                return Err(ApiError::invalid_request(format!(
                    "{} must not be empty",
                    keys[0]
                )));
            }
            found = Some(v.trim().to_owned());
        }
    }
    Ok(found)
}

/// 400 when the query string has a parameter not in `allowed` (a misspelled filter such as
/// `connectionID` must not be ignored by a route that acts on everything without one).
pub fn only_query_keys(req: &HttpRequest, allowed: &[&str]) -> Result<(), ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_request("the query string is malformed"))?;
    match pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::invalid_request(format!(
            "unknown query parameter `{}`; this route takes {}",
            k.chars().take(64).collect::<String>(),
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        ))),
        None => Ok(()),
    }
}

/// `deserialize_with` for an optional filter field of a body (`connectionId`, `accountId`): absent
/// or `null` is `None`, a blank string is an error, so a blank filter never widens a disconnect to
/// every connection.
pub fn non_blank<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    match v {
        Some(s) if s.trim().is_empty() => {
            Err(serde::de::Error::custom("a filter field must not be empty"))
        }
        other => Ok(other),
    }
}

/// A serde_json message without the string values it quotes (`invalid type: string "…"`), so a
/// secret sent in the wrong field never comes back in an error.
pub fn sanitize_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg.as_str();
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        match rest[start + 1..].find('"') {
            Some(end) => {
                out.push_str("<value>");
                rest = &rest[start + 1 + end + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// An optional JSON body: empty, whitespace or `null` is `None`; anything but a `T` is 400.
pub fn parse_optional_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // serde reads a struct from an array too (`[]`, `["<uuid>"]` by field position): only an object
    // (or `null`) is a body.
    if !matches!(bytes.trim_ascii_start().first(), Some(b'{' | b'n')) {
        return Err(ApiError::invalid_request(
            "the body must be empty or a JSON object",
        ));
    }
    serde_json::from_slice::<Option<T>>(bytes).map_err(|e| {
        let detail = match e.classify() {
            // Unknown fields, blank filters, wrong types: say which.
            serde_json::error::Category::Data => format!(" ({})", sanitize_json_error(&e)),
            _ => String::new(),
        };
        ApiError::invalid_request(format!("the body must be empty or a JSON object{detail}"))
    })
}

/// Read an optional JSON body (for routes whose body may be absent, such as a disconnect): above
/// [`BODY_LIMIT`] 413, unreadable or malformed 400.
pub async fn read_optional_body<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
) -> Result<Option<T>, ApiError> {
    let bytes = match payload.to_bytes_limited(BODY_LIMIT).await {
        Err(_) => return Err(ApiError::payload_too_large()),
        Ok(Err(_)) => {
            return Err(ApiError::invalid_request(
                "the request body could not be read",
            ))
        }
        Ok(Ok(b)) => b,
    };
    parse_optional_body(&bytes)
}
