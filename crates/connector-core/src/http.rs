//! HTTP helpers shared by the gateway and the plugins: caller identity, the trusted-caller check,
//! owner binding, and the connection view of §7.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};
use crate::store::ConnectionRecord;

pub const USER_HEADER: &str = "X-User-ID";
/// §1: request bodies above this answer 413 (also for routes that read their body themselves).
pub const BODY_LIMIT: usize = 64 * 1024;
pub const INTERNAL_SECRET_HEADER: &str = "X-Internal-Secret";
/// The organisation a caller acts for (Aurora's org sharing).
pub const ORG_HEADER: &str = "X-Org-ID";
/// Headers that say who the caller is. Each may appear at most once: behind a proxy that appends
/// instead of replacing, a second value would let a client choose its identity.
pub const IDENTITY_HEADERS: [&str; 3] = [USER_HEADER, INTERNAL_SECRET_HEADER, ORG_HEADER];

/// 401 when an identity header is sent more than once (whatever the values).
pub fn single_identity_headers(req: &HttpRequest) -> Result<(), ApiError> {
    for name in IDENTITY_HEADERS {
        if req.headers().get_all(name).nth(1).is_some() {
            return Err(ApiError::unauthenticated(format!(
                "{name} was sent more than once; send it exactly once"
            )));
        }
    }
    Ok(())
}

/// The gateway's caller-authentication settings, registered as `web::Data<AuthConfig>`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub internal_secret: Option<SecretString>,
}

impl AuthConfig {
    /// Whether the request carries the configured internal secret (compared in constant time).
    /// `None` when no secret is configured.
    pub fn check(&self, req: &HttpRequest) -> Option<bool> {
        let expected = self.internal_secret.as_ref()?;
        let given = req
            .headers()
            .get(INTERNAL_SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        Some(bool::from(given.ct_eq(expected.expose_secret().as_bytes())))
    }
}

/// The gateway's auth settings (none registered: no internal secret), borrowed: no copy of the
/// secret per request.
fn auth_config(req: &HttpRequest) -> Option<&AuthConfig> {
    req.app_data::<web::Data<AuthConfig>>().map(|d| d.get_ref())
}

/// The authenticated caller of a non-open route: a valid `X-User-ID`, and the internal secret when one
/// is configured.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    /// The request carried the configured internal secret.
    pub trusted: bool,
}

impl Caller {
    pub fn from_request_parts(req: &HttpRequest) -> Result<Self, ApiError> {
        single_identity_headers(req)?;
        let trusted = match auth_config(req).and_then(|c| c.check(req)) {
            Some(true) => true,
            Some(false) => {
                return Err(ApiError::unauthenticated(
                    "X-Internal-Secret is missing or wrong",
                ))
            }
            None => false,
        };
        let raw = req
            .headers()
            .get(USER_HEADER)
            .ok_or_else(|| ApiError::unauthenticated("the X-User-ID header is required"))?;
        let user = raw
            .to_str()
            .ok()
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "X-User-ID must be 1-128 characters of letters, digits and _ . @ : -",
                )
            })?;
        Ok(Self { user, trusted })
    }

    /// Owner binding (§1): a `userId` in the body must equal the header's.
    pub fn bind_owner(&self, body_user: Option<&str>) -> Result<(), ApiError> {
        match body_user {
            Some(u) if u != self.user.as_str() => Err(ApiError::user_mismatch()),
            _ => Ok(()),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::from_request_parts(req))
    }
}

/// A caller that presented the internal secret. With no secret configured this always answers 401.
#[derive(Debug, Clone)]
pub struct TrustedCaller(pub Caller);

impl FromRequest for TrustedCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if auth_config(req).is_none_or(|c| c.internal_secret.is_none()) {
            return ready(Err(ApiError::unauthenticated(
                "this route needs X-Internal-Secret, and AURORA_INTERNAL_SECRET is not configured on the gateway",
            )));
        }
        ready(Caller::from_request_parts(req).map(TrustedCaller))
    }
}

/// A connection as the API shows it (§7). No secret reference, no secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ConnectionId,
    #[schema(value_type = String, example = "scaleway")]
    pub provider: ProviderId,
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&ConnectionRecord> for ConnectionView {
    fn from(c: &ConnectionRecord) -> Self {
        Self {
            id: c.id,
            provider: c.provider.clone(),
            account_id: c.account_id.clone(),
            display_name: c.display_name.clone(),
            status: c.status,
            status_reason: c.status_reason.clone(),
            read_only: c.read_only,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_validated_at: c.last_validated_at,
            expires_at: c.expires_at,
        }
    }
}

/// `{"status":"success","message","disconnected":n}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisconnectResponse {
    pub status: &'static str,
    pub message: String,
    pub disconnected: usize,
}

impl DisconnectResponse {
    pub fn new(disconnected: usize, what: &str) -> Self {
        let message = match disconnected {
            0 => format!("no {what} connection to disconnect"),
            1 => format!("disconnected 1 {what} connection"),
            n => format!("disconnected {n} {what} connections"),
        };
        Self {
            status: "success",
            message,
            disconnected,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn optional_bodies_and_connection_ids() {
        #[derive(Debug, serde::Deserialize)]
        struct B {
            #[serde(alias = "connection_id")]
            #[serde(rename = "connectionId")]
            id: Option<String>,
        }
        assert!(parse_optional_body::<B>(b"").unwrap().is_none());
        assert!(parse_optional_body::<B>(b" \n").unwrap().is_none());
        assert!(parse_optional_body::<B>(b"null").unwrap().is_none());
        let b = parse_optional_body::<B>(br#"{"connection_id":"x"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(b.id.as_deref(), Some("x"));
        assert_eq!(
            parse_optional_body::<B>(b"{").unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(
            parse_optional_body::<B>(b"[1]").unwrap_err().code,
            "invalid_request"
        );
        let req = TestRequest::with_uri("/x?connection_id=abc&connectionId=def").to_http_request();
        assert_eq!(query_connection_id(&req).unwrap().as_deref(), Some("def"));
        let req = TestRequest::with_uri("/x?connectionId=%20").to_http_request();
        assert_eq!(
            query_connection_id(&req).unwrap_err().message,
            "connectionId must not be empty"
        );
        let req = TestRequest::with_uri("/x?connectionID=abc").to_http_request();
        assert!(only_query_keys(&req, &["connectionId", "connection_id"]).is_err());
        let req = TestRequest::with_uri("/x?connection_id=abc").to_http_request();
        assert!(only_query_keys(&req, &["connectionId", "connection_id"]).is_ok());
        assert!(parse_connection_id("abc").is_err());
        let id = ConnectionId::new();
        assert_eq!(parse_connection_id(&format!(" {id} ")).unwrap(), id);
    }

    #[test]
    fn an_array_is_not_an_optional_body() {
        // Found by schemathesis: `[]` was read as an empty object, and `["<id>"]` as a filter.
        for body in [&b"[]"[..], b" [\"x\"]", b"\"x\"", b"1", b"true"] {
            let e = parse_optional_body::<Filter>(body).unwrap_err();
            assert_eq!(
                e.code,
                "invalid_request",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let f = parse_optional_body::<Filter>(br#" {"connectionId":"x"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(f.id.as_deref(), Some("x"));
        assert!(parse_optional_body::<Filter>(b"null").unwrap().is_none());
        assert!(parse_optional_body::<Filter>(b"nul").is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        #[serde(default, rename = "connectionId", deserialize_with = "non_blank")]
        id: Option<String>,
    }

    #[test]
    fn blank_and_unknown_body_filters_are_refused() {
        assert!(parse_optional_body::<Filter>(br#"{"connectionId":null}"#)
            .unwrap()
            .unwrap()
            .id
            .is_none());
        let e = parse_optional_body::<Filter>(br#"{"connectionId":" "}"#).unwrap_err();
        assert!(e.message.contains("must not be empty"), "{}", e.message);
        let e = parse_optional_body::<Filter>(br#"{"connectionID":"x"}"#).unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
        assert!(!e.message.contains("\"x\""), "{}", e.message);
    }

    #[test]
    fn sanitized_json_errors_drop_every_quoted_value() {
        let e = serde_json::from_str::<u32>("\"hunter2\"").unwrap_err();
        let s = sanitize_json_error(&e);
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("invalid type"), "{s}");
    }

    #[test]
    fn a_repeated_identity_header_is_refused() {
        for name in IDENTITY_HEADERS {
            let req = TestRequest::default()
                .insert_header((USER_HEADER, "u1"))
                .append_header((name, "a"))
                .append_header((name, "b"))
                .to_http_request();
            let e = Caller::from_request_parts(&req).unwrap_err();
            assert_eq!(e.code, "unauthenticated", "{name}");
            assert!(e.message.contains(name), "{}", e.message);
        }
    }

    #[test]
    fn caller_rules() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(
            Caller::from_request_parts(&req).unwrap_err().code,
            "unauthenticated"
        );
        let req = TestRequest::default()
            .insert_header((USER_HEADER, "bad user"))
            .to_http_request();
        assert!(Caller::from_request_parts(&req).is_err());
        let req = TestRequest::default()
            .insert_header((USER_HEADER, "u1"))
            .to_http_request();
        let c = Caller::from_request_parts(&req).unwrap();
        assert_eq!(c.user.as_str(), "u1");
        assert!(!c.trusted);
        assert!(c.bind_owner(Some("u1")).is_ok());
        assert!(c.bind_owner(None).is_ok());
        assert_eq!(c.bind_owner(Some("u2")).unwrap_err().code, "user_mismatch");
    }

    #[test]
    fn internal_secret_is_enforced_when_configured() {
        let cfg = web::Data::new(AuthConfig {
            internal_secret: Some(SecretString::from("s3cret")),
        });
        let req = TestRequest::default()
            .app_data(cfg.clone())
            .insert_header((USER_HEADER, "u1"))
            .to_http_request();
        assert!(Caller::from_request_parts(&req).is_err());
        let req = TestRequest::default()
            .app_data(cfg)
            .insert_header((USER_HEADER, "u1"))
            .insert_header((INTERNAL_SECRET_HEADER, "s3cret"))
            .to_http_request();
        assert!(Caller::from_request_parts(&req).unwrap().trusted);
    }
}
