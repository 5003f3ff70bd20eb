//! What a user needs to create the role: the trust policy, a CloudFormation template and the
//! console's quick-create link. Pure functions of the gateway's principal, the partition and the
//! user's external ID, so they are tested without any server.

use serde_json::{json, Map, Value};

use crate::input::Partition;

/// The AWS managed policy behind the read-only mode: attached to the template's role by default,
/// and applied as a session policy for `mode=read_only` on a connection without a read-only role.
pub const READ_ONLY_POLICY: &str = "ReadOnlyAccess";
/// The stack name the quick-create link proposes.
pub const STACK_NAME: &str = "AuroraConnector";
/// The role name the template proposes.
pub const ROLE_NAME: &str = "AuroraConnectorRole";

/// The managed policies of the read-only mode, in `partition`.
pub fn read_only_policy_arns(partition: Partition) -> Vec<String> {
    vec![partition.managed_policy_arn(READ_ONLY_POLICY)]
}

/// The role's trust policy: only `principal`, only with this external ID.
pub fn trust_policy(principal: &str, external_id: &Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AuroraConnectorAssumeRole",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// The CloudFormation template (as a JSON value; see [`to_yaml`]). It is the same for every user of
/// a gateway — the external ID is a parameter — so an operator can host one copy for the quick-create
/// link. It creates a role trusted by `principal` under the external-ID condition, with an AWS managed
/// policy (`ReadOnlyAccess` unless the user picks another) and `MaxSessionDuration` of
/// `max_session_seconds`, and optionally a second role with `ReadOnlyAccess` for the read-only mode.
pub fn cloudformation_template(principal: &str, max_session_seconds: u32) -> Value {
    let trust = trust_policy(principal, &json!({"Ref": "ExternalId"}));
    let read_only_arn =
        json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:iam::aws:policy/{READ_ONLY_POLICY}")});
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Lets Aurora assume a role in this account, only with your workspace's external ID.",
        "Parameters": {
            "ExternalId": {
                "Type": "String",
                "NoEcho": true,
                "MinLength": 2,
                "MaxLength": 1224,
                "AllowedPattern": "[\\w+=,.@:/-]*",
                "Description": "Your workspace's external ID, from Aurora's AWS setup page."
            },
            "RoleName": {
                "Type": "String",
                "Default": ROLE_NAME,
                "AllowedPattern": "[\\w+=,.@-]{1,55}",
                "Description": "Name of the role Aurora assumes."
            },
            "ManagedPolicyName": {
                "Type": "String",
                "Default": READ_ONLY_POLICY,
                "AllowedPattern": "[\\w+=,.@/-]{1,128}",
                "Description": "The AWS managed policy of the role: ReadOnlyAccess (default), ViewOnlyAccess, PowerUserAccess, AdministratorAccess, …"
            },
            "CreateReadOnlyRole": {
                "Type": "String",
                "AllowedValues": ["true", "false"],
                "Default": "false",
                "Description": "Also create <RoleName>-ReadOnly with ReadOnlyAccess, for Aurora's read-only (Ask) mode."
            }
        },
        "Conditions": {
            "WantReadOnlyRole": {"Fn::Equals": [{"Ref": "CreateReadOnlyRole"}, "true"]}
        },
        "Resources": {
            "AuroraRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "Description": "Assumed by Aurora with the workspace's external ID.",
                    "MaxSessionDuration": max_session_seconds,
                    "AssumeRolePolicyDocument": trust.clone(),
                    "ManagedPolicyArns": [
                        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/${ManagedPolicyName}"}
                    ]
                }
            },
            "AuroraReadOnlyRole": {
                "Type": "AWS::IAM::Role",
                "Condition": "WantReadOnlyRole",
                "Properties": {
                    "RoleName": {"Fn::Sub": "${RoleName}-ReadOnly"},
                    "Description": "Assumed by Aurora in read-only mode, with the workspace's external ID.",
                    "MaxSessionDuration": max_session_seconds,
                    "AssumeRolePolicyDocument": trust,
                    "ManagedPolicyArns": [read_only_arn]
                }
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Give this to Aurora as roleArn.",
                "Value": {"Fn::GetAtt": ["AuroraRole", "Arn"]}
            },
            "ReadOnlyRoleArn": {
                "Condition": "WantReadOnlyRole",
                "Description": "Give this to Aurora as readOnlyRoleArn.",
                "Value": {"Fn::GetAtt": ["AuroraReadOnlyRole", "Arn"]}
            }
        }
    })
}

/// The console link that opens the stack. With a hosted template (`template_url`, which the console
/// requires to be in S3) it is the quick-create page with the template, the stack name and the
/// external ID filled in. Without one it is the create-stack page, where the user uploads the
/// template of `GET /aws/setup` (the stack name and external ID are still passed, for consoles that
/// read them).
pub fn quick_create_url(
    partition: Partition,
    region: &str,
    template_url: Option<&str>,
    external_id: &str,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let page = match template_url {
        Some(t) => {
            query.append_pair("templateURL", t);
            "quickcreate"
        }
        None => "create/template",
    };
    query
        .append_pair("stackName", STACK_NAME)
        .append_pair("param_ExternalId", external_id);
    let region: String = url::form_urlencoded::byte_serialize(region.as_bytes()).collect();
    format!(
        "{}/cloudformation/home?region={region}#/stacks/{page}?{}",
        partition.console_base(),
        query.finish()
    )
}

/// Render a JSON value as block-style YAML. Strings are written as JSON strings, which are valid
/// YAML double-quoted scalars, so no value can be misread (`"2012-10-17"` stays a string, `"true"`
/// stays a string); keys that are plain identifiers (`Fn::GetAtt`, `sts:ExternalId`) stay bare.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => emit_seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // Strings, numbers, booleans and null: their JSON spelling is their YAML spelling.
        other => other.to_string(),
    }
}

fn is_plain_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-' || b == b'.')
        && !k.ends_with(':')
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
}

fn key(k: &str) -> String {
    if is_plain_key(k) {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn emit_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(inner, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(items, indent + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        if is_block(item) {
            // Render the item two columns deeper, then put the dash on its first line.
            let mut nested = String::new();
            match item {
                Value::Object(m) => emit_map(m, indent + 2, &mut nested),
                Value::Array(a) => emit_seq(a, indent + 2, &mut nested),
                _ => unreachable!(),
            }
            out.push_str(&" ".repeat(indent));
            out.push_str("- ");
            out.push_str(&nested[indent + 2..]);
        } else {
            out.push_str(&" ".repeat(indent));
            out.push_str("- ");
            out.push_str(&scalar(item));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINCIPAL: &str = "arn:aws:iam::999988887777:role/aurora-gateway";

    #[test]
    fn trust_policy_names_the_principal_and_the_external_id() {
        let p = trust_policy(PRINCIPAL, &json!("ext-123"));
        let st = &p["Statement"][0];
        assert_eq!(p["Version"], "2012-10-17");
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Principal"]["AWS"], PRINCIPAL);
        assert_eq!(st["Action"], "sts:AssumeRole");
        assert_eq!(st["Condition"]["StringEquals"]["sts:ExternalId"], "ext-123");
    }

    #[test]
    fn template_is_yaml_that_reads_back_identically() {
        let t = cloudformation_template(PRINCIPAL, 3600);
        let yaml = to_yaml(&t);
        let back: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        let back: Value = serde_json::to_value(back).unwrap();
        assert_eq!(back, t, "{yaml}");
        assert!(
            yaml.starts_with("AWSTemplateFormatVersion: \"2010-09-09\"\n"),
            "{yaml}"
        );
        let role = &t["Resources"]["AuroraRole"]["Properties"];
        assert_eq!(role["MaxSessionDuration"], 3600);
        let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], PRINCIPAL);
        assert_eq!(
            trust["Condition"]["StringEquals"]["sts:ExternalId"],
            json!({"Ref": "ExternalId"})
        );
        assert_eq!(t["Parameters"]["ExternalId"]["NoEcho"], true);
        assert_eq!(
            t["Parameters"]["ManagedPolicyName"]["Default"],
            "ReadOnlyAccess"
        );
        assert_eq!(
            cloudformation_template(PRINCIPAL, 7200)["Resources"]["AuroraRole"]["Properties"]
                ["MaxSessionDuration"],
            7200
        );
    }

    #[test]
    fn yaml_edge_cases_round_trip() {
        let v = json!({
            "plain": "text", "quote\"d": "line\nbreak \u{e9} \\ \"", "n": 1.5, "b": false,
            "yes": "no", "empty_map": {}, "empty_list": [], "nothing": null, "10": "ten",
            "list": [1, "two", {"a": [{"b": {"c": [true]}}], "d": 2}, [3, [4]]],
            "sts:ExternalId": "x", ": tricky": "#not a comment"
        });
        let yaml = to_yaml(&v);
        let back: Value =
            serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&yaml).unwrap())
                .unwrap();
        assert_eq!(back, v, "{yaml}");
        assert_eq!(to_yaml(&json!("s")), "\"s\"\n");
        assert_eq!(to_yaml(&json!({})), "{}\n");
    }

    #[test]
    fn quick_create_links() {
        let u = quick_create_url(
            Partition::Aws,
            "eu-west-1",
            Some("https://b.s3.amazonaws.com/t.yaml?x=1"),
            "ext:1/2",
        );
        assert_eq!(
            u,
            "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate?\
             templateURL=https%3A%2F%2Fb.s3.amazonaws.com%2Ft.yaml%3Fx%3D1&stackName=AuroraConnector\
             &param_ExternalId=ext%3A1%2F2"
        );
        let u = quick_create_url(Partition::AwsCn, "cn-north-1", None, "e");
        assert_eq!(
            u,
            "https://console.amazonaws.cn/cloudformation/home?region=cn-north-1#/stacks/create/template?\
             stackName=AuroraConnector&param_ExternalId=e"
        );
        assert_eq!(
            read_only_policy_arns(Partition::AwsUsGov),
            vec!["arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess".to_owned()]
        );
    }
}
