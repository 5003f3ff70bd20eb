//! The AWS provider plugin of Aurora Connectors: the user creates an IAM role that trusts the
//! gateway's principal under an `sts:ExternalId` condition (their workspace's external ID), the
//! gateway assumes it, and internal services get short-lived session credentials on use.
//!
//! Link it into the gateway with `use connector_aws as _;`: the crate registers itself with
//! `connector_core::register_plugin!("aws", build)`.
//!
//! Routes (§3 of the HTTP contract): `GET /aws/setup`, `POST /aws/setup/rotate-external-id`,
//! `POST /aws/auth`, `GET /aws/get-credentials`, `POST /aws/disconnect`; credentials on use through
//! §7 (`{"accessKeyId","secretAccessKey","sessionToken","expiration"}`).
//!
//! Read-only mode: `mode=read_only` assumes the connection's read-only role when it has one, else the
//! main role with the AWS managed policy `ReadOnlyAccess` as a session policy (the session can do only
//! what both the role and `ReadOnlyAccess` allow). `mode=full` assumes the main role as it is.
//!
//! Settings: see [`config`]. The user-facing description is `docs/providers/aws.md`.

pub mod config;
pub mod external_id;
pub mod flow;
mod frontend;
pub mod input;
mod routes;
pub mod setup;
pub mod sts;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use connector_core::secret::{serde_secret, StoredDocument};
use connector_core::{
    ApiError, BuildError, ConnectionId, ConnectionRecord, Connector, ConnectorError,
    CredentialMode, IssuedCredentials, Platform, ProviderId, SecretValue, UserId, Validated,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use config::AwsConfig;
pub use routes::{AccountView, AccountsResponse, AuthResponse, AwsApi, SetupResponse};
pub use sts::StsClient;

use crate::external_id::ExternalIds;
use crate::flow::{failure_to_error, Ctx, Step};
use crate::input::{Partition, RoleArn};

/// The provider id, as registered and as it appears in the routes.
pub const PROVIDER_ID: &str = "aws";

/// What the secret store keeps for an AWS connection: what is needed to assume the role again.
/// The ARNs and the region are not secret (they are in the metadata too); the external ID is.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    pub role_arn: String,
    #[serde(default)]
    pub read_only_role_arn: Option<String>,
    #[serde(with = "serde_secret")]
    pub external_id: SecretString,
    pub region: String,
}

impl StoredDocument for StoredSecret {
    const PROVIDER: &'static str = "AWS";
    const UNREADABLE: &'static str =
        "the stored AWS connection is unreadable; connect the account again";
}

impl StoredSecret {
    fn role(&self) -> Result<RoleArn, ConnectorError> {
        RoleArn::parse(&self.role_arn, "roleArn").map_err(|_| unreadable())
    }

    fn read_only_role(&self) -> Result<Option<RoleArn>, ConnectorError> {
        self.read_only_role_arn
            .as_deref()
            .map(|r| RoleArn::parse(r, "readOnlyRoleArn").map_err(|_| unreadable()))
            .transpose()
    }
}

fn unreadable() -> ConnectorError {
    ConnectorError::CredentialsRejected(
        "the stored AWS connection is unreadable; connect the account again".into(),
    )
}

/// An RFC 3339 UTC timestamp with seconds, as STS writes them (`2026-01-01T00:00:00Z`).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The credentials document of §7: `{"accessKeyId","secretAccessKey","sessionToken","expiration"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsDoc<'a> {
    access_key_id: &'a str,
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    secret_access_key: &'a SecretString,
    #[serde(serialize_with = "serde_secret::serialize_ref")]
    session_token: &'a SecretString,
    expiration: String,
}

/// The AWS connector.
pub struct AwsConnector {
    platform: Platform,
    cfg: AwsConfig,
    sts: StsClient,
    provider: ProviderId,
    external_ids: ExternalIds,
    /// The gateway's principal, found once with `GetCallerIdentity` (failures are not kept).
    principal: tokio::sync::OnceCell<String>,
}

impl fmt::Debug for AwsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConnector")
            .field("cfg", &self.cfg)
            .field("sts", &self.sts)
            .finish()
    }
}

impl AwsConnector {
    pub fn new(platform: Platform, cfg: AwsConfig) -> Self {
        let provider = ProviderId::from_static(PROVIDER_ID);
        Self {
            sts: StsClient::new(&cfg, platform.metrics().clone()),
            external_ids: ExternalIds::new(platform.clone(), provider.clone()),
            platform,
            cfg,
            provider,
            principal: tokio::sync::OnceCell::new(),
        }
    }

    pub fn config(&self) -> &AwsConfig {
        &self.cfg
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            sts: &self.sts,
            cfg: &self.cfg,
        }
    }

    /// The principal that trust policies name: `AURORA_AWS_PRINCIPAL_ARN`, else what
    /// `GetCallerIdentity` says about the gateway's own credentials (asked once, then kept).
    pub async fn principal(&self) -> Result<String, ApiError> {
        if let Some(p) = &self.cfg.principal_arn {
            return Ok(p.clone());
        }
        self.principal
            .get_or_try_init(|| async {
                let region = &self.cfg.region;
                let id = self.sts.caller_identity(region, None).await.map_err(|f| {
                    ApiError::from(failure_to_error(
                        &f,
                        Step::GatewayIdentity,
                        &self.cfg,
                        region,
                    ))
                })?;
                let principal = input::trust_principal(&id.arn);
                tracing::info!(principal = %principal, "found the gateway's AWS principal");
                Ok(principal)
            })
            .await
            .cloned()
    }

    /// One AWS connection of `user`, or 404 (also for another provider's connection).
    pub(crate) async fn owned_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<ConnectionRecord, ApiError> {
        self.platform
            .owned_connection_of(user, id, &self.provider, "AWS")
            .await
    }
}

/// Build the connector from the platform's settings (the plugin's `build`). Makes no network call.
pub fn build(p: &Platform) -> Result<Arc<dyn Connector>, BuildError> {
    let cfg = AwsConfig::from_settings(p.settings()).map_err(BuildError)?;
    if cfg.session_seconds < config::STS_MIN_SESSION_SECONDS {
        tracing::warn!(
            seconds = cfg.session_seconds,
            "{} is below STS's minimum of 900 seconds; only an emulator accepts it",
            config::SESSION_SECONDS_SETTING
        );
    }
    if !cfg.external_id_check {
        tracing::warn!(
            "{} is off: roles that do not require the external ID are accepted (for test peers only)",
            config::EXTERNAL_ID_CHECK_SETTING
        );
    }
    Ok(Arc::new(AwsConnector::new(p.clone(), cfg)))
}

connector_core::register_plugin!("aws", build);

#[async_trait]
impl Connector for AwsConnector {
    connector_core::provider_info!(
        "Amazon Web Services",
        RoleAssumption,
        [MultiAccount, Credentials, ReadOnlyMode, Validate],
        [routes::AUTH_PATH]
    );

    connector_core::connector_routes!(routes::configure, AwsApi, frontend::summary);

    /// Assumes each role of the connection again with its external ID, checks the account with
    /// `GetCallerIdentity` and (when on) that the roles still refuse a caller without the external ID.
    async fn validate(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let session_name = input::session_name(connection.user_id.as_str());
        let ctx = self.ctx();
        let mut expiration = None;
        for role in std::iter::once(stored.role()?).chain(stored.read_only_role()?) {
            let v = ctx
                .verify_role(&role, &stored.external_id, &session_name, &stored.region)
                .await?;
            if v.account != connection.account_id {
                return Err(ConnectorError::CredentialsRejected(format!(
                    "{} now answers as account {}, not {}; connect the account again",
                    role.arn, v.account, connection.account_id
                )));
            }
            expiration.get_or_insert(v.expiration);
        }
        let mut metadata = connection.metadata.clone();
        if let (Some(m), Some(e)) = (metadata.as_object_mut(), expiration) {
            m.insert("expiration".into(), serde_json::Value::String(rfc3339(e)));
        }
        Ok(Validated {
            metadata: Some(metadata),
            expires_at: None,
        })
    }

    /// `AssumeRole` with the stored external ID: the main role for `full`; for `read_only` the
    /// read-only role, or without one the main role restricted by the `ReadOnlyAccess` session
    /// policy. Called by the broker on a cache miss or inside 5 minutes of expiry, once for all
    /// concurrent callers.
    async fn issue_credentials(
        &self,
        connection: &ConnectionRecord,
        secret: &SecretValue,
        mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let stored = StoredSecret::decode(secret)?;
        let main = stored.role()?;
        let (role, policies) = match (mode, stored.read_only_role()?) {
            (CredentialMode::Full, _) => (main, Vec::new()),
            (CredentialMode::ReadOnly, Some(ro)) => (ro, Vec::new()),
            (CredentialMode::ReadOnly, None) => {
                let p = setup::read_only_policy_arns(main.partition);
                (main, p)
            }
        };
        let session_name = input::session_name(connection.user_id.as_str());
        let session = self
            .ctx()
            .assume(
                &role,
                &stored.external_id,
                &session_name,
                &stored.region,
                &policies,
            )
            .await?;
        let doc = CredentialsDoc {
            access_key_id: &session.access_key_id,
            secret_access_key: &session.secret_access_key,
            session_token: &session.session_token,
            expiration: rfc3339(session.expiration),
        };
        connector_core::kit::issued(&doc, Some(session.expiration))
    }

    // `revoke` is the trait's: nothing to undo at AWS. The role belongs to the user (they delete
    // it, or its stack), and the sessions already handed out end on their own within
    // `AURORA_AWS_SESSION_SECONDS`.
}

/// The partition of a principal ARN (`arn:<partition>:…`).
pub(crate) fn partition_of_arn(arn: &str) -> Option<Partition> {
    arn.split(':').nth(1).and_then(Partition::parse)
}

#[cfg(test)]
mod tests;
