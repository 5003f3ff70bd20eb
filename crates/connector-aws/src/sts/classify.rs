//! Why an STS call failed: AWS error codes and SDK errors classified for the user and the retry loop.

use super::*;

/// Why an STS call failed, as far as the user and the retry loop care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// `AccessDenied`: the role's trust policy does not let the caller in (principal or external ID).
    AccessDenied,
    /// The gateway's own credentials are missing or refused (`InvalidClientTokenId`, …).
    GatewayCredentials(String),
    /// STS is not activated in the region for the account.
    RegionDisabled,
    /// STS refused a parameter (`ValidationError`: the session is longer than the role allows, …).
    Validation(String),
    /// Throttled (`Throttling`, HTTP 429, …). Retried.
    Throttled,
    /// HTTP 5xx or a transient service code. Retried.
    ServerError(Option<u16>),
    /// No connection to STS (refused, reset, DNS). Retried.
    Unreachable,
    /// No answer within the per-attempt timeout. Retried.
    Timeout,
    /// Anything else: an error code and/or status we have no better word for.
    Unexpected {
        code: Option<String>,
        status: Option<u16>,
    },
}

impl FailureKind {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::ServerError(_) | Self::Unreachable | Self::Timeout
        )
    }
}

/// A failed STS call after its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub attempts: u32,
}

pub(super) const ACCESS_DENIED: &[&str] = &["AccessDenied", "AccessDeniedException"];
pub(super) const GATEWAY_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
];
pub(super) const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "LimitExceededException",
];
pub(super) const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
];
pub(super) const VALIDATION: &[&str] = &[
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MalformedPolicyDocument",
    "PackedPolicyTooLarge",
];

/// Classify a service error by its code and HTTP status. Pure, so it is tested on its own.
pub fn classify_code(code: Option<&str>, status: u16) -> FailureKind {
    match code {
        Some(c) if ACCESS_DENIED.contains(&c) => FailureKind::AccessDenied,
        Some(c) if GATEWAY_CREDENTIALS.contains(&c) => FailureKind::GatewayCredentials(c.into()),
        Some("RegionDisabledException" | "RegionDisabled") => FailureKind::RegionDisabled,
        Some(c) if THROTTLING.contains(&c) => FailureKind::Throttled,
        Some(c) if TRANSIENT.contains(&c) => FailureKind::ServerError(Some(status)),
        Some(c) if VALIDATION.contains(&c) => FailureKind::Validation(c.into()),
        _ if status == 429 => FailureKind::Throttled,
        _ if (500..=599).contains(&status) => FailureKind::ServerError(Some(status)),
        _ if status == 403 && code.is_none() => FailureKind::AccessDenied,
        c => FailureKind::Unexpected {
            code: c.map(str::to_owned),
            status: Some(status),
        },
    }
}

/// Whether an error's chain holds a credentials-provider failure (the gateway has no usable
/// credentials).
pub(super) fn has_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(super) fn classify<E>(e: &SdkError<E, HttpResponse>) -> FailureKind
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e {
        SdkError::TimeoutError(_) => FailureKind::Timeout,
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                FailureKind::Timeout
            } else if has_credentials_error(e) {
                FailureKind::GatewayCredentials("NoCredentials".into())
            } else if d.is_io() || d.is_other() {
                FailureKind::Unreachable
            } else {
                FailureKind::Unexpected {
                    code: None,
                    status: None,
                }
            }
        }
        SdkError::ConstructionFailure(_) if has_credentials_error(e) => {
            FailureKind::GatewayCredentials("NoCredentials".into())
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            match status {
                429 => FailureKind::Throttled,
                500..=599 => FailureKind::ServerError(Some(status)),
                _ => FailureKind::Unexpected {
                    code: None,
                    status: Some(status),
                },
            }
        }
        SdkError::ServiceError(s) => classify_code(e.code(), s.raw().status().as_u16()),
        _ => FailureKind::Unexpected {
            code: None,
            status: None,
        },
    }
}
