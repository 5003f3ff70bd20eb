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

mod range;
mod table;
pub use self::range::*;

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
mod tests;
