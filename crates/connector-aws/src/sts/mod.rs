//! The STS client: `AssumeRole` and `GetCallerIdentity` through `aws-sdk-sts`, configured from the
//! settings (region, endpoint, the gateway's credentials), with bounded retries and jittered
//! back-off of our own (the SDK's retries are off, so every attempt is counted and timed here).
//!
//! Failures are classified into [`FailureKind`]s; what they mean for a user is decided by the
//! caller ([`crate::flow`]), which knows which role and which step failed. Nothing here logs or
//! returns a secret or a raw response body: the log lines carry the operation, the error code and
//! the HTTP status only.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{
    BehaviorVersion, Credentials, IdentityCache, Region, SharedCredentialsProvider,
    SharedHttpClient,
};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::PolicyDescriptorType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use connector_core::Metrics;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::config::AwsConfig;

mod classify;
pub use self::classify::*;

/// The provider id in metric labels.
pub const PROVIDER: &str = "aws";
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Temporary credentials of an assumed-role session.
#[derive(Clone)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: DateTime<Utc>,
}

impl fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// What `GetCallerIdentity` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

/// One `AssumeRole` call.
pub struct AssumeRequest<'a> {
    pub role_arn: &'a str,
    /// `None` for the confused-deputy probe.
    pub external_id: Option<&'a SecretString>,
    pub session_name: &'a str,
    pub duration_seconds: u32,
    /// Managed policies applied as session policies (the read-only mode without a read-only role).
    pub policy_arns: &'a [String],
    pub region: &'a str,
}

/// The SDK's default credential chain, built on first use (building it is async, `build` is not).
struct LazyDefaultChain {
    config: ProviderConfig,
    chain: tokio::sync::OnceCell<DefaultCredentialsChain>,
}

impl fmt::Debug for LazyDefaultChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LazyDefaultChain")
    }
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    DefaultCredentialsChain::builder()
                        .configure(self.config.clone())
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// The TLS client of every STS call (rustls with ring; the system's root certificates).
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The STS client of the connector. Cheap to clone.
#[derive(Clone)]
pub struct StsClient {
    base: aws_sdk_sts::Config,
    timeout: Duration,
    max_attempts: u32,
    retry_base: Duration,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl StsClient {
    pub fn new(cfg: &AwsConfig, metrics: Arc<Metrics>) -> Self {
        let http = https_client();
        let credentials = match &cfg.static_credentials {
            Some(c) => SharedCredentialsProvider::new(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose_secret().to_owned(),
                c.session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                None,
                "aurora-settings",
            )),
            None => SharedCredentialsProvider::new(LazyDefaultChain {
                config: ProviderConfig::default()
                    .with_http_client(http.clone())
                    .with_region(Some(Region::new(cfg.region.clone()))),
                chain: tokio::sync::OnceCell::new(),
            }),
        };
        let mut builder = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .http_client(http)
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::lazy().build())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
                    .build(),
            );
        if let Some(ep) = &cfg.endpoint_url {
            builder = builder.endpoint_url(ep.trim_end_matches('/'));
        }
        Self {
            base: builder.build(),
            timeout: cfg.timeout,
            max_attempts: cfg.max_attempts,
            retry_base: cfg.retry_base,
            metrics,
        }
    }

    fn client(&self, region: &str, session: Option<&SessionCredentials>) -> aws_sdk_sts::Client {
        let mut b = self
            .base
            .to_builder()
            .region(Region::new(region.to_owned()));
        if let Some(s) = session {
            // A one-off identity: not worth an entry in the shared identity cache.
            b = b.identity_cache(IdentityCache::no_cache());
            b = b.credentials_provider(Credentials::new(
                s.access_key_id.clone(),
                s.secret_access_key.expose_secret().to_owned(),
                Some(s.session_token.expose_secret().to_owned()),
                None,
                "aurora-session",
            ));
        }
        aws_sdk_sts::Client::from_conf(b.build())
    }

    /// The pause before attempt `next` (2, 3, …): a random point in the upper half of an exponential
    /// ceiling (`base`, `2·base`, `4·base`, … at most 5 s), so retrying callers do not move in step.
    fn backoff(&self, next: u32) -> Duration {
        let ceiling = self
            .retry_base
            .saturating_mul(1u32 << (next.saturating_sub(2)).min(16))
            .min(MAX_BACKOFF);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)))
    }

    /// Run one STS operation with the per-attempt timeout and bounded, jittered retries.
    async fn call<T, E, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let kind = match tokio::time::timeout(self.timeout, f()).await {
                Ok(Ok(v)) => {
                    self.metrics
                        .provider_call(PROVIDER, op, "ok", started.elapsed());
                    return Ok(v);
                }
                Ok(Err(e)) => classify(&e),
                Err(_) => FailureKind::Timeout,
            };
            self.metrics
                .provider_call(PROVIDER, op, "error", started.elapsed());
            let retry = kind.is_transient() && attempt < self.max_attempts;
            tracing::warn!(
                operation = op,
                attempt,
                failure = ?kind,
                retry,
                "STS call failed"
            );
            if !retry {
                return Err(Failure {
                    kind,
                    attempts: attempt,
                });
            }
            tokio::time::sleep(self.backoff(attempt + 1)).await;
        }
    }

    /// `AssumeRole`.
    pub async fn assume_role(
        &self,
        req: &AssumeRequest<'_>,
    ) -> Result<SessionCredentials, Failure> {
        let client = self.client(req.region, None);
        let policies: Option<Vec<PolicyDescriptorType>> = if req.policy_arns.is_empty() {
            None
        } else {
            Some(
                req.policy_arns
                    .iter()
                    .map(|arn| PolicyDescriptorType::builder().arn(arn).build())
                    .collect(),
            )
        };
        let duration = i32::try_from(req.duration_seconds).unwrap_or(i32::MAX);
        let op = if req.external_id.is_some() {
            "assume_role"
        } else {
            "assume_role_without_external_id"
        };
        let out = self
            .call(op, || {
                client
                    .assume_role()
                    .role_arn(req.role_arn)
                    .role_session_name(req.session_name)
                    .duration_seconds(duration)
                    .set_external_id(req.external_id.map(|e| e.expose_secret().to_owned()))
                    .set_policy_arns(policies.clone())
                    .send()
            })
            .await?;
        let creds = out.credentials().ok_or_else(|| malformed("assume_role"))?;
        let expiration = to_chrono(creds.expiration()).ok_or_else(|| malformed("assume_role"))?;
        if creds.access_key_id().is_empty() || creds.session_token().is_empty() {
            return Err(malformed("assume_role"));
        }
        Ok(SessionCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: SecretString::from(creds.secret_access_key().to_owned()),
            session_token: SecretString::from(creds.session_token().to_owned()),
            expiration,
        })
    }

    /// `GetCallerIdentity` with a session's credentials, or with the gateway's own when `None`.
    pub async fn caller_identity(
        &self,
        region: &str,
        session: Option<&SessionCredentials>,
    ) -> Result<CallerIdentity, Failure> {
        let client = self.client(region, session);
        let op = if session.is_some() {
            "get_caller_identity"
        } else {
            "get_gateway_identity"
        };
        let out = self
            .call(op, || client.get_caller_identity().send())
            .await?;
        match (out.account(), out.arn()) {
            (Some(account), Some(arn)) if !account.is_empty() => Ok(CallerIdentity {
                account: account.to_owned(),
                arn: arn.to_owned(),
            }),
            _ => Err(malformed(op)),
        }
    }
}

fn malformed(op: &'static str) -> Failure {
    tracing::warn!(operation = op, "STS answered without the expected fields");
    Failure {
        kind: FailureKind::Unexpected {
            code: Some("IncompleteResponse".into()),
            status: None,
        },
        attempts: 1,
    }
}

#[cfg(test)]
mod tests;
