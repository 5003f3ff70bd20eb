//! The STS client (the real `aws-sdk-sts`) against a wiremock STS that answers the Query protocol:
//! what is sent, how answers and errors are read, retries, timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use connector_aws::config::{AwsConfig, StaticCredentials};
use connector_aws::sts::{AssumeRequest, FailureKind, StsClient};
use connector_core::Metrics;
use secrecy::{ExposeSecret, SecretString};
use wiremock::matchers::{body_string_contains, header_regex, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ROLE: &str = "arn:aws:iam::111122223333:role/AuroraConnectorRole";
const EXT: &str = "0123456789abcdef0123456789abcdef01234567";

fn config(server: &MockServer) -> AwsConfig {
    AwsConfig {
        endpoint_url: Some(server.uri()),
        static_credentials: Some(StaticCredentials {
            access_key_id: "AKIAGATEWAYEXAMPLE".into(),
            secret_access_key: SecretString::from("gateway-secret"),
            session_token: None,
        }),
        timeout: Duration::from_secs(1),
        retry_base: Duration::from_millis(5),
        ..AwsConfig::default()
    }
}

fn assume_ok(access_key: &str) -> ResponseTemplate {
    let exp = (Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>stub-secret-access-key</SecretAccessKey>
      <SessionToken>stub-session-token</SessionToken>
      <Expiration>{exp}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:aurora-0123456789abcdef</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/AuroraConnectorRole/aurora-0123456789abcdef</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#
        ))
}

fn identity(account: &str, arn: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>{arn}</Arn>
    <UserId>AROAEXAMPLE:aurora</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
        ))
}

fn error(status: u16, kind: &str, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>{kind}</Type><Code>{code}</Code><Message>raw provider message with secret-ish detail</Message></Error>
  <RequestId>4f2e0c5a-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"#
        ))
}

fn req<'a>(ext: Option<&'a SecretString>, policies: &'a [String]) -> AssumeRequest<'a> {
    AssumeRequest {
        role_arn: ROLE,
        external_id: ext,
        session_name: "aurora-0123456789abcdef",
        duration_seconds: 1800,
        policy_arns: policies,
        region: "eu-west-1",
    }
}

fn client(server: &MockServer) -> StsClient {
    StsClient::new(&config(server), Arc::new(Metrics::new()))
}

async fn bodies(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r: &Request| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test]
async fn assume_role_sends_the_query_and_reads_the_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRole"))
        .respond_with(assume_ok("ASIASTUBEXAMPLE1"))
        .expect(1)
        .mount(&server)
        .await;
    let ext = SecretString::from(EXT);
    let policies = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".to_owned()];
    let s = client(&server)
        .assume_role(&req(Some(&ext), &policies))
        .await
        .unwrap();
    assert_eq!(s.access_key_id, "ASIASTUBEXAMPLE1");
    assert_eq!(
        s.secret_access_key.expose_secret(),
        "stub-secret-access-key"
    );
    assert_eq!(s.session_token.expose_secret(), "stub-session-token");
    let left = s.expiration - Utc::now();
    assert!(left > chrono::Duration::minutes(55) && left <= chrono::Duration::hours(1));

    let received = server.received_requests().await.unwrap();
    let r = &received[0];
    let body = String::from_utf8_lossy(&r.body);
    for needle in [
        "Action=AssumeRole",
        "Version=2011-06-15",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FAuroraConnectorRole",
        "RoleSessionName=aurora-0123456789abcdef",
        "DurationSeconds=1800",
        &format!("ExternalId={EXT}"),
        "PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess",
    ] {
        assert!(body.contains(needle), "{needle} not in {body}");
    }
    let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(
        auth.contains("Credential=AKIAGATEWAYEXAMPLE/")
            && auth.contains("/eu-west-1/sts/aws4_request"),
        "signed by the gateway for the requested region: {auth}"
    );
}

#[tokio::test]
async fn the_probe_sends_no_external_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(403, "Sender", "AccessDenied"))
        .mount(&server)
        .await;
    let f = client(&server)
        .assume_role(&req(None, &[]))
        .await
        .unwrap_err();
    assert_eq!(f.kind, FailureKind::AccessDenied);
    assert_eq!(f.attempts, 1, "a refusal is not retried");
    let b = bodies(&server).await;
    assert_eq!(b.len(), 1);
    assert!(!b[0].contains("ExternalId"), "{}", b[0]);
    assert!(!b[0].contains("PolicyArns"), "{}", b[0]);
}

#[tokio::test]
async fn caller_identity_uses_the_session_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRole"))
        .respond_with(assume_ok("ASIASESSIONKEY"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .and(header_regex("authorization", "Credential=ASIASESSIONKEY/"))
        .and(header_regex("x-amz-security-token", "^stub-session-token$"))
        .respond_with(identity(
            "111122223333",
            "arn:aws:sts::111122223333:assumed-role/AuroraConnectorRole/aurora",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=GetCallerIdentity"))
        .and(header_regex(
            "authorization",
            "Credential=AKIAGATEWAYEXAMPLE/",
        ))
        .respond_with(identity(
            "999988887777",
            "arn:aws:iam::999988887777:user/gateway",
        ))
        .mount(&server)
        .await;
    let c = client(&server);
    let ext = SecretString::from(EXT);
    let s = c.assume_role(&req(Some(&ext), &[])).await.unwrap();
    let id = c.caller_identity("eu-west-1", Some(&s)).await.unwrap();
    assert_eq!(id.account, "111122223333");
    let own = c.caller_identity("us-east-1", None).await.unwrap();
    assert_eq!(own.account, "999988887777");
    assert_eq!(own.arn, "arn:aws:iam::999988887777:user/gateway");
}

#[tokio::test]
async fn throttling_is_retried_a_bounded_number_of_times() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(400, "Sender", "Throttling"))
        .mount(&server)
        .await;
    let ext = SecretString::from(EXT);
    let f = client(&server)
        .assume_role(&req(Some(&ext), &[]))
        .await
        .unwrap_err();
    assert_eq!(f.kind, FailureKind::Throttled);
    assert_eq!(f.attempts, 3);
    assert_eq!(bodies(&server).await.len(), 3);
}

#[tokio::test]
async fn a_passing_server_error_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(503, "Receiver", "ServiceUnavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(assume_ok("ASIATHIRDTIME"))
        .with_priority(3)
        .mount(&server)
        .await;
    let ext = SecretString::from(EXT);
    let s = client(&server)
        .assume_role(&req(Some(&ext), &[]))
        .await
        .unwrap();
    assert_eq!(s.access_key_id, "ASIATHIRDTIME");
    assert_eq!(bodies(&server).await.len(), 3);
}

#[tokio::test]
async fn a_slow_sts_times_out_per_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(assume_ok("ASIASLOW").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let cfg = AwsConfig {
        max_attempts: 2,
        ..config(&server)
    };
    let c = StsClient::new(&cfg, Arc::new(Metrics::new()));
    let ext = SecretString::from(EXT);
    let started = Instant::now();
    let f = c.assume_role(&req(Some(&ext), &[])).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Timeout);
    assert_eq!(f.attempts, 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn the_gateways_refused_credentials_and_unreachable_sts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(403, "Sender", "InvalidClientTokenId"))
        .mount(&server)
        .await;
    let ext = SecretString::from(EXT);
    let f = client(&server)
        .assume_role(&req(Some(&ext), &[]))
        .await
        .unwrap_err();
    assert_eq!(
        f.kind,
        FailureKind::GatewayCredentials("InvalidClientTokenId".into())
    );
    assert_eq!(f.attempts, 1);

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = AwsConfig {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        max_attempts: 2,
        ..config(&server)
    };
    let f = StsClient::new(&cfg, Arc::new(Metrics::new()))
        .assume_role(&req(Some(&ext), &[]))
        .await
        .unwrap_err();
    assert_eq!(f.kind, FailureKind::Unreachable);
    assert_eq!(f.attempts, 2);
}

#[tokio::test]
async fn metrics_count_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(400, "Sender", "Throttling"))
        .mount(&server)
        .await;
    let metrics = Arc::new(Metrics::new());
    let c = StsClient::new(&config(&server), metrics.clone());
    let ext = SecretString::from(EXT);
    let _ = c.assume_role(&req(Some(&ext), &[])).await;
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.contains("provider_call_duration_seconds_count")
                && l.contains("provider=\"aws\"")
                && l.contains("operation=\"assume_role\"")
                && l.contains("outcome=\"error\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(" 3"), "{line}");
}
