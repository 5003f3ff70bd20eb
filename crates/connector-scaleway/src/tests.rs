//! Unit tests of the connector of `connector-scaleway`.

use super::*;
use secrecy::ExposeSecret;

const SECRET: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";

#[test]
fn stored_secret_round_trip_and_redaction() {
    let s = StoredSecret {
        access_key: "SCWABCDEFGHIJKLMNOPQ".into(),
        secret_key: SecretString::from(SECRET),
    };
    assert!(!format!("{s:?}").contains(SECRET));
    let v = s.encode().unwrap();
    let raw: serde_json::Value = v.decode().unwrap();
    assert_eq!(
        raw,
        serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET})
    );
    let back = StoredSecret::decode(&v).unwrap();
    assert_eq!(back.secret_key.expose_secret(), SECRET);
}

#[test]
fn an_unreadable_secret_is_a_refusal_without_its_content() {
    let v = SecretValue::encode(&serde_json::json!({"accessKey": 1, "secretKey": SECRET})).unwrap();
    let e = StoredSecret::decode(&v).unwrap_err();
    assert!(e.is_refusal());
    assert!(!e.to_string().contains(SECRET));
}

#[test]
fn credentials_document_shape() {
    let doc = CredentialsDoc {
        access_key: "SCWABCDEFGHIJKLMNOPQ",
        secret_key: &SecretString::from(SECRET),
        organization_id: "org",
        project_id: None,
    };
    let v: serde_json::Value = SecretValue::encode(&doc).unwrap().decode().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"accessKey": "SCWABCDEFGHIJKLMNOPQ", "secretKey": SECRET,
                               "organizationId": "org", "projectId": null})
    );
}

#[test]
fn openapi_lists_the_three_routes() {
    use utoipa::OpenApi;
    let doc = ScalewayApi::openapi();
    let json = serde_json::to_value(&doc).unwrap();
    for p in [
        "/scaleway_api/scaleway/connect",
        "/scaleway_api/scaleway/projects",
        "/scaleway_api/scaleway/disconnect",
    ] {
        assert!(json["paths"][p].is_object(), "{p} missing");
    }
    for s in [
        "ConnectRequest",
        "ConnectResponse",
        "ProjectsResponse",
        "ProjectView",
    ] {
        assert!(json["components"]["schemas"][s].is_object(), "{s} missing");
    }
}
