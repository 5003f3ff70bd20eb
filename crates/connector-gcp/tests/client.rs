//! The OAuth client and the Google Cloud API client against wiremock stubs of Google's endpoints.

use std::sync::Arc;

use base64::Engine;
use connector_core::{ConnectorError, Metrics, Settings};
use connector_gcp::api::{GcpApi, GoogleError};
use connector_gcp::config::{GcpConfig, OAuthClientConfig};
use connector_gcp::oauth::{pkce_challenge, random_token, OAuthClient};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn config(server: &MockServer) -> Arc<GcpConfig> {
    let u = server.uri();
    let s = Settings::new()
        .with("AURORA_GCP_CLIENT_ID", "cid.apps")
        .with("AURORA_GCP_CLIENT_SECRET", "c-secret")
        .with("AURORA_GCP_TOKEN_URL", format!("{u}/token"))
        .with("AURORA_GCP_REVOKE_URL", format!("{u}/revoke"))
        .with("AURORA_GCP_USERINFO_URL", format!("{u}/v1/userinfo"))
        .with("AURORA_GCP_API_URL", format!("{u}/google"))
        .with("AURORA_PUBLIC_URL", "https://aurora.example");
    Arc::new(GcpConfig::from_settings(&s).unwrap())
}

fn clients(server: &MockServer) -> (Arc<GcpConfig>, OAuthClient, GcpApi, OAuthClientConfig) {
    let cfg = config(server);
    let metrics = Arc::new(Metrics::new());
    let http = reqwest::Client::new();
    let client = cfg.client.clone().unwrap();
    (
        cfg.clone(),
        OAuthClient::new(http.clone(), metrics.clone(), cfg.clone()),
        GcpApi::new(http, metrics, cfg),
        client,
    )
}

fn form(r: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&r.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

fn token() -> SecretString {
    SecretString::from("ya29.test-access")
}

#[tokio::test]
async fn code_exchange_sends_a_verifier_matching_the_challenge() {
    let server = MockServer::start().await;
    let (cfg, oauth, _, client) = clients(&server);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.a", "expires_in": 3599, "refresh_token": "1//r",
            "scope": "openid", "token_type": "Bearer", "id_token": "h.e30.s"
        })))
        .mount(&server)
        .await;
    let verifier = random_token();
    let challenge = pkce_challenge(&verifier);
    let t = oauth
        .exchange_code(&client, "4/code", &verifier, &cfg.redirect_uri)
        .await
        .unwrap();
    assert_eq!(t.access_token.expose_secret(), "ya29.a");
    assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "1//r");
    let reqs = server.received_requests().await.unwrap();
    let f = form(&reqs[0]);
    assert_eq!(field(&f, "grant_type"), Some("authorization_code"));
    assert_eq!(field(&f, "code"), Some("4/code"));
    assert_eq!(field(&f, "client_id"), Some("cid.apps"));
    assert_eq!(field(&f, "client_secret"), Some("c-secret"));
    assert_eq!(
        field(&f, "redirect_uri"),
        Some("https://aurora.example/gcp/callback")
    );
    let sent = field(&f, "code_verifier").unwrap();
    assert_eq!(
        pkce_challenge(sent),
        challenge,
        "S256(verifier) == challenge"
    );
}

#[tokio::test]
async fn refresh_revoke_and_their_errors() {
    let server = MockServer::start().await;
    let (_, oauth, _, client) = clients(&server);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.new", "expires_in": 120, "token_type": "Bearer"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let rt = SecretString::from("1//refresh");
    let t = oauth.refresh(&client, &rt).await.unwrap();
    assert_eq!(t.access_token.expose_secret(), "ya29.new");
    assert!(t.refresh_token.is_none(), "Google does not rotate");
    let f = form(&server.received_requests().await.unwrap()[0]);
    assert_eq!(field(&f, "grant_type"), Some("refresh_token"));
    assert_eq!(field(&f, "refresh_token"), Some("1//refresh"));

    // invalid_grant: a refusal, without Google's description.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let e = oauth.refresh(&client, &rt).await.unwrap_err();
    assert!(e.is_refusal(), "{e:?}");
    assert!(!e.to_string().contains("expired or revoked."));
    // A 5xx is a passing fault; a 429 carries Retry-After.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        oauth.refresh(&client, &rt).await.unwrap_err(),
        ConnectorError::ProviderUnavailable(_)
    ));
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        oauth.refresh(&client, &rt).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after_secs: 7,
            ..
        }
    ));

    // Revoke: the token in the form; an already revoked token counts as revoked.
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    oauth.revoke(&rt).await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    let revoke = reqs.iter().find(|r| r.url.path() == "/revoke").unwrap();
    assert_eq!(field(&form(revoke), "token"), Some("1//refresh"));
    assert!(revoke.url.query().is_none(), "the token is not in the URL");
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_token"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    oauth.revoke(&rt).await.unwrap();
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    assert!(oauth.revoke(&rt).await.is_err());
}

#[tokio::test]
async fn identity_from_userinfo_then_id_token_then_sub() {
    let server = MockServer::start().await;
    let (_, oauth, _, _) = clients(&server);
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .and(header("authorization", "Bearer ya29.test-access"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sub": "42", "email": "a@example.com"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let i = oauth.identity(&token(), None, "cid.apps").await.unwrap();
    assert_eq!(i.account_id(), "a@example.com");

    // oauth2-mock-server's shape: only `sub`; the e-mail then comes from the id_token, if any.
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sub": "johndoe"})))
        .mount(&server)
        .await;
    // {"sub":"johndoe","email":"j@example.com","aud":"cid.apps"}
    let id_token = SecretString::from(
        "h.eyJzdWIiOiJqb2huZG9lIiwiZW1haWwiOiJqQGV4YW1wbGUuY29tIiwiYXVkIjoiY2lkLmFwcHMifQ.s",
    );
    let i = oauth
        .identity(&token(), Some(&id_token), "cid.apps")
        .await
        .unwrap();
    assert_eq!(i.account_id(), "j@example.com");
    // The same claims without `aud` (required by OpenID Connect): the id_token names nobody.
    let no_aud = SecretString::from(format!(
        "h.{}.s",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"johndoe","email":"j@example.com"}"#)
    ));
    let i = oauth
        .identity(&token(), Some(&no_aud), "cid.apps")
        .await
        .unwrap();
    assert_eq!(
        i.account_id(),
        "johndoe",
        "an id_token without aud is ignored"
    );
    let i = oauth.identity(&token(), None, "cid.apps").await.unwrap();
    assert_eq!(i.account_id(), "johndoe", "falls back to the subject");

    let server = MockServer::start().await;
    let (_, oauth, _, _) = clients(&server);
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    assert!(oauth
        .identity(&token(), None, "cid.apps")
        .await
        .unwrap_err()
        .is_refusal());
}

#[tokio::test]
async fn projects_search_pages_and_filters() {
    let server = MockServer::start().await;
    let (_, _, api, _) = clients(&server);
    Mock::given(method("GET"))
        .and(path("/google/cloudresourcemanager/v3/projects:search"))
        .and(header("authorization", "Bearer ya29.test-access"))
        .and(query_param("pageSize", "100"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "projects": [
                {"name": "projects/1", "projectId": "a", "state": "ACTIVE", "displayName": "A"},
                {"name": "projects/2", "projectId": "b", "state": "DELETE_REQUESTED"},
                {"name": "projects/3", "projectId": "c"}
            ],
            "nextPageToken": "t2"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/google/cloudresourcemanager/v3/projects:search"))
        .and(query_param("pageToken", "t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let (page, next) = api.search_projects_page(&token(), None).await.unwrap();
    let ids: Vec<_> = page.iter().map(|p| p.project_id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(page[0].name, "A");
    assert_eq!(page[0].number.as_deref(), Some("1"));
    assert_eq!(page[1].name, "c", "no display name: the id");
    assert_eq!(next.as_deref(), Some("t2"));
    let (page, next) = api
        .search_projects_page(&token(), Some("t2"))
        .await
        .unwrap();
    assert!(page.is_empty() && next.is_none());
}

#[tokio::test]
async fn billing_enable_operations_and_permissions() {
    let server = MockServer::start().await;
    let (_, _, api, _) = clients(&server);
    Mock::given(method("GET"))
        .and(path("/google/cloudbilling/v1/projects/p1/billingInfo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "projects/p1/billingInfo", "projectId": "p1", "billingEnabled": true}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/google/cloudbilling/v1/projects/p2/billingInfo"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "projects/p2/billingInfo"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/google/cloudbilling/v1/projects/p3/billingInfo"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": {"code": 403, "message": "secret detail", "status": "PERMISSION_DENIED"}}),
        ))
        .mount(&server)
        .await;
    assert!(api.billing_enabled(&token(), "p1").await.unwrap());
    assert!(!api.billing_enabled(&token(), "p2").await.unwrap());
    let e = api.billing_enabled(&token(), "p3").await.unwrap_err();
    assert_eq!(e, GoogleError::Denied(Some("PERMISSION_DENIED".into())));
    assert!(!e.to_string().contains("secret detail"));

    let services = vec!["compute.googleapis.com".to_owned()];
    Mock::given(method("POST"))
        .and(path(
            "/google/serviceusage/v1/projects/p1/services:batchEnable",
        ))
        .and(body_json(json!({"serviceIds": ["compute.googleapis.com"]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "operations/op-1", "done": false})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/google/serviceusage/v1/operations/op-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "operations/op-1", "done": true, "error": {"code": 7, "message": "x"}}),
        ))
        .mount(&server)
        .await;
    let op = api.batch_enable(&token(), "p1", &services).await.unwrap();
    assert!(!op.done);
    let op = api.operation(&token(), &op.name).await.unwrap();
    assert!(op.done);
    assert_eq!(op.error.unwrap().code, Some(7));

    Mock::given(method("POST"))
        .and(path(
            "/google/cloudresourcemanager/v3/projects/p1:testIamPermissions",
        ))
        .and(body_json(json!({"permissions": ["a.b.c", "d.e.f"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"permissions": ["a.b.c"]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/google/cloudresourcemanager/v3/projects/p2:testIamPermissions",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    assert_eq!(
        api.test_iam_permissions(&token(), "p1", &["a.b.c", "d.e.f"])
            .await
            .unwrap(),
        ["a.b.c"]
    );
    assert!(api
        .test_iam_permissions(&token(), "p2", &["a.b.c"])
        .await
        .unwrap()
        .is_empty());

    // Status classes.
    for (status, check) in [
        (401u16, GoogleError::Unauthorized),
        (404, GoogleError::NotFound),
        (400, GoogleError::Rejected(400, None)),
    ] {
        let server = MockServer::start().await;
        let (_, _, api, _) = clients(&server);
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        assert_eq!(api.billing_enabled(&token(), "p").await.unwrap_err(), check);
    }
    let server = MockServer::start().await;
    let (_, _, api, _) = clients(&server);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    assert!(api
        .billing_enabled(&token(), "p")
        .await
        .unwrap_err()
        .is_transient());
    let server = MockServer::start().await;
    let (_, _, api, _) = clients(&server);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    assert!(api
        .billing_enabled(&token(), "p")
        .await
        .unwrap_err()
        .is_transient());
}
