//! Domain identifiers and enums: user, connection and provider ids, connection status, credential mode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value could not be parsed into a domain type. Never carries the raw value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);

/// The conversions of a validated string id (`parse` is the type's own): serde through `String`,
/// `as_str`, `Display` as the bare id, and `Debug` as `Name(id)`.
macro_rules! string_id_impls {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

/// The caller's identity, taken from `X-User-ID`: 1-128 characters of `[A-Za-z0-9_.@:-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok_len = !s.is_empty() && s.len() <= 128;
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b':' | b'-'));
        if ok_len && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError(
                "a user id is 1-128 characters of letters, digits and _ . @ : -",
            ))
        }
    }
}

string_id_impls!(UserId);

/// A connection's id: a UUID the gateway creates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}
impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}
impl FromStr for ConnectionId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ParseError("a connection id is a UUID"))
    }
}
impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({})", self.0)
    }
}

/// A provider's id (`scaleway`, `aws`, …): 1-32 characters of `[a-z0-9_]`, starting with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 32
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError(
                "a provider id is 1-32 characters of a-z, 0-9 and _, starting with a letter",
            ))
        }
    }
    /// For ids known at compile time (plugin descriptors). Panics on an invalid id.
    pub fn from_static(s: &'static str) -> Self {
        Self::parse(s).expect("invalid static provider id")
    }
}
string_id_impls!(ProviderId);

/// The lifecycle state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Setup is still running.
    Pending,
    /// Usable; the last check passed.
    Active,
    /// The last check failed for a passing reason (timeout, provider 5xx).
    Degraded,
    /// The provider refused the credentials; the user must reconnect.
    NeedsReconnect,
}

impl ConnectionStatus {
    pub const ALL: [ConnectionStatus; 4] = [
        Self::Pending,
        Self::Active,
        Self::Degraded,
        Self::NeedsReconnect,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Degraded => "degraded",
            Self::NeedsReconnect => "needs_reconnect",
        }
    }
}
impl FromStr for ConnectionStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(ParseError("unknown connection status"))
    }
}
impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the credentials handed to an internal service may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialMode {
    ReadOnly,
    Full,
}
impl CredentialMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::Full => "full",
        }
    }
}
impl FromStr for CredentialMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "read_only" => Ok(Self::ReadOnly),
            "full" => Ok(Self::Full),
            _ => Err(ParseError("mode is read_only or full")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("a:b-c_d.e").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert!(UserId::parse(&"x".repeat(128)).is_ok());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a/b").is_err());
    }

    #[test]
    fn provider_id_rules() {
        assert!(ProviderId::parse("scaleway").is_ok());
        assert!(ProviderId::parse("Scaleway").is_err());
        assert!(ProviderId::parse("1aws").is_err());
    }

    #[test]
    fn status_round_trip() {
        for s in ConnectionStatus::ALL {
            assert_eq!(s.as_str().parse::<ConnectionStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert!("bogus".parse::<ConnectionStatus>().is_err());
    }
}
