//! The Entra ID / Resource Manager client and the login flow against stubbed endpoints (wiremock).

use std::sync::Arc;
use std::time::Duration;

use connector_azure::client::{AzureClient, Role, MANAGEMENT_SCOPE};
use connector_azure::flow;
use connector_azure::input::LoginRequest;
use connector_core::{ConnectorError, Metrics};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const SECRET: &str = "Abc8Q~hunter2-secret";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.token-MARKER.sig";

fn client(server: &MockServer) -> (AzureClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let c = AzureClient::new(
        &server.uri(),
        &format!("{}/arm", server.uri()),
        reqwest::Client::new(),
        metrics.clone(),
    )
    .unwrap();
    (c, metrics)
}

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn sub(i: usize, state: &str) -> Value {
    json!({
        "id": format!("/subscriptions/00000000-0000-0000-0000-{i:012}"),
        "subscriptionId": format!("00000000-0000-0000-0000-{i:012}"),
        "tenantId": TENANT,
        "displayName": format!("sub-{i}"),
        "state": state,
        "authorizationSource": "RoleBased",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}
    })
}

/// No message may carry a secret, a token or any part of a provider body.
fn assert_clean(e: &ConnectorError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains("MARKER"), "token or body leaked: {text}");
}

async fn mount_token(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_id={CLIENT}")))
        .and(body_string_contains("scope=https%3A%2F%2Fmanagement.azure.com%2F.default"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN
        })))
        .mount(server)
        .await;
}

fn aadsts(status: u16, error: &str, code: u64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: description-MARKER. Trace ID: x Correlation ID: y"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "x", "correlation_id": "y"
    }))
}

#[tokio::test]
async fn token_with_the_management_scope() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let (c, metrics) = client(&server);
    let t = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap();
    assert_eq!(t.token.expose_secret(), TOKEN);
    assert_eq!(t.token_type, "Bearer");
    let left = (t.expires_at - chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&left), "{left}");
    assert_eq!(MANAGEMENT_SCOPE, "https://management.azure.com/.default");
    assert!(metrics
        .render()
        .contains("operation=\"token\",outcome=\"ok\",provider=\"azure\""));
}

#[tokio::test]
async fn aadsts_refusals_in_plain_words() {
    let cases = [
        (
            aadsts(401, "invalid_client", 7000215),
            "Value, not its Secret ID",
        ),
        (
            aadsts(400, "invalid_request", 90002),
            "does not know tenant",
        ),
        (aadsts(400, "unauthorized_client", 700016), "no application"),
        (aadsts(401, "invalid_client", 7000222), "expired"),
        (aadsts(400, "invalid_client", 50999), "AADSTS50999"),
        (
            ResponseTemplate::new(400).set_body_string("not json MARKER"),
            "HTTP 400",
        ),
    ];
    for (resp, needle) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(resp)
            .mount(&server)
            .await;
        let (c, _) = client(&server);
        let e = c
            .token(Role::Main, TENANT, CLIENT, &secret())
            .await
            .unwrap_err();
        assert!(e.is_refusal(), "{e:?}");
        assert!(e.to_string().contains(needle), "{e}");
        assert_clean(&e);
    }
}

#[tokio::test]
async fn token_endpoint_faults() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("MARKER"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "9"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": TOKEN}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let c = c.with_timeout(Duration::from_millis(300));
    let e = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::ProviderUnavailable(_)), "{e:?}");
    assert_clean(&e);
    let e = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConnectorError::RateLimited {
                retry_after_secs: 9,
                ..
            }
        ),
        "{e:?}"
    );
    let e = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not answer within"), "{e}");
}

#[tokio::test]
async fn subscriptions_every_page() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let next = format!(
        "{}/arm/subscriptions?api-version=2022-12-01&%24skiptoken=page2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .and(query_param("api-version", "2022-12-01"))
        .and(query_param("$skiptoken", "page2"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [sub(3, "Enabled"), sub(2, "Enabled")]})),
        )
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .and(query_param("api-version", "2022-12-01"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [sub(1, "Disabled"), sub(2, "Enabled")], "nextLink": next}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let t = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap();
    let subs = c.list_subscriptions(&t).await.unwrap();
    let ids: Vec<&str> = subs.iter().map(|s| s.display_name.as_str()).collect();
    assert_eq!(ids, ["sub-1", "sub-2", "sub-3"], "deduplicated, in order");

    // The login flow picks the first enabled one; a requested one must be Enabled.
    let body = |extra: Value| {
        let mut b = json!({"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<LoginRequest>(b)
            .unwrap()
            .check()
            .unwrap()
    };
    server.reset().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [sub(1, "Disabled"), sub(2, "Enabled"), sub(3, "Warned")]}),
        ))
        .mount(&server)
        .await;
    let r = flow::resolve(&c, &body(json!({}))).await.unwrap();
    assert_eq!(r.subscription.display_name, "sub-2");
    assert_eq!(r.subscriptions_count, 3);
    let e = flow::resolve(
        &c,
        &body(json!({"subscriptionId": "00000000-0000-0000-0000-000000000001"})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "invalid_request");
    assert!(e.message.contains("Disabled"), "{}", e.message);
    let e = flow::resolve(
        &c,
        &body(json!({"subscriptionId": "00000000-0000-0000-0000-000000000003"})),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("Warned"), "{}", e.message);
    let e = flow::resolve(
        &c,
        &body(json!({"subscriptionId": "00000000-0000-0000-0000-000000000009"})),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [sub(1, "Enabled")],
            "nextLink": format!("{}/arm/subscriptions?api-version=2022-12-01", other.uri())
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .expect(0)
        .mount(&other)
        .await;
    let (c, _) = client(&server);
    let t = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap();
    let e = c.list_subscriptions(&t).await.unwrap_err();
    assert!(matches!(e, ConnectorError::ProviderUnavailable(_)));
}

#[tokio::test]
async fn resource_manager_statuses() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let (c, _) = client(&server);
    let t = c
        .token(Role::Main, TENANT, CLIENT, &secret())
        .await
        .unwrap();
    for (status, check) in [
        (401u16, "refusal"),
        (403, "refusal"),
        (500, "unavailable"),
        (429, "rate"),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"error": {"code": "X", "message": "MARKER"}})),
            )
            .mount(&server)
            .await;
        let e = c.list_subscriptions(&t).await.unwrap_err();
        assert_clean(&e);
        match check {
            "refusal" => assert!(e.is_refusal(), "{status}: {e:?}"),
            "unavailable" => assert!(matches!(e, ConnectorError::ProviderUnavailable(_))),
            _ => assert!(matches!(e, ConnectorError::RateLimited { .. })),
        }
    }
    // One subscription: 404 is "not visible", not an error.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(
            "/arm/subscriptions/00000000-0000-0000-0000-000000000001",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(sub(1, "Enabled")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let s = c
        .get_subscription(&t, "00000000-0000-0000-0000-000000000001")
        .await
        .unwrap()
        .unwrap();
    assert!(s.is_enabled());
    assert!(c
        .get_subscription(&t, "00000000-0000-0000-0000-000000000002")
        .await
        .unwrap()
        .is_none());
    // A slow Resource Manager.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    let e = c
        .clone()
        .with_timeout(Duration::from_millis(300))
        .list_subscriptions(&t)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not answer within"), "{e}");
}

#[tokio::test]
async fn the_read_only_principal_must_see_the_subscription() {
    const RO: &str = "11111111-2222-3333-4444-555555555555";
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(body_string_contains(format!("client_id={RO}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "ro-token"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/arm/subscriptions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"value": [sub(1, "Enabled")]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/arm/subscriptions/00000000-0000-0000-0000-000000000001",
        ))
        .and(header("authorization", "Bearer ro-token"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let input = serde_json::from_value::<LoginRequest>(json!({
        "tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET,
        "readOnlyCredentials": {"clientId": RO, "clientSecret": "ro-secret"}
    }))
    .unwrap()
    .check()
    .unwrap();
    let e = flow::resolve(&c, &input).await.unwrap_err();
    assert_eq!(e.code, "invalid_request");
    assert!(e.message.contains("read-only"), "{}", e.message);
}
