//! Request bodies of the Scaleway routes and their format checks. A message names the field at fault
//! and never repeats the value it was given.

use connector_core::ApiError;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

/// Body of `POST /scaleway_api/scaleway/connect`. Fields are camelCase; the snake_case spelling is
/// accepted too, and unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// The API key's access key id: `SCW` followed by 17 to 20 capital letters or digits.
    #[serde(alias = "access_key")]
    #[schema(example = "SCWABCDEFGHIJKLMNOPQ", pattern = "^SCW[A-Z0-9]{17,20}$")]
    pub access_key: String,
    /// The API key's secret key (a UUID). Kept in the secret store only.
    #[serde(alias = "secret_key", with = "connector_core::secret::serde_secret")]
    #[schema(value_type = String, format = Password)]
    pub secret_key: SecretString,
    /// The organization to connect; by default the organization of the key's user or application.
    /// When given it must be the key's organization.
    #[serde(default, alias = "organization_id")]
    #[schema(format = Uuid)]
    pub organization_id: Option<String>,
    /// The project to use; by default the key's default project, else the organization's first.
    #[serde(default, alias = "project_id")]
    #[schema(format = Uuid)]
    pub project_id: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// Body of the disconnect route: the kit's (unknown fields and blank filters refused).
pub use connector_core::kit::DisconnectRequest;

/// A connect request whose fields passed the format checks. Identifiers are trimmed and, for UUIDs,
/// lowercased (Scaleway writes them in lowercase).
#[derive(Debug)]
pub struct ConnectInput {
    pub access_key: String,
    pub secret_key: SecretString,
    pub organization_id: Option<String>,
    pub project_id: Option<String>,
}

/// `^SCW[A-Z0-9]{17,20}$`.
pub fn is_access_key(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("SCW") else {
        return false;
    };
    (17..=20).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A hyphenated UUID (8-4-4-4-12 hexadecimal digits), in either case.
pub use connector_core::kit::is_uuid;

use connector_core::kit::{present, required, required_secret};

fn optional_uuid(v: Option<&str>, field: &str) -> Result<Option<String>, ApiError> {
    match present(v) {
        None => Ok(None),
        Some(s) if is_uuid(s) => Ok(Some(s.to_ascii_lowercase())),
        Some(_) => Err(ApiError::invalid_request(format!(
            "{field} must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        ))),
    }
}

const ACCESS_KEY_RULE: &str =
    "accessKey must be SCW followed by 17 to 20 capital letters or digits";
const SECRET_KEY_RULE: &str =
    "secretKey must be a UUID: the secret key Scaleway showed when the API key was created";

impl ConnectRequest {
    /// The format checks of §5. Owner binding is the route's job (it needs the caller).
    pub fn check(&self) -> Result<ConnectInput, ApiError> {
        let access_key = required(
            &self.access_key,
            "accessKey",
            is_access_key,
            ACCESS_KEY_RULE,
        )?;
        let secret = required_secret(&self.secret_key, "secretKey", is_uuid, SECRET_KEY_RULE)?;
        let secret_key = SecretString::from(secret.to_ascii_lowercase());
        Ok(ConnectInput {
            access_key: access_key.to_owned(),
            secret_key,
            organization_id: optional_uuid(self.organization_id.as_deref(), "organizationId")?,
            project_id: optional_uuid(self.project_id.as_deref(), "projectId")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const SECRET: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";

    fn req(v: serde_json::Value) -> ConnectRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn access_keys() {
        assert!(is_access_key("SCWABCDEFGHIJKLMNOPQ")); // 17 after SCW
        assert!(is_access_key("SCW0123456789ABCDEFGH")); // 18
        assert!(is_access_key("SCW0123456789ABCDEFGHIJ")); // 20
        assert!(!is_access_key("SCW0123456789ABCDEF")); // 16
        assert!(!is_access_key("SCW0123456789ABCDEFGHIJK")); // 21
        assert!(!is_access_key("SCWabcdefghijklmnopq")); // lowercase
        assert!(!is_access_key("XYZABCDEFGHIJKLMNOPQ"));
        assert!(!is_access_key("SCWABCDEFGHIJKLMNOP-"));
        assert!(!is_access_key("SCWABCDEFGHIJKLMNOPÉ"));
        assert!(!is_access_key(""));
    }

    #[test]
    fn uuids_in_either_case() {
        assert!(is_uuid("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"));
        assert!(is_uuid("0F1E2D3C-4B5A-6978-8695-A4B3C2D1E0F9"));
        assert!(is_uuid("0F1e2d3C-4b5A-6978-8695-a4B3c2D1e0F9"));
        assert!(!is_uuid("0f1e2d3c4b5a69788695a4b3c2d1e0f9"));
        assert!(!is_uuid("{0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9}"));
        assert!(!is_uuid("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0fg"));
        assert!(!is_uuid("0f1e2d3c-4b5a-6978-8695_a4b3c2d1e0f9"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn camel_and_snake_case_and_unknown_fields() {
        let a = req(serde_json::json!({
            "accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET,
            "organizationId": "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "userId": "u1", "extra": 1
        }));
        let b = req(serde_json::json!({
            "access_key": "SCWABCDEFGHIJKLMNOPQ", "secret_key": SECRET,
            "organization_id": "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "project_id": " ", "user_id": "u1"
        }));
        for r in [&a, &b] {
            let c = r.check().unwrap();
            assert_eq!(c.access_key, "SCWABCDEFGHIJKLMNOPQ");
            assert_eq!(c.secret_key.expose_secret(), SECRET);
            assert_eq!(
                c.organization_id.as_deref(),
                Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
            );
            assert_eq!(c.project_id, None);
            assert_eq!(r.user_id.as_deref(), Some("u1"));
        }
    }

    #[test]
    fn uppercase_secret_is_accepted_and_lowercased() {
        let c = req(serde_json::json!({
            "accessKey": " SCWABCDEFGHIJKLMNOPQ ", "secretKey": SECRET.to_ascii_uppercase()
        }))
        .check()
        .unwrap();
        assert_eq!(c.secret_key.expose_secret(), SECRET);
        assert_eq!(c.access_key, "SCWABCDEFGHIJKLMNOPQ");
    }

    #[test]
    fn each_bad_field_is_named_and_no_secret_is_echoed() {
        let bad_secrets = ["not-a-uuid-but-secret-hunter2", "hunter2", ""];
        for s in bad_secrets {
            let e = req(serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": s}))
                .check()
                .unwrap_err();
            assert_eq!(e.code, "invalid_request");
            assert!(e.message.contains("secretKey"), "{}", e.message);
            if !s.is_empty() {
                assert!(!e.message.contains(s), "{}", e.message);
            }
            assert!(!format!("{e:?}").contains("hunter2"));
        }
        let cases = [
            (
                serde_json::json!({"accessKey": "AKIA123", "secretKey": SECRET}),
                "accessKey",
            ),
            (
                serde_json::json!({"accessKey": "", "secretKey": SECRET}),
                "accessKey",
            ),
            (
                serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET, "organizationId": "org"}),
                "organizationId",
            ),
            (
                serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET, "projectId": "p-1"}),
                "projectId",
            ),
        ];
        for (body, field) in cases {
            let e = req(body).check().unwrap_err();
            assert_eq!(e.code, "invalid_request");
            assert!(e.message.contains(field), "{}", e.message);
            assert!(!e.message.contains(SECRET));
        }
    }

    #[test]
    fn debug_of_a_request_hides_the_secret() {
        let r = req(serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET}));
        assert!(!format!("{r:?}").contains(SECRET));
        assert!(!format!("{:?}", r.check().unwrap()).contains(SECRET));
    }

    #[test]
    fn disconnect_body() {
        // Blank filters and unknown fields are refused (a misspelled filter must not remove all).
        assert!(serde_json::from_value::<DisconnectRequest>(
            serde_json::json!({"connection_id": " "})
        )
        .is_err());
        assert!(serde_json::from_value::<DisconnectRequest>(serde_json::json!({"x": 1})).is_err());
        let d: DisconnectRequest =
            serde_json::from_value(serde_json::json!({"connectionId": "abc"})).unwrap();
        assert_eq!(d.connection_id.as_deref(), Some("abc"));
    }
}
