//! Error types: backend errors (store, secret store, cache), connector errors, and the HTTP `ApiError`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The relational store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or foreign-key rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything else (a query error, a row that does not decode).
    #[error("database error: {0}")]
    Other(String),
}

/// The secret store failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The store answered but refused (permission, sealed, malformed path).
    #[error("secret store refused the request: {0}")]
    Refused(String),
    /// Data in the store could not be decrypted or decoded.
    #[error("secret store data is corrupt: {0}")]
    Corrupt(String),
    /// A check-and-set write found another version than it expected: someone wrote since it read.
    #[error("secret store conflict: {0}")]
    Conflict(String),
}

/// The cache failed. Callers treat every cache error as a miss.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

/// What a provider call can end in. Messages are meant for users: they never hold a secret or a
/// provider's raw response body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The request is malformed or names something that does not exist (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The provider refused the credentials (422); the connection needs a reconnect.
    #[error("{0}")]
    CredentialsRejected(String),
    /// The provider timed out, answered 5xx or could not be reached (502).
    #[error("{0}")]
    ProviderUnavailable(String),
    /// The provider throttled us (429).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// A structured API error the connector chose itself.
    #[error("{0}")]
    Api(ApiError),
}

impl ConnectorError {
    /// Whether the failure is the provider refusing the credentials (as opposed to a passing fault).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::CredentialsRejected(_))
    }
}

/// The stable snake_case `code` of an error body. Core codes are variants; a plugin's own codes
/// (AWS's `external_id_mismatch`) go through [`ErrorCode::Plugin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidState,
    Unauthenticated,
    UserMismatch,
    Forbidden,
    NotFound,
    Conflict,
    NeedsReconnect,
    NotConfigured,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    RequestHeaderFieldsTooLarge,
    MethodNotAllowed,
    CredentialsRejected,
    RateLimited,
    ProviderUnavailable,
    DependencyUnavailable,
    Internal,
    /// A code of one plugin's own, snake_case.
    Plugin(&'static str),
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::UserMismatch => "user_mismatch",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NeedsReconnect => "needs_reconnect",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::RequestHeaderFieldsTooLarge => "request_header_fields_too_large",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::CredentialsRejected => "credentials_rejected",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::DependencyUnavailable => "dependency_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Plugin(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// The body of every error answer: `{"status":"error","code","message","error"}`. `error` repeats
/// `message`: Aurora's frontend shows `data.error` (§9.0).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: &'static str,
    /// A stable snake_case code.
    pub code: String,
    /// A human sentence; never a secret or a provider's raw body.
    pub message: String,
    /// The same sentence as `message`, where Aurora's frontend reads it.
    pub error: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: &str) -> Self {
        Self {
            status: "error",
            code: code.to_string(),
            message: message.to_owned(),
            error: message.to_owned(),
        }
    }
}

/// An error answered over HTTP with the contract's error body.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    pub fn user_mismatch() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::UserMismatch,
            "userId in the body does not match the X-User-ID header",
        )
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 64 KiB",
        )
    }
    pub fn rate_limited(msg: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, msg);
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }
    /// The error body as JSON text (for answers built outside actix-web's response types).
    pub fn body_json(&self) -> String {
        serde_json::to_string(&ErrorBody::new(self.code, &self.message))
        .unwrap_or_else(|_| {
            String::from(
                r#"{"status":"error","code":"internal","message":"an internal error occurred","error":"an internal error occurred"}"#,
            )
        })
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }
}

/// `ApiError::$name(msg)`: an error of one status and code with the caller's message.
macro_rules! api_error_constructors {
    ($($name:ident => $status:ident, $code:ident;)*) => {
        impl ApiError {
            $(
                pub fn $name(msg: impl Into<String>) -> Self {
                    Self::new(StatusCode::$status, ErrorCode::$code, msg)
                }
            )*
        }
    };
}

api_error_constructors! {
    invalid_request => BAD_REQUEST, InvalidRequest;
    invalid_state => BAD_REQUEST, InvalidState;
    unauthenticated => UNAUTHORIZED, Unauthenticated;
    forbidden => FORBIDDEN, Forbidden;
    not_found => NOT_FOUND, NotFound;
    conflict => CONFLICT, Conflict;
    credentials_rejected => UNPROCESSABLE_ENTITY, CredentialsRejected;
    provider_unavailable => BAD_GATEWAY, ProviderUnavailable;
    dependency_unavailable => SERVICE_UNAVAILABLE, DependencyUnavailable;
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiError({} {}: {})",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after_secs {
            b.insert_header(("Retry-After", s.to_string()));
        }
        b.json(ErrorBody::new(self.code, &self.message))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                ApiError::dependency_unavailable("the database is unavailable; try again shortly")
            }
            StoreError::Conflict(detail) => {
                tracing::warn!(error = %detail, "database conflict");
                ApiError::conflict("the change conflicts with the current state; try again")
            }
            StoreError::Other(detail) => {
                tracing::error!(error = %detail, "database error");
                ApiError::internal()
            }
        }
    }
}

impl From<SecretStoreError> for ApiError {
    fn from(e: SecretStoreError) -> Self {
        match e {
            SecretStoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "secret store unavailable");
                ApiError::dependency_unavailable(
                    "the secret store is unavailable; try again shortly",
                )
            }
            SecretStoreError::Refused(detail) | SecretStoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "secret store error");
                ApiError::internal()
            }
            SecretStoreError::Conflict(detail) => {
                tracing::warn!(error = %detail, "secret store conflict");
                ApiError::conflict("the credentials changed meanwhile; try again")
            }
        }
    }
}

impl From<ApiError> for ConnectorError {
    fn from(e: ApiError) -> Self {
        ConnectorError::Api(e)
    }
}

impl From<ConnectorError> for ApiError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::InvalidRequest(m) => ApiError::invalid_request(m),
            ConnectorError::CredentialsRejected(m) => ApiError::credentials_rejected(m),
            ConnectorError::ProviderUnavailable(m) => ApiError::provider_unavailable(m),
            ConnectorError::RateLimited {
                message,
                retry_after_secs,
            } => ApiError::rate_limited(message, retry_after_secs),
            ConnectorError::Api(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn error_body_shape() {
        let resp = ApiError::rate_limited("slow down", 7).error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "7");
        let body = to_bytes(resp.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["error"], v["message"], "the frontend reads `error`");
        assert_eq!(v["message"], "slow down");
    }

    #[test]
    fn backend_errors_do_not_leak_details() {
        let e: ApiError = StoreError::Other("SELECT secret FROM x".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("SELECT"));
        let e: ApiError =
            SecretStoreError::Unavailable("connection refused 10.0.0.1".into()).into();
        assert_eq!(e.code, "dependency_unavailable");
        assert!(!e.message.contains("10.0.0.1"));
    }
}
