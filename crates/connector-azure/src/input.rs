//! Request bodies of the Azure routes and their format checks. A message names the field at fault and
//! never repeats the value it was given.

use connector_core::ApiError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

/// The longest client secret accepted (Entra ID secrets are about 40 characters).
pub const MAX_SECRET_LEN: usize = 1024;

/// Body of `POST /azure/login`. Fields are camelCase; the snake_case spelling is accepted too, and
/// unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The Directory (tenant) ID of the app registration: a GUID.
    #[serde(alias = "tenant_id")]
    #[schema(format = Uuid, example = "72f988bf-86f1-41af-91ab-2d7cd011db47")]
    pub tenant_id: String,
    /// The Application (client) ID of the service principal: a GUID.
    #[serde(alias = "client_id")]
    #[schema(format = Uuid)]
    pub client_id: String,
    /// The value of one of the application's client secrets. Kept in the secret store only.
    #[serde(alias = "client_secret", with = "connector_core::secret::serde_secret")]
    #[schema(value_type = String, format = Password)]
    pub client_secret: SecretString,
    /// The subscription to connect (a GUID). It must be visible to the service principal and
    /// `Enabled`. By default: the one named by `subscriptionName`, else the first enabled one.
    #[serde(default, alias = "subscription_id")]
    #[schema(format = Uuid)]
    pub subscription_id: Option<String>,
    /// Used only without `subscriptionId`: the display name of the enabled subscription to connect
    /// (compared without regard to case).
    #[serde(default, alias = "subscription_name")]
    pub subscription_name: Option<String>,
    /// A second service principal, meant to hold read-only roles (for example `Reader`), used for
    /// credentials in `read_only` mode.
    #[serde(default, alias = "read_only_credentials")]
    pub read_only_credentials: Option<ReadOnlyCredentials>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// The read-only service principal of a login. It belongs to the same tenant as the main one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadOnlyCredentials {
    /// The read-only application's client ID: a GUID.
    #[serde(alias = "client_id")]
    #[schema(format = Uuid)]
    pub client_id: String,
    /// One of the read-only application's client secrets. Kept in the secret store only.
    #[serde(alias = "client_secret", with = "connector_core::secret::serde_secret")]
    #[schema(value_type = String, format = Password)]
    pub client_secret: SecretString,
    /// Optional; when given it must be the login's `tenantId`.
    #[serde(default, alias = "tenant_id")]
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
}

/// Body of `POST /azure/disconnect` (optional; without a connection or subscription id every Azure
/// connection of the caller is removed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Remove only this connection.
    #[serde(
        default,
        alias = "connection_id",
        deserialize_with = "connector_core::http::non_blank"
    )]
    #[schema(format = Uuid)]
    pub connection_id: Option<String>,
    /// Remove only the connection of this subscription.
    #[serde(default, alias = "subscription_id")]
    #[schema(format = Uuid)]
    pub subscription_id: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// A service principal's identity and secret, checked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// A login request whose fields passed the format checks. GUIDs are trimmed and lowercased.
#[derive(Debug)]
pub struct LoginInput {
    pub tenant_id: String,
    pub principal: Principal,
    pub subscription_id: Option<String>,
    pub subscription_name: Option<String>,
    pub read_only: Option<Principal>,
}

/// A hyphenated GUID (8-4-4-4-12 hexadecimal digits), in either case.
pub use connector_core::kit::is_uuid as is_guid;

pub(crate) use connector_core::kit::present;

fn guid(v: &str, field: &str) -> Result<String, ApiError> {
    let rule = format!("{field} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    Ok(connector_core::kit::required(v, field, is_guid, &rule)?.to_ascii_lowercase())
}

fn optional_guid(v: Option<&str>, field: &str) -> Result<Option<String>, ApiError> {
    present(v).map(|s| guid(s, field)).transpose()
}

fn secret(v: &SecretString, field: &str) -> Result<SecretString, ApiError> {
    let s = v.expose_secret().trim();
    if s.is_empty() {
        return Err(ApiError::invalid_request(format!("{field} is required")));
    }
    if s.len() > MAX_SECRET_LEN {
        return Err(ApiError::invalid_request(format!(
            "{field} is longer than {MAX_SECRET_LEN} characters; it is not a client secret"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(format!(
            "{field} contains control characters; copy the secret's Value again"
        )));
    }
    Ok(SecretString::from(s.to_owned()))
}

impl LoginRequest {
    /// The format checks of §4. Owner binding is the route's job (it needs the caller).
    pub fn check(&self) -> Result<LoginInput, ApiError> {
        let tenant_id = guid(&self.tenant_id, "tenantId")?;
        let client_id = guid(&self.client_id, "clientId")?;
        let client_secret = secret(&self.client_secret, "clientSecret")?;
        let subscription_id = optional_guid(self.subscription_id.as_deref(), "subscriptionId")?;
        let subscription_name = present(self.subscription_name.as_deref()).map(str::to_owned);
        if subscription_name.as_ref().is_some_and(|n| n.len() > 256) {
            return Err(ApiError::invalid_request(
                "subscriptionName is longer than 256 characters",
            ));
        }
        let read_only = match &self.read_only_credentials {
            None => None,
            Some(ro) => {
                let ro_client = guid(&ro.client_id, "readOnlyCredentials.clientId")?;
                let ro_secret = secret(&ro.client_secret, "readOnlyCredentials.clientSecret")?;
                if let Some(t) =
                    optional_guid(ro.tenant_id.as_deref(), "readOnlyCredentials.tenantId")?
                {
                    if t != tenant_id {
                        return Err(ApiError::invalid_request(
                            "readOnlyCredentials.tenantId must be the same tenant as tenantId",
                        ));
                    }
                }
                Some(Principal {
                    client_id: ro_client,
                    client_secret: ro_secret,
                })
            }
        };
        Ok(LoginInput {
            tenant_id,
            principal: Principal {
                client_id,
                client_secret,
            },
            subscription_id,
            subscription_name,
            read_only,
        })
    }
}

impl DisconnectRequest {
    /// The connection id, if one was given (blank counts as none).
    pub fn connection_id(&self) -> Option<&str> {
        present(self.connection_id.as_deref())
    }

    /// The subscription id, checked, if one was given.
    pub fn subscription_id(&self) -> Result<Option<String>, ApiError> {
        optional_guid(self.subscription_id.as_deref(), "subscriptionId")
    }
}

/// The kit's disconnect route reads this body: a subscription names the connection's account.
impl connector_core::kit::DisconnectBody for DisconnectRequest {
    fn connection_id(&self) -> Option<&str> {
        DisconnectRequest::connection_id(self)
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn account_id(&self) -> Result<Option<String>, ApiError> {
        self.subscription_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
    const CLIENT: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
    const SECRET: &str = "Abc8Q~hunter2.secret-value_x";

    fn req(v: serde_json::Value) -> LoginRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn guids() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_guid(TENANT));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(!is_guid("{72f988bf-86f1-41af-91ab-2d7cd011db47}"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4g"));
        assert!(!is_guid("contoso.onmicrosoft.com"));
        assert!(!is_guid(""));
    }

    #[test]
    fn camel_and_snake_case_and_unknown_fields() {
        let a = req(serde_json::json!({
            "tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
            "subscriptionId": " AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE ", "userId": "u1", "extra": 1,
            "readOnlyCredentials": {"clientId": CLIENT, "clientSecret": "ro-secret"}
        }));
        let b = req(serde_json::json!({
            "tenant_id": TENANT, "client_id": CLIENT, "client_secret": format!(" {SECRET}\n"),
            "subscription_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "user_id": "u1",
            "read_only_credentials": {"client_id": CLIENT, "client_secret": "ro-secret", "tenant_id": TENANT}
        }));
        for r in [&a, &b] {
            let c = r.check().unwrap();
            assert_eq!(c.tenant_id, TENANT.to_ascii_lowercase());
            assert_eq!(c.principal.client_id, CLIENT);
            assert_eq!(c.principal.client_secret.expose_secret(), SECRET);
            assert_eq!(
                c.subscription_id.as_deref(),
                Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
            );
            let ro = c.read_only.unwrap();
            assert_eq!(ro.client_secret.expose_secret(), "ro-secret");
            assert_eq!(r.user_id.as_deref(), Some("u1"));
        }
    }

    #[test]
    fn each_bad_field_is_named_and_no_secret_is_echoed() {
        let cases = [
            (
                serde_json::json!({"tenantId": "contoso", "clientId": CLIENT, "clientSecret": SECRET}),
                "tenantId",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": "app", "clientSecret": SECRET}),
                "clientId",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": "  "}),
                "clientSecret",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET, "subscriptionId": "sub-1"}),
                "subscriptionId",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
                    "readOnlyCredentials": {"clientId": "x", "clientSecret": SECRET}}),
                "readOnlyCredentials.clientId",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
                    "readOnlyCredentials": {"clientId": CLIENT, "clientSecret": ""}}),
                "readOnlyCredentials.clientSecret",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
                    "readOnlyCredentials": {"clientId": CLIENT, "clientSecret": SECRET,
                        "tenantId": "11111111-2222-3333-4444-555555555555"}}),
                "readOnlyCredentials.tenantId",
            ),
            (
                serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": "a\u{7}b-hunter2"}),
                "clientSecret",
            ),
        ];
        for (body, field) in cases {
            let e = req(body).check().unwrap_err();
            assert_eq!(e.code, "invalid_request");
            assert!(e.message.contains(field), "{}", e.message);
            assert!(!e.message.contains(SECRET) && !e.message.contains("hunter2"));
        }
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        let e =
            req(serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": long}))
                .check()
                .unwrap_err();
        assert!(e.message.contains("clientSecret"));
    }

    #[test]
    fn debug_hides_secrets() {
        let r = req(
            serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
            "readOnlyCredentials": {"clientId": CLIENT, "clientSecret": "ro-hunter2"}}),
        );
        let text = format!("{r:?} {:?}", r.check().unwrap());
        assert!(
            !text.contains(SECRET) && !text.contains("ro-hunter2"),
            "{text}"
        );
    }

    #[test]
    fn disconnect_body() {
        // Blank filters and unknown fields are refused (a misspelled filter must not remove all).
        assert!(serde_json::from_value::<DisconnectRequest>(
            serde_json::json!({"connection_id": " "})
        )
        .is_err());
        assert!(serde_json::from_value::<DisconnectRequest>(serde_json::json!({"x": 1})).is_err());
        let d: DisconnectRequest = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(d.connection_id(), None);
        assert_eq!(d.subscription_id().unwrap(), None);
        let d: DisconnectRequest =
            serde_json::from_value(serde_json::json!({"subscriptionId": "nope"})).unwrap();
        assert!(d.subscription_id().is_err());
    }
}
