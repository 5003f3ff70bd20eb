//! Secret material in memory: zeroized on drop, redacted in `Debug`, never `Display`ed or serialized by accident.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{ApiError, ConnectorError};

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

/// A provider's secret document: the struct the secret store keeps for one connection.
///
/// Hold secret fields as `secrecy::SecretString` with `#[serde(with = "serde_secret")]` and derive
/// `Debug`: `SecretString`'s own `Debug` prints `[REDACTED]`, so the document's does too.
///
/// ```
/// use connector_core::secret::{serde_secret, SecretValue, StoredDocument};
/// use secrecy::SecretString;
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// struct Stored {
///     key_id: String,
///     #[serde(with = "serde_secret")]
///     key: SecretString,
/// }
/// impl StoredDocument for Stored {
///     const PROVIDER: &'static str = "Acme";
///     const UNREADABLE: &'static str = "the stored Acme key is unreadable; connect again";
/// }
///
/// let doc = Stored { key_id: "k1".into(), key: SecretString::from("hunter2") };
/// assert!(!format!("{doc:?}").contains("hunter2"));
/// let back = Stored::decode(&doc.encode().unwrap()).unwrap();
/// assert_eq!(back.key_id, "k1");
/// ```
pub trait StoredDocument: Serialize + DeserializeOwned {
    /// The provider's name in log lines (`Scaleway`).
    const PROVIDER: &'static str;
    /// What a caller reads when the stored document does not decode: it says to reconnect.
    const UNREADABLE: &'static str;

    /// Serialize the document for the secret store. A failure is logged without the document.
    fn encode(&self) -> Result<SecretValue, ApiError> {
        SecretValue::encode(self).map_err(|_| {
            tracing::error!(
                provider = Self::PROVIDER,
                "could not encode a secret document"
            );
            ApiError::internal()
        })
    }

    /// Read the stored document. One that does not decode cannot be used again, so the caller must
    /// reconnect. The decode error is not logged in full, since it may quote the document.
    fn decode(value: &SecretValue) -> Result<Self, ConnectorError> {
        value.decode().map_err(|e| {
            tracing::error!(
                provider = Self::PROVIDER,
                category = ?e.classify(),
                line = e.line(),
                column = e.column(),
                "a stored secret document does not decode"
            );
            ConnectorError::CredentialsRejected(Self::UNREADABLE.into())
        })
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

    /// For a borrowed field (`&SecretString`) of a credentials answer:
    /// `#[serde(serialize_with = "serde_secret::serialize_ref")]`.
    pub fn serialize_ref<S: Serializer>(v: &&SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose_secret())
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
