//! Unit tests of the connector of `connector-gcp`.

use super::*;

#[test]
fn registers_itself_under_its_id() {
    let plugins = connector_core::plugin::registered().unwrap();
    assert!(plugins.contains_key(PROVIDER_ID));
}

#[test]
fn stored_secret_round_trip_and_redaction() {
    let s = StoredSecret {
        refresh_token: SecretString::from("1//refresh-secret"),
        scope: Some("openid".into()),
        sub: "123".into(),
        email: Some("a@example.com".into()),
        obtained_at: Utc::now(),
    };
    assert!(!format!("{s:?}").contains("refresh-secret"));
    let v = s.encode().unwrap();
    let raw: serde_json::Value = v.decode().unwrap();
    assert_eq!(raw["refreshToken"], "1//refresh-secret");
    assert_eq!(raw["sub"], "123");
    let back = StoredSecret::decode(&v).unwrap();
    assert_eq!(back.refresh_token.expose_secret(), "1//refresh-secret");
    let bad = SecretValue::encode(&serde_json::json!({"refreshToken": 1})).unwrap();
    assert!(StoredSecret::decode(&bad).unwrap_err().is_refusal());
}

#[test]
fn credentials_document_shape() {
    let at = Utc::now();
    let tok = SecretString::from("ya29.token");
    let doc = CredentialsDoc {
        access_token: &tok,
        token_type: "Bearer",
        expires_at: at,
    };
    let v: serde_json::Value = SecretValue::encode(&doc).unwrap().decode().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"accessToken": "ya29.token", "tokenType": "Bearer", "expiresAt": at})
    );
}
