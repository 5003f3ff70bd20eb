//! The provider side of a connect and of credentials on use, without storage: assume the role with
//! the external ID, prove the account with `GetCallerIdentity`, refuse a role that lets anyone in
//! without the external ID (the confused-deputy check). And what each STS failure means for a user.

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use connector_core::{ApiError, ConnectorError};
use secrecy::SecretString;

use crate::config::AwsConfig;
use crate::input::RoleArn;
use crate::sts::{AssumeRequest, Failure, FailureKind, SessionCredentials, StsClient};

/// The error code of a role whose trust policy does not require the external ID.
pub const EXTERNAL_ID_NOT_ENFORCED: &str = "external_id_not_enforced";

/// Which call failed, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// `AssumeRole` of this role (with the external ID).
    AssumeRole(&'a RoleArn),
    /// `AssumeRole` of this role without the external ID (the confused-deputy probe).
    Probe(&'a RoleArn),
    /// `GetCallerIdentity` with the session of this role.
    CallerIdentity(&'a RoleArn),
    /// `GetCallerIdentity` with the gateway's own credentials.
    GatewayIdentity,
}

/// What an STS failure means for the user. Messages name roles, accounts, regions and error codes,
/// never a secret or STS's own message.
pub fn failure_to_error(
    f: &Failure,
    step: Step<'_>,
    cfg: &AwsConfig,
    region: &str,
) -> ConnectorError {
    let n = f.attempts;
    let tries = if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    };
    match (&f.kind, step) {
        (FailureKind::AccessDenied, Step::AssumeRole(role)) => {
            ConnectorError::CredentialsRejected(format!(
                "AWS refused to let Aurora assume {}. Check that the role exists, that its trust policy \
                 allows sts:AssumeRole for the gateway's principal shown by GET /aws/setup, and that its \
                 condition requires sts:ExternalId to equal this workspace's external ID (after rotating \
                 the external ID, update the trust policy and connect again)",
                role.arn
            ))
        }
        (FailureKind::AccessDenied, Step::CallerIdentity(role)) => {
            ConnectorError::CredentialsRejected(format!(
                "AWS refused the temporary credentials of {}; connect the account again",
                role.arn
            ))
        }
        (FailureKind::GatewayCredentials(_), _) | (FailureKind::AccessDenied, Step::GatewayIdentity) => {
            let code = match &f.kind {
                FailureKind::GatewayCredentials(c) => c.as_str(),
                _ => "AccessDenied",
            };
            ConnectorError::Api(ApiError::dependency_unavailable(format!(
                "the gateway's own AWS credentials are missing or were refused by STS ({code}); the \
                 operator must configure them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an \
                 instance or task role) for the partition of the role"
            )))
        }
        (FailureKind::AccessDenied, Step::Probe(role)) => ConnectorError::CredentialsRejected(format!(
            "AWS refused to let Aurora assume {}",
            role.arn
        )),
        (FailureKind::RegionDisabled, _) => ConnectorError::CredentialsRejected(format!(
            "STS is not activated in region {region} for this account: activate it in the IAM console \
             (Account settings, Security Token Service endpoints) or connect with another region"
        )),
        (FailureKind::Validation(code), _) => ConnectorError::CredentialsRejected(format!(
            "STS refused the request ({code}): check that the role's maximum session duration is at least \
             {} seconds",
            cfg.session_seconds
        )),
        (FailureKind::Throttled, _) => ConnectorError::ProviderUnavailable(format!(
            "AWS STS kept throttling the gateway ({tries}); try again shortly"
        )),
        (FailureKind::ServerError(status), _) => ConnectorError::ProviderUnavailable(format!(
            "AWS STS answered with a server error{} ({tries}); try again shortly",
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        )),
        (FailureKind::Unreachable, _) => ConnectorError::ProviderUnavailable(format!(
            "could not reach AWS STS in {region} ({tries}); try again shortly"
        )),
        (FailureKind::Timeout, _) => ConnectorError::ProviderUnavailable(format!(
            "AWS STS did not answer within {} s ({tries}); try again shortly",
            cfg.timeout.as_secs()
        )),
        (FailureKind::Unexpected { code, status }, _) => {
            let what = match (code, status) {
                (Some(c), _) => format!(" ({c})"),
                (None, Some(s)) => format!(" (HTTP {s})"),
                (None, None) => String::new(),
            };
            ConnectorError::ProviderUnavailable(format!(
                "AWS STS answered with an unexpected error{what}; try again later"
            ))
        }
    }
}

/// What a successful check of a role proved.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The account `GetCallerIdentity` named (equal to the ARN's).
    pub account: String,
    /// When the session assumed for the check ends.
    pub expiration: DateTime<Utc>,
}

/// The STS client and the configuration, for one flow.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub sts: &'a StsClient,
    pub cfg: &'a AwsConfig,
}

impl Ctx<'_> {
    /// `AssumeRole` of `role` with the external ID (and the session policies, if any).
    pub async fn assume(
        &self,
        role: &RoleArn,
        external_id: &SecretString,
        session_name: &str,
        region: &str,
        policy_arns: &[String],
    ) -> Result<SessionCredentials, ConnectorError> {
        self.sts
            .assume_role(&AssumeRequest {
                role_arn: &role.arn,
                external_id: Some(external_id),
                session_name,
                duration_seconds: self.cfg.session_seconds,
                policy_arns,
                region,
            })
            .await
            .map_err(|f| failure_to_error(&f, Step::AssumeRole(role), self.cfg, region))
    }

    /// Prove that the gateway can use `role` with this external ID, in the ARN's account, and (when
    /// the check is on) that the role refuses anyone who comes without it.
    pub async fn verify_role(
        &self,
        role: &RoleArn,
        external_id: &SecretString,
        session_name: &str,
        region: &str,
    ) -> Result<Verified, ConnectorError> {
        let session = self
            .assume(role, external_id, session_name, region, &[])
            .await?;
        let identity = self
            .sts
            .caller_identity(region, Some(&session))
            .await
            .map_err(|f| failure_to_error(&f, Step::CallerIdentity(role), self.cfg, region))?;
        if identity.account != role.account {
            tracing::warn!(
                expected = %role.account,
                got = %identity.account,
                "the assumed role's session is in another account than its ARN"
            );
            return Err(ConnectorError::CredentialsRejected(format!(
                "STS says the session of {} belongs to account {}, not to the account in the ARN; check \
                 the role ARN",
                role.arn, identity.account
            )));
        }
        if self.cfg.external_id_check {
            self.check_external_id_enforced(role, session_name, region)
                .await?;
        }
        Ok(Verified {
            account: identity.account,
            expiration: session.expiration,
        })
    }

    /// The confused-deputy check: `AssumeRole` without an external ID must be refused.
    pub async fn check_external_id_enforced(
        &self,
        role: &RoleArn,
        session_name: &str,
        region: &str,
    ) -> Result<(), ConnectorError> {
        let probe = self
            .sts
            .assume_role(&AssumeRequest {
                role_arn: &role.arn,
                external_id: None,
                session_name,
                duration_seconds: self.cfg.session_seconds.max(900),
                policy_arns: &[],
                region,
            })
            .await;
        match probe {
            Ok(_) => {
                tracing::warn!(role = %role.arn, "a role can be assumed without the external ID; refused");
                Err(ConnectorError::Api(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    connector_core::error::ErrorCode::Plugin(EXTERNAL_ID_NOT_ENFORCED),
                    format!(
                        "{} can be assumed without the external ID, so another AWS customer of Aurora \
                         could be let into this account. Add the condition StringEquals \
                         sts:ExternalId (your workspace's external ID, see GET /aws/setup) to the \
                         role's trust policy, then connect again",
                        role.arn
                    ),
                )))
            }
            Err(Failure {
                kind: FailureKind::AccessDenied,
                ..
            }) => Ok(()),
            Err(f) => Err(failure_to_error(&f, Step::Probe(role), self.cfg, region)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn role() -> RoleArn {
        RoleArn::parse("arn:aws:iam::123456789012:role/R", "roleArn").unwrap()
    }

    fn f(kind: FailureKind, attempts: u32) -> Failure {
        Failure { kind, attempts }
    }

    #[test]
    fn access_denied_says_what_to_check() {
        let r = role();
        let cfg = AwsConfig::default();
        let e = failure_to_error(
            &f(FailureKind::AccessDenied, 1),
            Step::AssumeRole(&r),
            &cfg,
            "us-east-1",
        );
        assert!(e.is_refusal());
        let m = e.to_string();
        assert!(
            m.contains(&r.arn) && m.contains("trust policy") && m.contains("sts:ExternalId"),
            "{m}"
        );
        let api: ApiError = e.into();
        assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.code, "credentials_rejected");
    }

    #[test]
    fn passing_faults_are_502_and_count_attempts() {
        let r = role();
        let cfg = AwsConfig {
            timeout: Duration::from_secs(4),
            ..AwsConfig::default()
        };
        for (kind, needle) in [
            (FailureKind::Throttled, "throttling"),
            (FailureKind::ServerError(Some(503)), "HTTP 503"),
            (FailureKind::Unreachable, "could not reach"),
            (FailureKind::Timeout, "within 4 s "),
            (
                FailureKind::Unexpected {
                    code: Some("Odd".into()),
                    status: None,
                },
                "(Odd)",
            ),
        ] {
            let e = failure_to_error(&f(kind, 3), Step::AssumeRole(&r), &cfg, "us-east-1");
            let api: ApiError = e.into();
            assert_eq!(api.status, StatusCode::BAD_GATEWAY, "{needle}");
            assert_eq!(api.code, "provider_unavailable");
            assert!(api.message.contains(needle), "{}", api.message);
            if needle != "(Odd)" {
                assert!(api.message.contains("3 attempts"), "{}", api.message);
            }
        }
    }

    #[test]
    fn gateway_credentials_are_the_operators_problem() {
        let cfg = AwsConfig::default();
        for step in [Step::AssumeRole(&role()), Step::GatewayIdentity] {
            let e = failure_to_error(
                &f(
                    FailureKind::GatewayCredentials("InvalidClientTokenId".into()),
                    1,
                ),
                step,
                &cfg,
                "us-east-1",
            );
            assert!(!e.is_refusal(), "not the user's connection that is refused");
            let api: ApiError = e.into();
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(api.message.contains("InvalidClientTokenId"));
        }
    }

    #[test]
    fn role_configuration_problems_are_refusals() {
        let r = role();
        let cfg = AwsConfig {
            session_seconds: 7200,
            ..AwsConfig::default()
        };
        let e = failure_to_error(
            &f(FailureKind::Validation("ValidationError".into()), 1),
            Step::AssumeRole(&r),
            &cfg,
            "x",
        );
        assert!(e.is_refusal() && e.to_string().contains("7200"));
        let e = failure_to_error(
            &f(FailureKind::RegionDisabled, 1),
            Step::AssumeRole(&r),
            &cfg,
            "ap-east-1",
        );
        assert!(e.is_refusal() && e.to_string().contains("ap-east-1"));
    }
}
