//! Request bodies of the AWS routes and their format checks: role ARNs (§3's pattern), partitions,
//! regions, the external ID. A message names the field at fault and never repeats a secret.

use std::fmt;
use std::sync::LazyLock;

use connector_core::ApiError;
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// §3: `^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`, spelled in ASCII classes (the
/// `regex` crate's `\w` and `\d` are Unicode-aware; IAM names are not).
pub const ROLE_ARN_PATTERN: &str =
    r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$";

static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| Regex::new(ROLE_ARN_PATTERN).unwrap());
static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]{1,2}$").unwrap());
static PRINCIPAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-cn|-us-gov)?:(iam|sts)::[0-9]{12}:(root|[A-Za-z0-9_+=,.@/-]{1,1024})$")
        .unwrap()
});

/// The AWS partitions the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
}

impl Partition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "aws" => Some(Self::Aws),
            "aws-cn" => Some(Self::AwsCn),
            "aws-us-gov" => Some(Self::AwsUsGov),
            _ => None,
        }
    }

    /// The partition of a region name (`cn-north-1` → `aws-cn`); `None` for a malformed name or a
    /// partition the gateway does not serve (the ISO partitions).
    pub fn of_region(region: &str) -> Option<Self> {
        if !REGION.is_match(region) {
            return None;
        }
        Some(if region.starts_with("cn-") {
            Self::AwsCn
        } else if region.starts_with("us-gov-") {
            Self::AwsUsGov
        } else {
            Self::Aws
        })
    }

    /// The region STS is called in when nothing else says.
    pub fn default_region(self) -> &'static str {
        match self {
            Self::Aws => "us-east-1",
            Self::AwsCn => "cn-north-1",
            Self::AwsUsGov => "us-gov-west-1",
        }
    }

    /// The AWS Management Console of the partition.
    pub fn console_base(self) -> &'static str {
        match self {
            Self::Aws => "https://console.aws.amazon.com",
            Self::AwsCn => "https://console.amazonaws.cn",
            Self::AwsUsGov => "https://console.amazonaws-us-gov.com",
        }
    }

    /// An AWS managed policy's ARN in this partition.
    pub fn managed_policy_arn(self, name: &str) -> String {
        format!("arn:{}:iam::aws:policy/{name}", self.as_str())
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role ARN that passed §3's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub arn: String,
    pub partition: Partition,
    pub account: String,
    /// The role's name (the ARN's last path segment).
    pub name: String,
}

impl RoleArn {
    /// Check `raw` (trimmed) against §3's pattern; `field` names the field in the message.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ApiError> {
        let arn = raw.trim();
        let bad = || {
            ApiError::invalid_request(format!(
                "{field} must be an IAM role ARN like arn:aws:iam::123456789012:role/AuroraConnectorRole \
                 (partition aws, aws-cn or aws-us-gov; a 12-digit account id)"
            ))
        };
        if !ROLE_ARN.is_match(arn) {
            return Err(bad());
        }
        let mut parts = arn.splitn(6, ':');
        let (_, partition, _, _, account, resource) = (
            parts.next(),
            parts.next().and_then(Partition::parse).ok_or_else(bad)?,
            parts.next(),
            parts.next(),
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let name = resource.rsplit('/').next().unwrap_or_default();
        // IAM role names are 1-64 characters; a path alone ("role/a/") names no role.
        if name.is_empty() || name.len() > 64 {
            return Err(bad());
        }
        Ok(Self {
            arn: arn.to_owned(),
            partition,
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// An IAM or STS principal ARN (for `AURORA_AWS_PRINCIPAL_ARN`).
pub fn is_principal_arn(s: &str) -> bool {
    PRINCIPAL.is_match(s)
}

/// The principal to name in a trust policy for the identity `GetCallerIdentity` returned: an
/// assumed-role session becomes its role (`arn:aws:iam::A:role/Name`; a role path is not part of the
/// session ARN, so a role with a path needs `AURORA_AWS_PRINCIPAL_ARN`), anything else stays as is.
pub fn trust_principal(caller_arn: &str) -> String {
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    if let [arn, partition, "sts", "", account, resource] = parts[..] {
        if let Some(rest) = resource.strip_prefix("assumed-role/") {
            if let Some((role, _session)) = rest.split_once('/') {
                return format!("{arn}:{partition}:iam::{account}:role/{role}");
            }
        }
    }
    caller_arn.to_owned()
}

/// The STS session name for a user: `aurora-` and the first 16 hex digits of the SHA-256 of the
/// user id. It shows in the account's CloudTrail; the raw user id never does.
pub fn session_name(user_id: &str) -> String {
    let digest = Sha256::digest(user_id.as_bytes());
    format!("aurora-{}", &hex::encode(digest)[..16])
}

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
}

/// Body of `POST /aws/auth`. Fields are camelCase; the snake_case spelling is accepted too, and
/// unknown fields are ignored.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    /// The role Aurora assumes for full use.
    #[serde(default, alias = "role_arn")]
    #[schema(
        example = "arn:aws:iam::123456789012:role/AuroraConnectorRole",
        pattern = r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
    )]
    pub role_arn: Option<String>,
    /// The workspace's external ID, as `GET /aws/setup` shows it.
    #[serde(default, alias = "external_id", deserialize_with = "opt_secret")]
    #[schema(value_type = String, format = Password)]
    pub external_id: Option<SecretString>,
    /// A role of the same account for read-only use (`mode=read_only`).
    #[serde(default, alias = "read_only_role_arn")]
    #[schema(pattern = r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")]
    pub read_only_role_arn: Option<String>,
    /// The region to call STS in (in the role's partition); by default `AWS_REGION` when it is in
    /// the role's partition, else the partition's first region.
    #[serde(default)]
    #[schema(example = "eu-west-1")]
    pub region: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("read_only_role_arn", &self.read_only_role_arn)
            .field("region", &self.region)
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// A connect request whose fields passed the format checks.
pub struct AuthInput {
    pub role: RoleArn,
    pub read_only_role: Option<RoleArn>,
    pub external_id: SecretString,
    /// The region STS is called in, when the request named one (already checked against the
    /// role's partition).
    pub region: Option<String>,
}

impl fmt::Debug for AuthInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInput")
            .field("role", &self.role.arn)
            .field(
                "read_only_role",
                &self.read_only_role.as_ref().map(|r| &r.arn),
            )
            .field("external_id", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

use connector_core::kit::present;

/// The characters STS allows in an external ID (`[\w+=,.@:/-]`, 2 to 1224 of them).
pub fn is_external_id(s: &str) -> bool {
    (2..=1224).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

impl AuthRequest {
    /// The format checks of §3. Owner binding and the external-ID comparison are the route's job.
    pub fn check(&self) -> Result<AuthInput, ApiError> {
        let role_raw = present(self.role_arn.as_deref())
            .ok_or_else(|| ApiError::invalid_request("roleArn is required"))?;
        let role = RoleArn::parse(role_raw, "roleArn")?;
        let read_only_role = match present(self.read_only_role_arn.as_deref()) {
            None => None,
            Some(raw) => {
                let r = RoleArn::parse(raw, "readOnlyRoleArn")?;
                if r.partition != role.partition || r.account != role.account {
                    return Err(ApiError::invalid_request(
                        "readOnlyRoleArn must be a role of the same account and partition as roleArn",
                    ));
                }
                Some(r)
            }
        };
        let external_id = self
            .external_id
            .as_ref()
            .map(|s| s.expose_secret().trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_request(
                    "externalId is required: copy the workspace's external ID from GET /aws/setup",
                )
            })?;
        if !is_external_id(external_id) {
            return Err(ApiError::invalid_request(
                "externalId must be 2 to 1224 letters, digits or _ + = , . @ : / -",
            ));
        }
        let region = match present(self.region.as_deref()) {
            None => None,
            Some(r) => match Partition::of_region(r) {
                None => {
                    return Err(ApiError::invalid_request(
                        "region must be an AWS region name like us-east-1",
                    ))
                }
                Some(p) if p != role.partition => {
                    return Err(ApiError::invalid_request(format!(
                        "region {r} is not in the {} partition of roleArn",
                        role.partition
                    )))
                }
                Some(_) => Some(r.to_owned()),
            },
        };
        Ok(AuthInput {
            role,
            read_only_role,
            external_id: SecretString::from(external_id.to_owned()),
            region,
        })
    }
}

/// Body of `POST /aws/disconnect` (optional; without an account or connection id every AWS
/// connection of the caller is removed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Remove only the connection of this AWS account.
    #[serde(
        default,
        alias = "account_id",
        deserialize_with = "connector_core::http::non_blank"
    )]
    #[schema(example = "123456789012", pattern = r"^\s*[0-9]{12}\s*$")]
    pub account_id: Option<String>,
    /// Remove only this connection.
    #[serde(
        default,
        alias = "connection_id",
        deserialize_with = "connector_core::http::non_blank"
    )]
    #[schema(format = Uuid)]
    pub connection_id: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

impl DisconnectRequest {
    pub fn account_id(&self) -> Option<&str> {
        present(self.account_id.as_deref())
    }
    pub fn connection_id(&self) -> Option<&str> {
        present(self.connection_id.as_deref())
    }
}

/// Body of `POST /aws/setup/rotate-external-id` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateRequest {
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

#[cfg(test)]
mod tests;
