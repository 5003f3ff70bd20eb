//! Unit tests of the connector of `connector-azure`.

use super::*;
use secrecy::ExposeSecret;

const SECRET: &str = "Abc8Q~main-hunter2";
const RO_SECRET: &str = "Xyz8Q~ro-hunter3";

fn stored(ro: bool) -> StoredSecret {
    StoredSecret {
        tenant_id: "t".into(),
        client_id: "main".into(),
        client_secret: SecretString::from(SECRET),
        read_only: ro.then(|| StoredPrincipal {
            client_id: "ro".into(),
            client_secret: SecretString::from(RO_SECRET),
        }),
    }
}

#[test]
fn stored_secret_round_trip_and_redaction() {
    let s = stored(true);
    let text = format!("{s:?}");
    assert!(
        !text.contains(SECRET) && !text.contains(RO_SECRET),
        "{text}"
    );
    let v = s.encode().unwrap();
    let raw: serde_json::Value = v.decode().unwrap();
    assert_eq!(
        raw,
        serde_json::json!({"tenantId": "t", "clientId": "main", "clientSecret": SECRET,
                "readOnly": {"clientId": "ro", "clientSecret": RO_SECRET}})
    );
    let back = StoredSecret::decode(&v).unwrap();
    assert_eq!(
        back.read_only.unwrap().client_secret.expose_secret(),
        RO_SECRET
    );
    let raw: serde_json::Value = stored(false).encode().unwrap().decode().unwrap();
    assert!(raw.get("readOnly").is_none());
}

#[test]
fn principal_per_mode() {
    let s = stored(true);
    assert_eq!(s.principal_for(CredentialMode::ReadOnly).1, "ro");
    assert_eq!(s.principal_for(CredentialMode::Full).1, "main");
    let s = stored(false);
    assert_eq!(s.principal_for(CredentialMode::ReadOnly).1, "main");
    assert_eq!(s.principal_for(CredentialMode::ReadOnly).0, Role::Main);
}

#[test]
fn an_unreadable_secret_is_a_refusal_without_its_content() {
    let v =
        SecretValue::encode(&serde_json::json!({"tenantId": 1, "clientSecret": SECRET})).unwrap();
    let e = StoredSecret::decode(&v).unwrap_err();
    assert!(e.is_refusal());
    assert!(!e.to_string().contains(SECRET));
}

#[test]
fn credentials_document_shape() {
    let at = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let doc = CredentialsDoc {
        access_token: &SecretString::from("tok"),
        token_type: "Bearer",
        expires_at: at,
        tenant_id: "t",
        subscription_id: "s",
    };
    let v: serde_json::Value = SecretValue::encode(&doc).unwrap().decode().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"accessToken": "tok", "tokenType": "Bearer",
                "expiresAt": "2030-01-01T00:00:00Z", "tenantId": "t", "subscriptionId": "s"})
    );
}

#[test]
fn registers_itself_under_its_id() {
    let plugins = connector_core::plugin::registered().unwrap();
    assert!(plugins.contains_key(PROVIDER_ID));
}

#[test]
fn openapi_lists_the_routes() {
    use utoipa::OpenApi;
    let json = serde_json::to_value(AzureApi::openapi()).unwrap();
    for p in ["/azure/login", "/azure/disconnect"] {
        assert!(json["paths"][p].is_object(), "{p} missing");
    }
    for s in ["LoginRequest", "LoginResponse", "ReadOnlyCredentials"] {
        assert!(json["components"]["schemas"][s].is_object(), "{s} missing");
    }
}
