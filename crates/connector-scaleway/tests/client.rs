//! The Scaleway client and the connect flow against a stubbed Scaleway API (wiremock).

use std::sync::Arc;
use std::time::Duration;

use connector_core::{ConnectorError, Metrics};
use connector_scaleway::client::ScalewayClient;
use connector_scaleway::flow;
use connector_scaleway::input::ConnectRequest;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "SCWABCDEFGHIJKLMNOPQ";
const SECRET: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const ORG: &str = "11111111-2222-3333-4444-555555555555";
const USER: &str = "99999999-8888-7777-6666-555555555555";

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn client(server: &MockServer) -> (ScalewayClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let c = ScalewayClient::new(&server.uri(), reqwest::Client::new(), metrics.clone()).unwrap();
    (c, metrics)
}

fn project(i: usize) -> Value {
    json!({
        "id": format!("00000000-0000-0000-0000-{i:012}"),
        "name": format!("project-{i}"),
        "organization_id": ORG,
        "description": if i.is_multiple_of(2) { Value::Null } else { json!("d") },
        "created_at": "2024-01-02T03:04:05.123456Z",
        "updated_at": "2024-01-02T03:04:05.123456Z"
    })
}

fn api_key(default_project: Option<&str>, expires_at: Value) -> Value {
    json!({
        "access_key": ACCESS,
        "secret_key": null,
        "user_id": USER,
        "application_id": null,
        "description": "aurora",
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:05Z",
        "expires_at": expires_at,
        "default_project_id": default_project.unwrap_or(""),
        "editable": true,
        "creation_ip": "192.0.2.1"
    })
}

/// No message may carry the secret key or any part of a provider body.
fn assert_clean(e: &ConnectorError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains("BODY-MARKER"), "body leaked: {text}");
}

/// `exact`: each page is asked exactly once (else any number of times).
async fn mount_projects(server: &MockServer, total: usize, per_page: usize, exact: bool) {
    let pages = total.div_ceil(per_page);
    for page in 1..=pages {
        let items: Vec<Value> = ((page - 1) * per_page..(page * per_page).min(total))
            .map(project)
            .collect();
        Mock::given(method("GET"))
            .and(path("/account/v3/projects"))
            .and(query_param("organization_id", ORG))
            .and(query_param("page", page.to_string()))
            .and(query_param("page_size", "100"))
            .and(header("X-Auth-Token", SECRET))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total_count": total, "projects": items})),
            )
            .expect(if exact { 1..=1 } else { 0..=u64::MAX })
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn every_page_of_projects_is_collected() {
    let server = MockServer::start().await;
    // The stub serves 100 per page: 250 projects over 3 pages.
    mount_projects(&server, 250, 100, true).await;
    let (c, metrics) = client(&server);
    let ps = c.list_projects(&secret(), ORG).await.unwrap();
    assert_eq!(ps.len(), 250);
    assert_eq!(ps[0].name, "project-0");
    assert_eq!(ps[249].name, "project-249");
    assert_eq!(ps[0].description, "");
    assert_eq!(ps[1].description, "d");
    assert!(metrics.render().contains(
        "aurora_provider_call_duration_seconds_count{operation=\"list_projects\",outcome=\"ok\",provider=\"scaleway\"} 3"
    ));
    server.verify().await;
}

#[tokio::test]
async fn an_empty_page_ends_the_listing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/account/v3/projects"))
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 500, "projects": [project(1), project(2)]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/account/v3/projects"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 500, "projects": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    assert_eq!(c.list_projects(&secret(), ORG).await.unwrap().len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn a_server_that_ignores_paging_does_not_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/account/v3/projects"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 500, "projects": [project(1), project(2)]})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    assert_eq!(c.list_projects(&secret(), ORG).await.unwrap().len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn the_auth_header_carries_the_secret_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .and(header("X-Auth-Token", SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(api_key(Some(ORG), Value::Null)))
        .expect(1)
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let k = c.get_api_key(&secret(), ACCESS).await.unwrap();
    assert_eq!(k.access_key, ACCESS);
    assert_eq!(k.user_id.as_deref(), Some(USER));
    assert_eq!(k.application_id, None);
    assert_eq!(k.expires_at, None);
    server.verify().await;
}

#[tokio::test]
async fn a_base_url_with_a_prefix_is_kept() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/scw/iam/v1alpha1/users/{USER}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": USER, "organization_id": ORG, "email": "a@b.c"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = ScalewayClient::new(
        &format!("{}/scw/", server.uri()),
        reqwest::Client::new(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    assert_eq!(
        c.get_user(&secret(), USER).await.unwrap().organization_id,
        ORG
    );
    server.verify().await;
}

async fn key_error(status: u16, extra: Option<(&str, &str)>) -> ConnectorError {
    let server = MockServer::start().await;
    let mut resp = ResponseTemplate::new(status).set_body_json(json!({
        "message": format!("BODY-MARKER {SECRET}"), "type": "denied_authentication"
    }));
    if let Some((k, v)) = extra {
        resp = resp.insert_header(k, v);
    }
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(resp)
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    let e = c.get_api_key(&secret(), ACCESS).await.unwrap_err();
    assert!(metrics.render().contains(
        "aurora_provider_call_duration_seconds_count{operation=\"get_api_key\",outcome=\"error\",provider=\"scaleway\"} 1"
    ));
    assert_clean(&e);
    e
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_refusals() {
    for status in [401, 403] {
        let e = key_error(status, None).await;
        assert!(matches!(e, ConnectorError::CredentialsRejected(_)), "{e:?}");
        assert!(e.to_string().contains("Scaleway refused the API key"));
    }
}

#[tokio::test]
async fn an_unknown_access_key_is_a_refusal() {
    let e = key_error(404, None).await;
    assert!(matches!(e, ConnectorError::CredentialsRejected(_)), "{e:?}");
    assert!(e.to_string().contains("access key"));
}

#[tokio::test]
async fn server_errors_are_provider_unavailable() {
    for status in [500, 502, 503] {
        let e = key_error(status, None).await;
        assert!(matches!(e, ConnectorError::ProviderUnavailable(_)), "{e:?}");
    }
}

#[tokio::test]
async fn throttling_is_rate_limited_with_retry_after() {
    let e = key_error(429, Some(("Retry-After", "42"))).await;
    match e {
        ConnectorError::RateLimited {
            retry_after_secs, ..
        } => assert_eq!(retry_after_secs, 42),
        other => panic!("{other:?}"),
    }
    let e = key_error(429, None).await;
    assert!(matches!(e, ConnectorError::RateLimited { .. }));
}

#[tokio::test]
async fn an_undecodable_body_is_provider_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>BODY-MARKER</html>"))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let e = c.get_api_key(&secret(), ACCESS).await.unwrap_err();
    assert!(matches!(e, ConnectorError::ProviderUnavailable(_)), "{e:?}");
    assert_clean(&e);
}

#[tokio::test]
async fn a_slow_answer_is_provider_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(api_key(None, Value::Null))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let c = c.with_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let e = c.get_api_key(&secret(), ACCESS).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(e, ConnectorError::ProviderUnavailable(_)), "{e:?}");
    assert!(e.to_string().contains("did not answer"), "{e}");
    assert_clean(&e);
}

#[tokio::test]
async fn an_unreachable_api_is_provider_unavailable() {
    // Bind then drop a listener, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = ScalewayClient::new(
        &format!("http://127.0.0.1:{port}"),
        reqwest::Client::new(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let e = c.get_api_key(&secret(), ACCESS).await.unwrap_err();
    assert!(matches!(e, ConnectorError::ProviderUnavailable(_)), "{e:?}");
    assert_clean(&e);
}

// ---- the connect flow (provider side, no storage) ----

fn connect_input(extra: Value) -> connector_scaleway::input::ConnectInput {
    let mut body = json!({"accessKey": ACCESS, "secretKey": SECRET});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value::<ConnectRequest>(body)
        .unwrap()
        .check()
        .unwrap()
}

async fn flow_server(key: Value, principal: (&str, &str), total: usize) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .and(header("X-Auth-Token", SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(key))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/iam/v1alpha1/{}/{}",
            principal.0, principal.1
        )))
        .and(header("X-Auth-Token", SECRET))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": principal.1, "organization_id": ORG, "name": "x"})),
        )
        .mount(&server)
        .await;
    if total > 0 {
        mount_projects(&server, total, 100, false).await;
    } else {
        Mock::given(method("GET"))
            .and(path("/account/v3/projects"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "projects": []})),
            )
            .mount(&server)
            .await;
    }
    server
}

fn pid(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

#[tokio::test]
async fn connect_flow_uses_the_keys_default_project_and_organization() {
    let default = pid(150);
    let key = api_key(Some(&default), json!("2099-01-01T00:00:00Z"));
    let server = flow_server(key, ("users", USER), 250).await;
    let (c, _) = client(&server);
    let r = flow::resolve(&c, &connect_input(json!({}))).await.unwrap();
    assert_eq!(r.organization_id, ORG);
    assert_eq!(r.project.id, default);
    assert_eq!(r.projects_count, 250);
    assert!(r.key.expires_at.is_some());
    server.verify().await;
}

#[tokio::test]
async fn connect_flow_with_an_application_key_and_no_default_takes_the_first_project() {
    let mut key = api_key(None, Value::Null);
    key["user_id"] = Value::Null;
    key["application_id"] = json!(USER);
    let server = flow_server(key, ("applications", USER), 3).await;
    let (c, _) = client(&server);
    let r = flow::resolve(&c, &connect_input(json!({}))).await.unwrap();
    assert_eq!(r.project.id, pid(0));
    assert_eq!(r.projects_count, 3);
}

#[tokio::test]
async fn connect_flow_checks_the_given_organization_and_project() {
    let server = flow_server(api_key(None, Value::Null), ("users", USER), 3).await;
    let (c, _) = client(&server);
    // Given in upper case: still the key's organization.
    let r = flow::resolve(
        &c,
        &connect_input(
            json!({"organizationId": ORG.to_uppercase(), "projectId": pid(2).to_uppercase()}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.project.id, pid(2));

    let e = flow::resolve(
        &c,
        &connect_input(json!({"organizationId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "invalid_request");
    assert!(e.message.contains("organizationId"));

    let e = flow::resolve(&c, &connect_input(json!({"projectId": pid(77)})))
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_request");
    assert!(e.message.contains("projectId"));
}

#[tokio::test]
async fn connect_flow_refuses_an_organization_without_projects() {
    let server = flow_server(api_key(None, Value::Null), ("users", USER), 0).await;
    let (c, _) = client(&server);
    let e = flow::resolve(&c, &connect_input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_request");
}

#[tokio::test]
async fn connect_flow_refuses_an_expired_key() {
    let server = flow_server(
        api_key(None, json!("2001-01-01T00:00:00Z")),
        ("users", USER),
        1,
    )
    .await;
    let (c, _) = client(&server);
    let e = flow::resolve(&c, &connect_input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code, "credentials_rejected");
    assert!(!e.message.contains(SECRET));
}

#[tokio::test]
async fn connect_flow_maps_a_refused_key_to_422_without_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/iam/v1alpha1/api-keys/{ACCESS}")))
        .respond_with(ResponseTemplate::new(401).set_body_string("BODY-MARKER"))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let e = flow::resolve(&c, &connect_input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code, "credentials_rejected");
    assert_eq!(e.status.as_u16(), 422);
    assert!(!e.message.contains(SECRET) && !e.message.contains("BODY-MARKER"));
}
