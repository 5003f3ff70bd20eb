//! Configuration values by name (`AURORA_*`, `AWS_*`), read once from the environment and an optional
//! `KEY=VALUE` file, and typed through figment.
//!
//! A crate declares its settings as a serde struct and calls [`Settings::extract`] with the prefix
//! of its variables: field `timeout_secs` of `extract::<T>("AURORA_SCALEWAY_")` reads
//! `AURORA_SCALEWAY_TIMEOUT_SECS`. Numbers and booleans (`true/false/1/0/yes/no/on/off`) are read
//! from their text, an empty value counts as unset, and `#[serde(default)]` gives the defaults.
//! Ranges and units are declared on the field with [`Range`]:
//!
//! ```
//! # use std::time::Duration;
//! # use connector_core::settings::{AtLeast, Range, Settings};
//! #[derive(serde::Deserialize)]
//! #[serde(default)]
//! struct Demo {
//!     #[serde(deserialize_with = "Range::<1, 300>::secs")]
//!     timeout_secs: Duration,
//!     #[serde(deserialize_with = "AtLeast::<1>::int")]
//!     concurrency: usize,
//! }
//! # impl Default for Demo {
//! #     fn default() -> Self { Self { timeout_secs: Duration::from_secs(10), concurrency: 4 } }
//! # }
//! let s = Settings::new().with("AURORA_DEMO_TIMEOUT_SECS", "2m");
//! let d: Demo = s.extract("AURORA_DEMO_").unwrap();
//! assert_eq!((d.timeout_secs, d.concurrency), (Duration::from_secs(120), 4));
//! let e = Settings::new().with("AURORA_DEMO_TIMEOUT_SECS", "0");
//! let e = e.extract::<Demo>("AURORA_DEMO_").err().unwrap();
//! assert_eq!(e, "AURORA_DEMO_TIMEOUT_SECS must be between 1 and 300 seconds");
//! ```
//!
//! Errors name the variable and never carry its value (values may be secrets).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;

/// A snapshot of configuration values. Plugins read their own names (`AURORA_SCALEWAY_API_URL`)
/// from it, so tests can hand a connector its configuration without touching the process environment.
#[derive(Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `AURORA_*` and `AWS_*` variable of the process environment.
    pub fn from_env() -> Self {
        let values = std::env::vars()
            .filter(|(k, _)| k.starts_with("AURORA_") || k.starts_with("AWS_"))
            .collect();
        Self { values }
    }

    /// Parse `KEY=VALUE` lines (blank lines and `#` comments ignored), for a config file.
    pub fn parse_file(text: &str) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
            let v = v.trim().trim_matches('"');
            values.insert(k.trim().to_owned(), v.to_owned());
        }
        Ok(Self { values })
    }

    /// Values of `over` win over `self`'s.
    pub fn overlay(mut self, over: Settings) -> Self {
        self.values.extend(over.values);
        self
    }

    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// The value, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `T` from the variables named `{prefix}{FIELD}` (see the module's documentation); the error
    /// names the first variable at fault.
    pub fn extract<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, String> {
        Figment::from(Prefixed(self, prefix))
            .extract_lossy()
            .map_err(|e| describe(prefix, &e).0)
    }

    /// As [`Settings::extract`], but each variable at fault keeps its default: `T` and every error.
    pub fn extract_lenient<T: DeserializeOwned + Default>(&self, prefix: &str) -> (T, Vec<String>) {
        let mut settings = self.clone();
        let mut errors = Vec::new();
        loop {
            match Figment::from(Prefixed(&settings, prefix)).extract_lossy() {
                Ok(v) => return (v, errors),
                Err(e) => {
                    let (message, var) = describe(prefix, &e);
                    errors.push(message);
                    if var.and_then(|v| settings.values.remove(&v)).is_none() {
                        return (T::default(), errors);
                    }
                }
            }
        }
    }
}

/// The values named `{prefix}…`, keyed by the rest in lower case, each a string (empty ones left out).
struct Prefixed<'a>(&'a Settings, &'a str);

impl Provider for Prefixed<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("settings")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = self
            .0
            .values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(k, v)| {
                let field = k.strip_prefix(self.1)?.to_ascii_lowercase();
                Some((field, Value::from(v.clone())))
            })
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// The message of a figment error, naming the variable (and the variable, when one is at fault).
/// The value is never part of it.
fn describe(prefix: &str, e: &figment::Error) -> (String, Option<String>) {
    let Some(field) = e.path.first() else {
        return ("the settings are malformed".into(), None);
    };
    let var = format!("{prefix}{}", field.to_ascii_uppercase());
    let message = match &e.kind {
        Kind::Message(m) => format!("{var} {m}"),
        Kind::InvalidType(_, expected) if expected == "a boolean" => {
            format!("{var} must be true or false")
        }
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("{var} has a malformed value (expected {expected})")
        }
        _ => format!("{var} has a malformed value"),
    };
    (message, Some(var))
}

/// Bounds of a setting, used as `#[serde(deserialize_with = "Range::<1, 300>::secs")]`: the value
/// must lie within `MIN..=MAX` (in the variable's unit for durations); the error says so.
#[derive(Debug)]
pub struct Range<const MIN: u64, const MAX: u64>;

/// A lower bound only: `#[serde(deserialize_with = "AtLeast::<1>::int")]`.
pub type AtLeast<const MIN: u64> = Range<MIN, { u64::MAX }>;

/// The unit of a duration variable: a plain number counts in it.
#[derive(Clone, Copy)]
enum Unit {
    Millis,
    Secs,
    Days,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
            Unit::Days => "days",
        }
    }

    fn duration(self, n: u64) -> Duration {
        match self {
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
            Unit::Days => Duration::from_secs(n.saturating_mul(86_400)),
        }
    }
}

impl<const MIN: u64, const MAX: u64> Range<MIN, MAX> {
    fn bounds(unit: &str) -> String {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        match (MIN, MAX) {
            (_, u64::MAX) => format!("must be at least {MIN}{unit}"),
            (0, _) => format!("must be at most {MAX}{unit}"),
            _ => format!("must be between {MIN} and {MAX}{unit}"),
        }
    }

    /// A whole number within the bounds.
    pub fn int<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
        let n = u64::deserialize(d)?;
        if !(MIN..=MAX).contains(&n) {
            return Err(de::Error::custom(Self::bounds("")));
        }
        T::try_from(n).map_err(|_| de::Error::custom(Self::bounds("")))
    }

    /// Milliseconds (a plain number), or a duration such as `1500ms` or `2s`.
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Millis)
    }

    /// Seconds (a plain number), or a duration such as `90s` or `5m`.
    pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Secs)
    }

    /// Days (a plain number), or a duration such as `2weeks`.
    pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::duration(d, Unit::Days)
    }

    fn duration<'de, D: Deserializer<'de>>(d: D, unit: Unit) -> Result<Duration, D::Error> {
        let value = d.deserialize_any(DurationVisitor(unit))?;
        if value < unit.duration(MIN) || value > unit.duration(MAX) {
            return Err(de::Error::custom(Self::bounds(unit.name())));
        }
        Ok(value)
    }
}

struct DurationVisitor(Unit);

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number of {} or a duration such as 90s", self.0.name())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Ok(self.0.duration(n))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        match s.parse::<u64>() {
            Ok(n) => Ok(self.0.duration(n)),
            Err(_) => humantime::parse_duration(s.trim()).map_err(|_| {
                E::custom(format!(
                    "must be a number of {} or a duration such as 90s",
                    self.0.name()
                ))
            }),
        }
    }
}

/// The usual settings of a provider's HTTP API, `{prefix}API_URL` (`None`: the provider's own) and
/// `{prefix}TIMEOUT_SECS` (per request, 1 to 300 seconds, default 10):
/// `platform.settings().extract::<ApiSettings>("AURORA_SCALEWAY_")`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    pub api_url: Option<String>,
    #[serde(rename = "timeout_secs", deserialize_with = "Range::<1, 300>::secs")]
    pub timeout: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            api_url: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Values may be secrets (`AURORA_VAULT_TOKEN`): only the names are printed.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_overlay() {
        let file = Settings::parse_file("# c\nAURORA_BIND=0.0.0.0:1\nAURORA_X = \"y\"\n").unwrap();
        assert_eq!(file.get("AURORA_X"), Some("y"));
        let merged = file.overlay(Settings::new().with("AURORA_BIND", "127.0.0.1:2"));
        assert_eq!(merged.get("AURORA_BIND"), Some("127.0.0.1:2"));
        assert!(Settings::parse_file("nokey").is_err());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Demo {
        flag: bool,
        name: String,
        secret: Option<String>,
        #[serde(deserialize_with = "Range::<1, 10>::int")]
        count: u32,
        #[serde(deserialize_with = "Range::<0, 300>::secs")]
        ttl: Duration,
        #[serde(deserialize_with = "AtLeast::<10>::millis")]
        poll_ms: Duration,
        #[serde(deserialize_with = "AtLeast::<0>::days")]
        keep_days: Duration,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self {
                flag: true,
                name: "n".into(),
                secret: None,
                count: 3,
                ttl: Duration::from_secs(30),
                poll_ms: Duration::from_millis(500),
                keep_days: Duration::from_secs(86_400),
            }
        }
    }

    #[test]
    fn extract_reads_prefixed_values_with_defaults() {
        let s = Settings::new();
        assert_eq!(s.extract::<Demo>("AURORA_D_").unwrap(), Demo::default());
        let s = Settings::new()
            .with("AURORA_D_FLAG", "OFF")
            .with("AURORA_D_NAME", "123")
            .with("AURORA_D_SECRET", "")
            .with("AURORA_D_COUNT", "10")
            .with("AURORA_D_TTL", "2m")
            .with("AURORA_D_POLL_MS", "15")
            .with("AURORA_D_KEEP_DAYS", "2")
            .with("AURORA_OTHER_COUNT", "x");
        let d = s.extract::<Demo>("AURORA_D_").unwrap();
        let want = Demo {
            flag: false,
            name: "123".into(),
            secret: None,
            count: 10,
            ttl: Duration::from_secs(120),
            poll_ms: Duration::from_millis(15),
            keep_days: Duration::from_secs(2 * 86_400),
        };
        assert_eq!(d, want);
    }

    #[test]
    fn errors_name_the_variable_and_hide_the_value() {
        for (k, v, want) in [
            (
                "AURORA_D_COUNT",
                "0",
                "AURORA_D_COUNT must be between 1 and 10",
            ),
            (
                "AURORA_D_COUNT",
                "s3cr3t",
                "AURORA_D_COUNT has a malformed value (expected u64)",
            ),
            (
                "AURORA_D_FLAG",
                "s3cr3t",
                "AURORA_D_FLAG must be true or false",
            ),
            (
                "AURORA_D_TTL",
                "301",
                "AURORA_D_TTL must be at most 300 seconds",
            ),
            (
                "AURORA_D_TTL",
                "5h",
                "AURORA_D_TTL must be at most 300 seconds",
            ),
            (
                "AURORA_D_POLL_MS",
                "9",
                "AURORA_D_POLL_MS must be at least 10 milliseconds",
            ),
            (
                "AURORA_D_KEEP_DAYS",
                "s3cr3t",
                "AURORA_D_KEEP_DAYS must be a number of days or a duration such as 90s",
            ),
        ] {
            let e = Settings::new().with(k, v).extract::<Demo>("AURORA_D_");
            assert_eq!(e.unwrap_err(), want);
        }
    }

    #[test]
    fn lenient_extract_keeps_defaults_for_bad_values() {
        let s = Settings::new()
            .with("AURORA_D_COUNT", "0")
            .with("AURORA_D_TTL", "soon")
            .with("AURORA_D_NAME", "kept");
        let (d, errors) = s.extract_lenient::<Demo>("AURORA_D_");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            (d.count, d.ttl, d.name.as_str()),
            (3, Duration::from_secs(30), "kept")
        );
    }

    #[test]
    fn debug_hides_values() {
        let s = Settings::new().with("AURORA_VAULT_TOKEN", "s.secret");
        assert!(!format!("{s:?}").contains("s.secret"));
        assert!(format!("{s:?}").contains("AURORA_VAULT_TOKEN"));
    }
}
