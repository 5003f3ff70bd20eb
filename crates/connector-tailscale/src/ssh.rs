//! The SSH key pair of a Tailscale connection: Ed25519, in OpenSSH format. The private half goes to
//! the secret store only; the public half is shown to the user (`/ssh-setup`) and kept in the row.

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The comment of every public key the gateway creates, so the user can find it in
/// `authorized_keys`.
pub const KEY_COMMENT: &str = "aurora-connectors";

/// A key pair in OpenSSH format.
pub struct SshKeyPair {
    /// `ssh-ed25519 AAAA… aurora-connectors`.
    pub public: String,
    /// `-----BEGIN OPENSSH PRIVATE KEY-----…`, unencrypted (the secret store encrypts it).
    pub private: Zeroizing<String>,
    /// `SHA256:…`.
    pub fingerprint: String,
}

impl std::fmt::Debug for SshKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshKeyPair")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

/// Why a key could not be made or read. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub &'static str);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A new Ed25519 key pair from the operating system's random source.
pub fn generate() -> Result<SshKeyPair, KeyError> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|_| KeyError("could not generate an Ed25519 key"))?;
    key.set_comment(KEY_COMMENT);
    pair_of(&key)
}

/// The key pair of a stored private key (a reconnect keeps the key the user already installed).
pub fn from_private(openssh: &str) -> Result<SshKeyPair, KeyError> {
    let key = PrivateKey::from_openssh(openssh)
        .map_err(|_| KeyError("the stored SSH private key does not decode"))?;
    if key.algorithm() != Algorithm::Ed25519 || key.is_encrypted() {
        return Err(KeyError(
            "the stored SSH private key is not an unencrypted Ed25519 key",
        ));
    }
    pair_of(&key)
}

fn pair_of(key: &PrivateKey) -> Result<SshKeyPair, KeyError> {
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|_| KeyError("could not encode the SSH private key"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|_| KeyError("could not encode the SSH public key"))?;
    Ok(SshKeyPair {
        public,
        private: Zeroizing::new(private.to_string()),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// Whether `s` is an OpenSSH Ed25519 public key line.
pub fn is_public_key(s: &str) -> bool {
    PublicKey::from_openssh(s).is_ok_and(|k| k.algorithm() == Algorithm::Ed25519)
}

/// The shell command that authorizes `public_key` for the current user of a machine, once (running
/// it again adds nothing). The key line holds only base64, a space and [`KEY_COMMENT`], so it is
/// safe inside single quotes.
pub fn install_command(public_key: &str) -> String {
    format!(
        "mkdir -p ~/.ssh && chmod 700 ~/.ssh && touch ~/.ssh/authorized_keys && \
         chmod 600 ~/.ssh/authorized_keys && (grep -qxF '{public_key}' ~/.ssh/authorized_keys || \
         echo '{public_key}' >> ~/.ssh/authorized_keys)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_openssh_ed25519_pairs() {
        let a = generate().unwrap();
        assert!(a.public.starts_with("ssh-ed25519 AAAA"), "{}", a.public);
        assert!(a.public.ends_with(KEY_COMMENT));
        assert!(is_public_key(&a.public));
        assert!(a
            .private
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(a.fingerprint.starts_with("SHA256:"));
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));
        let b = generate().unwrap();
        assert_ne!(a.public, b.public);
        // The stored private key gives back the same pair.
        let again = from_private(&a.private).unwrap();
        assert_eq!(again.public, a.public);
        assert_eq!(again.fingerprint, a.fingerprint);
        assert!(from_private("junk").is_err());
        assert!(!is_public_key("ssh-rsa AAAA"));
    }

    #[test]
    fn command_is_idempotent_and_quoted() {
        let k = generate().unwrap();
        let c = install_command(&k.public);
        assert!(c.contains(&format!("grep -qxF '{}'", k.public)));
        assert!(c.contains(&format!("echo '{}' >> ~/.ssh/authorized_keys", k.public)));
        assert!(!k.public.contains('\''));
    }
}
