//! Configuration values by name (`AURORA_*`), read once from the environment and an optional file.

use std::collections::BTreeMap;
use std::fmt;

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

    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`); `Err` names the key on a malformed value.
    pub fn get_bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(format!("{key} must be true or false")),
        }
    }

    pub fn get_parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{key} has a malformed value")),
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

    #[test]
    fn debug_hides_values() {
        let s = Settings::new().with("AURORA_VAULT_TOKEN", "s.secret");
        assert!(!format!("{s:?}").contains("s.secret"));
        assert!(s.get_bool("AURORA_VAULT_TOKEN", true).is_err());
        assert!(!s.get_bool("MISSING", false).unwrap());
    }
}
