//! Authenticated encryption (XChaCha20-Poly1305) used by the embedded secret store and the credential cache.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Format byte written before every sealed blob, so the format can evolve.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("a key is 32 bytes")]
    BadKeyLength,
    #[error("sealed data is malformed or was encrypted with another key")]
    Open,
    #[error("encryption failed")]
    Seal,
}

/// A 256-bit symmetric key. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl SealingKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self(Zeroizing::new(arr)))
    }

    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypt `plaintext`, binding it to `aad` (for example the storage key), so a blob moved to
    /// another key fails to open.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypt a blob made by [`SealingKey::seal`] with the same key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(CryptoError::Open);
        }
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = SealingKey::generate();
        let sealed = k.seal(b"top secret", b"path/a").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(&*k.open(&sealed, b"path/a").unwrap(), b"top secret");
        assert_eq!(k.open(&sealed, b"path/b"), Err(CryptoError::Open));
        let other = SealingKey::generate();
        assert_eq!(other.open(&sealed, b"path/a"), Err(CryptoError::Open));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(k.open(&bad, b"path/a"), Err(CryptoError::Open));
        assert_eq!(k.open(&[1, 2, 3], b""), Err(CryptoError::Open));
    }
}
