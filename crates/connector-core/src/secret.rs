//! Secret material in memory: zeroized on drop, redacted in `Debug`, never `Display`ed or serialized by accident.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

/// A secret document (JSON bytes) as kept in the secret store or handed to a caller.
///
/// It has no `Display` and no `Serialize`; its `Debug` prints `SecretValue(<redacted>)`. The only ways
/// to read it are [`SecretValue::expose_bytes`] and [`SecretValue::decode`], which are easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Serialize a value (typically a provider's secret struct) into a secret document.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(value).map(Self::from_bytes)
    }

    /// Deserialize the document into a provider's secret struct.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Serde helpers so provider secret structs can hold `secrecy::SecretString` fields and still be
/// written to the secret store.
pub mod serde_secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose_secret())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let v = SecretValue::encode(&serde_json::json!({"k": "hunter2"})).unwrap();
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted>)");
        assert!(!format!("{v:#?}").contains("hunter2"));
        let back: serde_json::Value = v.decode().unwrap();
        assert_eq!(back["k"], "hunter2");
    }
}
