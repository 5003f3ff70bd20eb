//! Request bodies of the Tailscale routes and their format checks. A message names the field at
//! fault and never repeats the value it was given.

use connector_core::ApiError;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

/// The tailnet of the OAuth client, in the API's spelling.
pub const DEFAULT_TAILNET: &str = "-";
/// The longest client secret accepted (`tskey-client-…` secrets are under 100 characters).
pub const MAX_SECRET_LEN: usize = 512;

/// Body of `POST /tailscale_api/tailscale/connect`. Fields are camelCase; the snake_case spelling is
/// accepted too, and unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// The OAuth client's id (for example `k123456CNTRL`).
    #[serde(alias = "client_id")]
    #[schema(example = "k123456CNTRL")]
    pub client_id: String,
    /// The OAuth client's secret (`tskey-client-…`). Kept in the secret store only.
    #[serde(alias = "client_secret", with = "connector_core::secret::serde_secret")]
    #[schema(value_type = String, format = Password)]
    pub client_secret: SecretString,
    /// The tailnet: its organization name or tailnet ID; `-` (the default) is the OAuth client's own
    /// tailnet.
    #[serde(default)]
    #[schema(example = "-")]
    pub tailnet: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// Body of the disconnect route: the kit's (unknown fields and blank filters refused).
pub use connector_core::kit::DisconnectRequest;

/// A connect request whose fields passed the format checks.
#[derive(Debug)]
pub struct ConnectInput {
    pub client_id: String,
    pub client_secret: SecretString,
    /// As the API path takes it: `-` or a tailnet name.
    pub tailnet: String,
}

/// An OAuth client id: 1-128 letters, digits, `_` or `-`.
pub fn is_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A tailnet: `-`, or 1-253 characters of letters, digits and `. _ - @ +` (an organization name is a
/// domain, an e-mail address or a GitHub organization such as `example.github`; a tailnet ID such
/// as `T1234CNTRL`).
pub fn is_tailnet(s: &str) -> bool {
    s == DEFAULT_TAILNET
        || (!s.is_empty()
            && s.len() <= 253
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+')
            })
            && !s.starts_with('.'))
}

use connector_core::kit::{present, required, required_secret};

/// A client secret as it can be: at most [`MAX_SECRET_LEN`] characters, no control character or space.
fn is_secret(s: &str) -> bool {
    s.len() <= MAX_SECRET_LEN && !s.chars().any(|c| c.is_control() || c == ' ')
}

const CLIENT_ID_RULE: &str =
    "clientId must be 1-128 letters, digits, _ or - (the OAuth client's id, such as k123456CNTRL)";
const SECRET_RULE: &str =
    "clientSecret is malformed: it is the OAuth client's secret, which starts with tskey-client-";

impl ConnectRequest {
    /// The format checks of §6. Owner binding is the route's job (it needs the caller).
    pub fn check(&self) -> Result<ConnectInput, ApiError> {
        let client_id = required(&self.client_id, "clientId", is_client_id, CLIENT_ID_RULE)?;
        let secret = required_secret(&self.client_secret, "clientSecret", is_secret, SECRET_RULE)?;
        let tailnet = present(self.tailnet.as_deref()).unwrap_or(DEFAULT_TAILNET);
        if !is_tailnet(tailnet) {
            return Err(ApiError::invalid_request(
                "tailnet must be - (the OAuth client's tailnet), the tailnet's organization name or its tailnet ID",
            ));
        }
        Ok(ConnectInput {
            client_id: client_id.to_owned(),
            client_secret: SecretString::from(secret.to_owned()),
            tailnet: tailnet.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
