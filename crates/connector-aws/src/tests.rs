//! Unit tests of the connector of `connector-aws`.

use super::*;
use secrecy::ExposeSecret;

const EXT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn registers_itself_under_its_id() {
    let plugins = connector_core::plugin::registered().unwrap();
    assert!(plugins.contains_key(PROVIDER_ID));
}

#[test]
fn stored_secret_round_trip_and_redaction() {
    let s = StoredSecret {
        role_arn: "arn:aws:iam::123456789012:role/R".into(),
        read_only_role_arn: None,
        external_id: SecretString::from(EXT),
        region: "us-east-1".into(),
    };
    assert!(!format!("{s:?}").contains(EXT));
    let v = s.encode().unwrap();
    let raw: serde_json::Value = v.decode().unwrap();
    assert_eq!(
        raw,
        serde_json::json!({"roleArn": "arn:aws:iam::123456789012:role/R",
                "readOnlyRoleArn": null, "externalId": EXT, "region": "us-east-1"})
    );
    let back = StoredSecret::decode(&v).unwrap();
    assert_eq!(back.external_id.expose_secret(), EXT);
    assert_eq!(back.role().unwrap().account, "123456789012");
    assert!(back.read_only_role().unwrap().is_none());
}

#[test]
fn an_unreadable_secret_is_a_refusal_without_its_content() {
    let v = SecretValue::encode(&serde_json::json!({"roleArn": 1, "externalId": EXT})).unwrap();
    let e = StoredSecret::decode(&v).unwrap_err();
    assert!(e.is_refusal());
    assert!(!e.to_string().contains(EXT));
    let v = SecretValue::encode(
        &serde_json::json!({"roleArn": "nope", "externalId": EXT, "region": "x"}),
    )
    .unwrap();
    assert!(StoredSecret::decode(&v)
        .unwrap()
        .role()
        .unwrap_err()
        .is_refusal());
}

#[test]
fn credentials_document_shape() {
    let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
        .unwrap()
        .with_timezone(&Utc);
    let doc = CredentialsDoc {
        access_key_id: "ASIAEXAMPLE",
        secret_access_key: &SecretString::from("sk"),
        session_token: &SecretString::from("tok"),
        expiration: rfc3339(t),
    };
    let v: serde_json::Value = SecretValue::encode(&doc).unwrap().decode().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "sk",
                               "sessionToken": "tok", "expiration": "2026-01-02T03:04:05Z"})
    );
}

#[test]
fn partition_of_principals() {
    assert_eq!(
        partition_of_arn("arn:aws-cn:iam::123456789012:root"),
        Some(Partition::AwsCn)
    );
    assert_eq!(
        partition_of_arn("arn:aws:sts::123456789012:user/moto"),
        Some(Partition::Aws)
    );
    assert_eq!(partition_of_arn("nope"), None);
}

#[test]
fn openapi_lists_the_routes() {
    use utoipa::OpenApi;
    let json = serde_json::to_value(AwsApi::openapi()).unwrap();
    for p in [
        "/aws/setup",
        "/aws/setup/rotate-external-id",
        "/aws/auth",
        "/aws/get-credentials",
        "/aws/disconnect",
    ] {
        assert!(json["paths"][p].is_object(), "{p} missing");
    }
    for s in [
        "AuthRequest",
        "AuthResponse",
        "SetupResponse",
        "AccountsResponse",
        "AccountView",
        "DisconnectRequest",
    ] {
        assert!(json["components"]["schemas"][s].is_object(), "{s} missing");
    }
}
