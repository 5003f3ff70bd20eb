//! Unit tests of the request input checks of `connector-aws`.

use super::*;

const EXT: &str = "0123456789abcdef0123456789abcdef01234567";

fn req(v: serde_json::Value) -> AuthRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn role_arns_follow_the_contract_pattern() {
    for ok in [
        "arn:aws:iam::123456789012:role/AuroraConnectorRole",
        "arn:aws-cn:iam::123456789012:role/a",
        "arn:aws-us-gov:iam::123456789012:role/path/to/Role_+=,.@-",
        " arn:aws:iam::123456789012:role/x ",
    ] {
        let r = RoleArn::parse(ok, "roleArn").unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(r.account, "123456789012");
        assert_eq!(r.arn, ok.trim());
    }
    let r = RoleArn::parse("arn:aws-us-gov:iam::123456789012:role/p/q/Name", "x").unwrap();
    assert_eq!(r.partition, Partition::AwsUsGov);
    assert_eq!(r.name, "Name");
    for bad in [
        "",
        "arn:aws:iam::12345678901:role/x",           // 11 digits
        "arn:aws:iam::1234567890123:role/x",         // 13 digits
        "arn:aws-iso:iam::123456789012:role/x",      // partition
        "arn:aws:iam::123456789012:user/x",          // not a role
        "arn:aws:sts::123456789012:role/x",          // service
        "arn:aws:iam:us-east-1:123456789012:role/x", // region
        "arn:aws:iam::123456789012:role/",           // empty name
        "arn:aws:iam::123456789012:role/a/",         // a path alone
        "arn:aws:iam::123456789012:role/a b",        // space
        "arn:aws:iam::123456789012:role/é",          // non-ASCII \w
        "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x",          // non-ASCII \d
        "arn:aws:iam::123456789012:role/x\ny",
    ] {
        let e = RoleArn::parse(bad, "roleArn").unwrap_err();
        assert_eq!(e.code, "invalid_request", "{bad}");
        assert!(e.message.contains("roleArn"));
    }
    let long = format!("arn:aws:iam::123456789012:role/{}", "a".repeat(65));
    assert!(RoleArn::parse(&long, "roleArn").is_err());
    let path = format!("arn:aws:iam::123456789012:role/{}/x", "p".repeat(511));
    assert!(
        RoleArn::parse(&path, "roleArn").is_err(),
        "above 512 characters"
    );
}

#[test]
fn partitions_and_regions() {
    assert_eq!(Partition::of_region("us-east-1"), Some(Partition::Aws));
    assert_eq!(
        Partition::of_region("ap-southeast-12"),
        Some(Partition::Aws)
    );
    assert_eq!(
        Partition::of_region("cn-northwest-1"),
        Some(Partition::AwsCn)
    );
    assert_eq!(
        Partition::of_region("us-gov-east-1"),
        Some(Partition::AwsUsGov)
    );
    assert_eq!(Partition::of_region("us-iso-east-1"), None);
    assert_eq!(Partition::of_region("US-EAST-1"), None);
    assert_eq!(Partition::of_region("useast1"), None);
    assert_eq!(
        Partition::AwsCn.managed_policy_arn("ReadOnlyAccess"),
        "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"
    );
    assert_eq!(
        Partition::AwsUsGov.console_base(),
        "https://console.amazonaws-us-gov.com"
    );
}

#[test]
fn principals() {
    assert_eq!(
        trust_principal("arn:aws:sts::123456789012:assumed-role/Gateway/i-0abc"),
        "arn:aws:iam::123456789012:role/Gateway"
    );
    assert_eq!(
        trust_principal("arn:aws-cn:sts::123456789012:assumed-role/G/s"),
        "arn:aws-cn:iam::123456789012:role/G"
    );
    assert_eq!(
        trust_principal("arn:aws:iam::123456789012:user/gw"),
        "arn:aws:iam::123456789012:user/gw"
    );
    assert!(is_principal_arn("arn:aws:iam::123456789012:root"));
    assert!(is_principal_arn("arn:aws:iam::123456789012:role/a/b"));
    assert!(is_principal_arn("arn:aws:sts::123456789012:user/moto"));
    assert!(!is_principal_arn("arn:aws:s3:::bucket"));
    assert!(!is_principal_arn("*"));
}

#[test]
fn session_names_hide_the_user() {
    let s = session_name("alice@example.com");
    assert!(s.starts_with("aurora-"));
    assert_eq!(s.len(), 7 + 16);
    assert!(!s.contains("alice"));
    assert_eq!(s, session_name("alice@example.com"));
    assert_ne!(s, session_name("bob@example.com"));
    assert!(s[7..].bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn auth_body_camel_and_snake_case() {
    let a = req(serde_json::json!({
        "roleArn": "arn:aws:iam::123456789012:role/R", "externalId": EXT,
        "readOnlyRoleArn": "arn:aws:iam::123456789012:role/RO", "region": "eu-west-1",
        "userId": "u1", "unknown": true
    }));
    let b = req(serde_json::json!({
        "role_arn": "arn:aws:iam::123456789012:role/R", "external_id": EXT,
        "read_only_role_arn": "arn:aws:iam::123456789012:role/RO", "region": "eu-west-1",
        "user_id": "u1"
    }));
    for r in [a, b] {
        let c = r.check().unwrap();
        assert_eq!(c.role.name, "R");
        assert_eq!(c.read_only_role.unwrap().name, "RO");
        assert_eq!(c.external_id.expose_secret(), EXT);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.user_id.as_deref(), Some("u1"));
        assert!(!format!("{r:?}").contains(EXT));
    }
}

#[test]
fn each_bad_field_is_named() {
    let role = "arn:aws:iam::123456789012:role/R";
    let cases = [
        (serde_json::json!({"externalId": EXT}), "roleArn"),
        (
            serde_json::json!({"roleArn": " ", "externalId": EXT}),
            "roleArn",
        ),
        (
            serde_json::json!({"roleArn": "arn:aws:iam::1:role/R", "externalId": EXT}),
            "roleArn",
        ),
        (serde_json::json!({"roleArn": role}), "externalId"),
        (
            serde_json::json!({"roleArn": role, "externalId": "a b c"}),
            "externalId",
        ),
        (
            serde_json::json!({"roleArn": role, "externalId": EXT, "readOnlyRoleArn": "x"}),
            "readOnlyRoleArn",
        ),
        (
            serde_json::json!({"roleArn": role, "externalId": EXT,
                "readOnlyRoleArn": "arn:aws:iam::210987654321:role/RO"}),
            "readOnlyRoleArn",
        ),
        (
            serde_json::json!({"roleArn": role, "externalId": EXT,
                "readOnlyRoleArn": "arn:aws-cn:iam::123456789012:role/RO"}),
            "readOnlyRoleArn",
        ),
        (
            serde_json::json!({"roleArn": role, "externalId": EXT, "region": "moon-1"}),
            "region",
        ),
        (
            serde_json::json!({"roleArn": role, "externalId": EXT, "region": "cn-north-1"}),
            "region",
        ),
    ];
    for (body, field) in cases {
        let e = req(body.clone()).check().unwrap_err();
        assert_eq!(e.code, "invalid_request", "{body}");
        assert!(e.message.contains(field), "{body}: {}", e.message);
        assert!(!e.message.contains(EXT));
    }
    // Blank optional fields count as absent.
    let c = req(serde_json::json!({"roleArn": role, "externalId": EXT,
            "readOnlyRoleArn": "", "region": " "}))
    .check()
    .unwrap();
    assert!(c.read_only_role.is_none() && c.region.is_none());
}

#[test]
fn external_id_alphabet() {
    assert!(is_external_id(EXT));
    assert!(is_external_id("a:b/c=d,e.f@g+h_i-j"));
    assert!(!is_external_id("a"));
    assert!(!is_external_id("with space"));
    assert!(!is_external_id(&"a".repeat(1225)));
}

#[test]
fn account_ids() {
    assert!(is_account_id("123456789012"));
    assert!(!is_account_id("12345678901"));
    assert!(!is_account_id("12345678901a"));
}
