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

mod query;
pub use self::query::*;

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

#[cfg(test)]
mod tests;
