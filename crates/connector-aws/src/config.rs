//! The connector's configuration, read once from the platform's settings (never from the process
//! environment directly), so a test can point one gateway at moto and another at a stub.
//!
//! | setting | meaning | default |
//! |---|---|---|
//! | `AWS_REGION` (else `AWS_DEFAULT_REGION`) | the gateway's home region: STS calls for roles of its partition, the console link | `us-east-1` |
//! | `AWS_ENDPOINT_URL_STS` (else `AWS_ENDPOINT_URL`) | an STS endpoint that replaces AWS's regional endpoints (moto, a stub, a VPC endpoint) | AWS's |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | the gateway's own static credentials | the SDK's default chain |
//! | `AURORA_AWS_EXTERNAL_ID_CHECK` | the confused-deputy check of `POST /aws/auth` | `true` |
//! | `AURORA_AWS_SESSION_SECONDS` | lifetime of every assumed-role session | `3600` |
//! | `AURORA_AWS_TIMEOUT_SECS` | timeout of one STS call attempt | `10` |
//! | `AURORA_AWS_MAX_ATTEMPTS` | attempts of one STS call (throttling, 5xx, timeouts are retried) | `3` |
//! | `AURORA_AWS_RETRY_BASE_MS` | base of the jittered exponential back-off between attempts | `200` |
//! | `AURORA_AWS_PRINCIPAL_ARN` | the principal written into trust policies | found with `GetCallerIdentity` |
//! | `AURORA_AWS_TEMPLATE_URL` | where the operator hosts the CloudFormation template (S3), for the quick-create link | unset |

use std::fmt;
use std::time::Duration;

use connector_core::settings::Range;
use connector_core::Settings;
use secrecy::SecretString;
use serde::Deserialize;

use crate::input::{self, Partition};

pub const EXTERNAL_ID_CHECK_SETTING: &str = "AURORA_AWS_EXTERNAL_ID_CHECK";
pub const SESSION_SECONDS_SETTING: &str = "AURORA_AWS_SESSION_SECONDS";
pub const TIMEOUT_SETTING: &str = "AURORA_AWS_TIMEOUT_SECS";
pub const MAX_ATTEMPTS_SETTING: &str = "AURORA_AWS_MAX_ATTEMPTS";
pub const RETRY_BASE_SETTING: &str = "AURORA_AWS_RETRY_BASE_MS";
pub const PRINCIPAL_SETTING: &str = "AURORA_AWS_PRINCIPAL_ARN";
pub const TEMPLATE_URL_SETTING: &str = "AURORA_AWS_TEMPLATE_URL";

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_SESSION_SECONDS: u32 = 3600;
/// The shortest session real STS grants; shorter values are accepted for emulators only.
pub const STS_MIN_SESSION_SECONDS: u32 = 900;
/// The longest session STS grants (and the highest `MaxSessionDuration` of a role).
pub const STS_MAX_SESSION_SECONDS: u32 = 43_200;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(200);

/// The gateway's own static AWS credentials.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Everything the AWS connector reads from the settings: the `AURORA_AWS_*` fields through
/// [`Settings::extract`], the `AWS_*` ones (skipped here) by name.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AwsConfig {
    /// The gateway's home region.
    #[serde(skip)]
    pub region: String,
    /// An STS endpoint that replaces AWS's (moto, a stub, a VPC endpoint).
    #[serde(skip)]
    pub endpoint_url: Option<String>,
    /// `None`: the SDK's default credential chain (environment, profile, web identity, ECS, IMDS).
    #[serde(skip)]
    pub static_credentials: Option<StaticCredentials>,
    pub external_id_check: bool,
    #[serde(deserialize_with = "Range::<1, { STS_MAX_SESSION_SECONDS as u64 }>::int")]
    pub session_seconds: u32,
    #[serde(rename = "timeout_secs", deserialize_with = "Range::<1, 300>::secs")]
    pub timeout: Duration,
    #[serde(deserialize_with = "Range::<1, 10>::int")]
    pub max_attempts: u32,
    #[serde(
        rename = "retry_base_ms",
        deserialize_with = "Range::<1, 10_000>::millis"
    )]
    pub retry_base: Duration,
    pub principal_arn: Option<String>,
    pub template_url: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: DEFAULT_REGION.into(),
            endpoint_url: None,
            static_credentials: None,
            external_id_check: true,
            session_seconds: DEFAULT_SESSION_SECONDS,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            principal_arn: None,
            template_url: None,
        }
    }
}

/// An `http` or `https` URL with a host and no credentials, query or fragment.
fn check_url(key: &str, raw: &str, https_only: bool) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|_| format!("{key} is not a valid URL"))?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => !https_only,
        _ => false,
    };
    if !scheme_ok {
        return Err(if https_only {
            format!("{key} must be an https URL")
        } else {
            format!("{key} must be an http or https URL")
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key} must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{key} must not carry credentials"));
    }
    Ok(raw.trim().to_owned())
}

impl AwsConfig {
    /// Read and check every setting; the error names the setting at fault (never its value).
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        let mut c: Self = s.extract("AURORA_AWS_")?;
        c.region = s
            .get("AWS_REGION")
            .or_else(|| s.get("AWS_DEFAULT_REGION"))
            .unwrap_or(DEFAULT_REGION)
            .trim()
            .to_owned();
        if Partition::of_region(&c.region).is_none() {
            return Err(
                "AWS_REGION must be a region of the aws, aws-cn or aws-us-gov partition (like us-east-1)"
                    .into(),
            );
        }
        let endpoint = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
            .into_iter()
            .find_map(|key| Some((key, s.get(key)?)));
        if let Some((key, raw)) = endpoint {
            let u = check_url(key, raw, false)?;
            let parsed = url::Url::parse(&u).map_err(|_| format!("{key} is not a valid URL"))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!("{key} must not carry a query or a fragment"));
            }
            c.endpoint_url = Some(u);
        }
        c.static_credentials = match (s.get("AWS_ACCESS_KEY_ID"), s.get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(StaticCredentials {
                access_key_id: id.trim().to_owned(),
                secret_access_key: SecretString::from(secret.trim().to_owned()),
                session_token: s
                    .get("AWS_SESSION_TOKEN")
                    .map(|t| SecretString::from(t.trim().to_owned())),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
                )
            }
        };
        c.principal_arn = c.principal_arn.map(|p| p.trim().to_owned());
        if c.principal_arn
            .as_deref()
            .is_some_and(|p| !input::is_principal_arn(p))
        {
            return Err(format!(
                "{PRINCIPAL_SETTING} must be an IAM or STS ARN (arn:aws:iam::123456789012:role/Name)"
            ));
        }
        if let Some(raw) = &c.template_url {
            c.template_url = Some(check_url(TEMPLATE_URL_SETTING, raw, true)?);
        }
        Ok(c)
    }

    /// The gateway's home partition (of `AWS_REGION`).
    pub fn partition(&self) -> Partition {
        Partition::of_region(&self.region).unwrap_or(Partition::Aws)
    }

    /// The region to call STS in for a role of `partition`: the requested one, else the home region
    /// when it is in that partition, else the partition's usual region.
    pub fn region_for(&self, partition: Partition, requested: Option<&str>) -> String {
        if let Some(r) = requested {
            return r.to_owned();
        }
        if self.partition() == partition {
            self.region.clone()
        } else {
            partition.default_region().to_owned()
        }
    }

    /// The role's `MaxSessionDuration` that our sessions need (at least one hour, as STS's default).
    pub fn max_session_duration(&self) -> u32 {
        self.session_seconds.max(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .fold(Settings::new(), |s, (k, v)| s.with(*k, *v))
    }

    #[test]
    fn defaults() {
        let c = AwsConfig::from_settings(&Settings::new()).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert!(c.external_id_check);
        assert_eq!(c.session_seconds, 3600);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_attempts, 3);
        assert!(c.static_credentials.is_none());
        assert!(c.endpoint_url.is_none());
        assert!(c.principal_arn.is_none());
        assert_eq!(c.partition(), Partition::Aws);
    }

    #[test]
    fn every_setting_is_read() {
        let c = AwsConfig::from_settings(&settings(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2/"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("AWS_SESSION_TOKEN", "tok"),
            (EXTERNAL_ID_CHECK_SETTING, "false"),
            (SESSION_SECONDS_SETTING, "120"),
            (TIMEOUT_SETTING, "2"),
            (MAX_ATTEMPTS_SETTING, "5"),
            (RETRY_BASE_SETTING, "7"),
            (PRINCIPAL_SETTING, "arn:aws:iam::123456789012:role/gw"),
            (
                TEMPLATE_URL_SETTING,
                "https://bucket.s3.amazonaws.com/aurora.yaml",
            ),
        ]))
        .unwrap();
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:2/"));
        let creds = c.static_credentials.as_ref().unwrap();
        assert_eq!(creds.access_key_id, "AKIAEXAMPLE");
        assert_eq!(creds.secret_access_key.expose_secret(), "wJalrXUtnFEMI");
        assert_eq!(creds.session_token.as_ref().unwrap().expose_secret(), "tok");
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMI"));
        assert!(!format!("{c:?}").contains("tok\""));
        assert!(!c.external_id_check);
        assert_eq!(c.session_seconds, 120);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.retry_base, Duration::from_millis(7));
        assert!(c.principal_arn.is_some());
        assert!(c.template_url.is_some());
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (k, v) in [
            ("AWS_REGION", "mars-1"),
            ("AWS_ENDPOINT_URL_STS", "ftp://x"),
            (EXTERNAL_ID_CHECK_SETTING, "maybe"),
            (SESSION_SECONDS_SETTING, "0"),
            (SESSION_SECONDS_SETTING, "50000"),
            (TIMEOUT_SETTING, "0"),
            (MAX_ATTEMPTS_SETTING, "11"),
            (RETRY_BASE_SETTING, "x"),
            (PRINCIPAL_SETTING, "not-an-arn"),
            (TEMPLATE_URL_SETTING, "http://bucket/x.yaml"),
        ] {
            let e = AwsConfig::from_settings(&settings(&[(k, v)])).unwrap_err();
            assert!(e.contains(k), "{k}: {e}");
        }
        let e = AwsConfig::from_settings(&settings(&[("AWS_ACCESS_KEY_ID", "AKIA")])).unwrap_err();
        assert!(e.contains("together"));
    }

    #[test]
    fn region_choice_follows_the_partition() {
        let c = AwsConfig::from_settings(&settings(&[("AWS_REGION", "eu-west-1")])).unwrap();
        assert_eq!(c.region_for(Partition::Aws, None), "eu-west-1");
        assert_eq!(
            c.region_for(Partition::Aws, Some("ap-south-1")),
            "ap-south-1"
        );
        assert_eq!(c.region_for(Partition::AwsCn, None), "cn-north-1");
        assert_eq!(c.region_for(Partition::AwsUsGov, None), "us-gov-west-1");
        let c = AwsConfig::from_settings(&settings(&[("AWS_REGION", "cn-northwest-1")])).unwrap();
        assert_eq!(c.partition(), Partition::AwsCn);
        assert_eq!(c.region_for(Partition::AwsCn, None), "cn-northwest-1");
        assert_eq!(c.region_for(Partition::Aws, None), "us-east-1");
    }
}
