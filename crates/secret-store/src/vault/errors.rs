//! Vault's answers turned into `SecretStoreError`s that name the path and never the secret.

use super::*;

/// Decode a stored document's value.
pub(super) fn decode(path: &SecretPath, doc: DocIn) -> Result<SecretValue, SecretStoreError> {
    let encoded = Zeroizing::new(doc.v);
    let bytes = B64.decode(encoded.as_bytes()).map_err(|_| {
        SecretStoreError::Corrupt(format!("{path}: the stored value is not base64"))
    })?;
    Ok(SecretValue::from_bytes(bytes))
}

/// Whether KV v2 refused a write because its check-and-set version did not match.
pub(super) fn is_cas_mismatch(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 400, errors }
        if errors.iter().any(|m| m.contains("check-and-set")))
}

/// Map a vaultrs error. `what` names the operation (never a value). `Ok(())` means "not found".
pub(super) fn map_err(what: &str, e: ClientError) -> Result<(), SecretStoreError> {
    use rustify_errors::ServerOrTransport;
    match e {
        ClientError::APIError { code, errors } => match code {
            // KV answers a bare 404 (`{"errors":[]}`) for an absent secret or an empty folder; a 404
            // with words is a missing mount or route ("no handler for route").
            404 if errors.is_empty() => Ok(()),
            404 => Err(SecretStoreError::Refused(format!(
                "{what}: not found (404): {}",
                words(&errors)
            ))),
            401 | 403 => Err(SecretStoreError::Refused(format!(
                "{what}: permission denied ({code}): {}",
                words(&errors)
            ))),
            429 | 500..=599 => Err(SecretStoreError::Unavailable(format!(
                "{what}: server error ({code}): {}",
                words(&errors)
            ))),
            _ => Err(SecretStoreError::Refused(format!(
                "{what}: refused ({code}): {}",
                words(&errors)
            ))),
        },
        ClientError::RestClientError { source } => match rustify_errors::classify(&source) {
            ServerOrTransport::Status(404) => Ok(()),
            ServerOrTransport::Status(code @ (401 | 403)) => Err(SecretStoreError::Refused(
                format!("{what}: permission denied ({code})"),
            )),
            ServerOrTransport::Status(code @ (429 | 500..=599)) => Err(
                SecretStoreError::Unavailable(format!("{what}: server error ({code})")),
            ),
            ServerOrTransport::Status(code) => Err(SecretStoreError::Refused(format!(
                "{what}: refused ({code})"
            ))),
            ServerOrTransport::Transport(detail) => Err(SecretStoreError::Unavailable(format!(
                "{what}: cannot reach the server: {detail}"
            ))),
            ServerOrTransport::Decode => Err(SecretStoreError::Corrupt(format!(
                "{what}: the server's answer does not decode"
            ))),
            ServerOrTransport::Other(detail) => {
                Err(SecretStoreError::Refused(format!("{what}: {detail}")))
            }
        },
        ClientError::JsonParseError { .. }
        | ClientError::ResponseEmptyError
        | ClientError::ResponseDataEmptyError
        | ClientError::ResponseWrapError => Err(SecretStoreError::Corrupt(format!(
            "{what}: the server's answer does not decode"
        ))),
        // Display of the remaining variants holds no response content.
        other => Err(SecretStoreError::Refused(format!("{what}: {other}"))),
    }
}

/// Vault's error words, bounded (they name paths and reasons, never values).
pub(super) fn words(errors: &[String]) -> String {
    let mut s = errors.join("; ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    if s.is_empty() {
        s.push_str("no details");
    }
    s
}

/// Classification of rustify's transport errors without printing any response body they may carry.
mod rustify_errors {

    pub enum ServerOrTransport {
        Status(u16),
        Transport(String),
        Decode,
        Other(String),
    }

    pub fn classify(e: &rustify::errors::ClientError) -> ServerOrTransport {
        use rustify::errors::ClientError as R;
        match e {
            R::ServerResponseError { code, .. } => ServerOrTransport::Status(*code),
            R::RequestError { source, .. } | R::ResponseError { source } => {
                ServerOrTransport::Transport(transport_detail(source.as_ref()))
            }
            R::ResponseConversionError { .. } | R::ResponseParseError { .. } => {
                ServerOrTransport::Decode
            }
            other => ServerOrTransport::Other(other.to_string()),
        }
    }

    /// "connection refused", "timed out", … from the error chain (reqwest/hyper/io), never a body.
    fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
        let mut kinds = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<reqwest::Error>() {
                if r.is_timeout() {
                    kinds.push("timed out".to_owned());
                } else if r.is_connect() {
                    kinds.push("connect error".to_owned());
                }
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                kinds.push(io.kind().to_string());
            }
            cur = err.source();
        }
        kinds.dedup();
        if kinds.is_empty() {
            "request failed".to_owned()
        } else {
            kinds.join(": ")
        }
    }
}
