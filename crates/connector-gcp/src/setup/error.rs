//! Why a setup run stopped: permanent or transient step errors, from provider, store and Google errors.

use super::*;

/// Why a run stopped before the end.
#[derive(Debug)]
pub(super) enum StepError {
    /// A passing fault: give the lease back, retry after a back-off.
    Transient {
        message: String,
        retry_after: Option<u64>,
    },
    /// The task cannot succeed. `refusal`: Google refused the grant.
    Permanent { message: String, refusal: bool },
    /// Another worker holds the task now, or it was cancelled.
    LeaseLost,
}

impl StepError {
    pub(super) fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            refusal: false,
        }
    }
    pub(super) fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ConnectorError> for StepError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::CredentialsRejected(m) => Self::Permanent {
                message: m,
                refusal: true,
            },
            ConnectorError::InvalidRequest(m) => Self::permanent(m),
            ConnectorError::ProviderUnavailable(m) => Self::transient(m),
            ConnectorError::RateLimited {
                message,
                retry_after_secs,
            } => Self::Transient {
                message,
                retry_after: Some(retry_after_secs),
            },
            ConnectorError::Api(a) if a.status.is_server_error() => Self::transient(a.message),
            ConnectorError::Api(a) => Self::permanent(a.message),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "setup: database error");
        Self::transient("the database was unavailable")
    }
}

impl From<SecretStoreError> for StepError {
    fn from(e: SecretStoreError) -> Self {
        tracing::warn!(error = %e, "setup: secret store error");
        match e {
            SecretStoreError::Unavailable(_) => Self::transient("the secret store was unavailable"),
            _ => Self::Permanent {
                message: "the stored Google authorization could not be read; reconnect the Google account".into(),
                refusal: true,
            },
        }
    }
}

impl From<connector_core::ApiError> for StepError {
    fn from(e: connector_core::ApiError) -> Self {
        ConnectorError::Api(e).into()
    }
}

pub(super) fn google(e: GoogleError, what: &str) -> StepError {
    e.into_connector(what).into()
}
