//! §9.1 (C1–C4): the listing, status and disconnect routes of Aurora's own frontend, sent as the
//! frontend sends them (no body, no Content-Type) and checked on the fields it reads.

use connector_core::{Actor, ConnectSpec, ConnectionStatus, ProviderId, SecretValue, UserId};
use serde_json::{json, Value};

use crate::common::*;

/// A connection stored directly through the platform (C1–C3 read stored state only).
async fn stored(
    app: &TestApp,
    user: &str,
    provider: &str,
    account: &str,
    metadata: Value,
) -> String {
    let spec = ConnectSpec {
        user: UserId::parse(user).unwrap(),
        provider: ProviderId::parse(provider).unwrap(),
        account_id: account.into(),
        display_name: None,
        read_only: false,
        metadata,
        expires_at: None,
        status: ConnectionStatus::Active,
        secret: SecretValue::encode(&json!({"k": "v"})).unwrap(),
    };
    let (row, _) = app.platform.connect(spec, Actor::User).await.unwrap();
    row.id.to_string()
}

async fn get_json(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    trusted_json(app.get(user, path)).await
}

async fn delete_json(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    trusted_json(app.delete(user, path)).await
}

/// C1: one entry per provider with a connected connection, the primary one's fields.
async fn c1_connected_accounts(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = new_user();
    let (s, body) = get_json(&app, &u, &format!("/api/connected-accounts/{u}")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, json!({"accounts": {}}), "nothing connected yet");

    let role = "arn:aws:iam::123456789012:role/Aurora";
    stored(&app, &u, "aws", "123456789012", json!({"roleArn": role})).await;
    stored(
        &app,
        &u,
        "azure",
        "00000000-0000-0000-0000-000000000001",
        json!({"tenantId": "t", "clientId": "c", "subscriptionName": "Prod"}),
    )
    .await;
    stored(&app, &u, "gcp", "me@example.com", json!({})).await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    connect_scaleway(&app, &u, &acct).await;
    stored(
        &app,
        &u,
        "tailscale",
        "example.com",
        json!({"tailnet": "-"}),
    )
    .await;

    let (s, body) = get_json(&app, &u, &format!("/api/connected-accounts/{u}")).await;
    assert_eq!(s, 200, "{body}");
    let a = &body["accounts"];
    assert_eq!(a["aws"]["isConnected"], true);
    assert_eq!(a["aws"]["accountId"], "123456789012");
    assert_eq!(a["aws"]["roleArn"], role);
    assert_eq!(a["aws"]["name"], "AWS Account");
    assert_eq!(a["aws"]["displayText"], "Account 123456789012");
    assert_eq!(
        a["azure"]["subscriptionId"],
        "00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(a["azure"]["subscriptionName"], "Prod");
    assert_eq!(a["azure"]["name"], "Prod");
    assert_eq!(a["gcp"]["email"], "me@example.com");
    assert_eq!(a["gcp"]["displayText"], "me@example.com");
    assert_eq!(a["gcp"]["authType"], "oauth");
    assert_eq!(a["gcp"]["name"], "Google Cloud");
    assert_eq!(a["scaleway"]["name"], "Scaleway");
    assert_eq!(a["scaleway"]["displayText"], acct.default_project.as_str());
    assert_eq!(a["tailscale"]["displayText"], "example.com");
    assert!(!body.to_string().contains(&acct.secret_key), "no secret");

    // A refused connection is not connected: the account disappears from C1.
    let other = new_user();
    let id = stored(&app, &other, "gcp", "x@example.com", json!({})).await;
    app.platform
        .update_status(
            &UserId::parse(&other).unwrap(),
            id.parse().unwrap(),
            connector_core::store::StatusUpdate {
                status: ConnectionStatus::NeedsReconnect,
                status_reason: Some("refused".into()),
                last_validated_at: Some(chrono::Utc::now()),
            },
        )
        .await
        .unwrap();
    let (_, body) = get_json(&app, &other, &format!("/api/connected-accounts/{other}")).await;
    assert_eq!(body, json!({"accounts": {}}));

    // §9.0 rule 5: another user's id in the path is 403, with the error body the pages show.
    let (s, body) = get_json(&app, &u, "/api/connected-accounts/someone-else").await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    app.stop().await;
}

/// C2: always the five frontend providers; connected ones carry their status fields.
async fn c2_connectors_status(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = new_user();
    let (s, body) = get_json(&app, &u, "/api/connectors/status").await;
    assert_eq!(s, 200, "{body}");
    for p in ["gcp", "aws", "azure", "scaleway", "tailscale"] {
        assert_eq!(body["connectors"][p], json!({"connected": false}), "{p}");
    }

    // AWS: a read-only role alone cannot execute; a second account with a distinct role can.
    let ro = "arn:aws:iam::111111111111:role/ReadOnly";
    stored(
        &app,
        &u,
        "aws",
        "111111111111",
        json!({"roleArn": ro, "readOnlyRoleArn": ro}),
    )
    .await;
    let (_, body) = get_json(&app, &u, "/api/connectors/status").await;
    assert_eq!(body["connectors"]["aws"]["connected"], true);
    assert_eq!(body["connectors"]["aws"]["canExecute"], false);
    stored(
        &app,
        &u,
        "aws",
        "222222222222",
        json!({"roleArn": "arn:aws:iam::222222222222:role/Full"}),
    )
    .await;
    stored(&app, &u, "gcp", "me@example.com", json!({})).await;
    stored(
        &app,
        &u,
        "tailscale",
        "example.com",
        json!({"tailnet": "-"}),
    )
    .await;
    let (_, body) = get_json(&app, &u, "/api/connectors/status").await;
    let c = &body["connectors"];
    assert_eq!(c["aws"]["canExecute"], true, "{body}");
    assert_eq!(c["gcp"]["connected"], true);
    assert_eq!(c["gcp"]["authType"], "oauth");
    assert_eq!(c["gcp"]["canExecute"], true);
    assert_eq!(c["tailscale"]["connected"], true);
    assert_eq!(c["tailscale"]["tailnet"], "example.com");
    assert!(c["tailscale"].get("canExecute").is_none());
    assert_eq!(c["azure"], json!({"connected": false}));
    app.stop().await;
}

/// C3: a bare array, never a secret; `?user_id=` must be the caller.
async fn c3_user_tokens(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = new_user();
    let (s, body) = get_json(&app, &u, &format!("/user_tokens?user_id={u}")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, json!([]));
    stored(
        &app,
        &u,
        "azure",
        "sub-1",
        json!({"tenantId": "tenant-1", "clientId": "app-1", "subscriptionName": "Prod"}),
    )
    .await;
    let acct = ScwAccount::new(1);
    acct.mount(&app.scaleway).await;
    connect_scaleway(&app, &u, &acct).await;
    let (_, body) = get_json(&app, &u, "/user_tokens").await;
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    let azure = list.iter().find(|t| t["provider"] == "azure").unwrap();
    assert_eq!(
        azure,
        &json!({"provider": "azure", "subscription_id": "sub-1", "subscription_name": "Prod",
                "tenant_id": "tenant-1", "client_id": "app-1", "email": null})
    );
    let scw = list.iter().find(|t| t["provider"] == "scaleway").unwrap();
    assert_eq!(scw["subscription_id"], acct.organization_id.as_str());
    assert_eq!(scw["client_id"], Value::Null, "never the access key");
    assert!(!body.to_string().contains(&acct.access_key));
    assert!(!body.to_string().contains(&acct.secret_key));

    let (s, body) = get_json(&app, &u, "/user_tokens?user_id=someone-else").await;
    assert_eq!(s, 403, "{body}");
    app.stop().await;
}

/// C4: removes every connection of the provider, secrets included; idempotent.
async fn c4_disconnect_provider(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = new_user();
    let a = ScwAccount::new(1);
    let b2 = ScwAccount::new(1);
    a.mount(&app.scaleway).await;
    b2.mount(&app.scaleway).await;
    connect_scaleway(&app, &u, &a).await;
    connect_scaleway(&app, &u, &b2).await;
    let keep = stored(&app, &u, "tailscale", "example.com", json!({})).await;
    let rows = app
        .platform
        .store()
        .list_connections(&UserId::parse(&u).unwrap(), None)
        .await
        .unwrap();
    let scw_refs: Vec<String> = rows
        .iter()
        .filter(|r| r.provider.as_str() == "scaleway")
        .map(|r| r.secret_ref.clone())
        .collect();
    assert_eq!(scw_refs.len(), 2);

    // Sent as the frontend sends it: DELETE, no body, no Content-Type.
    let (s, body) = delete_json(&app, &u, &format!("/api/connected-accounts/{u}/scaleway")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "Removed scaleway credentials", "disconnected": 2})
    );
    for r in &scw_refs {
        let path = connector_core::SecretPath::from_stored(r).unwrap();
        assert!(
            app.platform.secrets().get(&path).await.unwrap().is_none(),
            "secret removed"
        );
    }
    let (_, list) = get_json(&app, &u, "/api/connections").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![keep.as_str()],
        "only the Tailscale connection is left"
    );

    // Idempotent, and an unserved provider removes nothing.
    for p in ["scaleway", "grafana"] {
        let (s, body) = delete_json(&app, &u, &format!("/api/connected-accounts/{u}/{p}")).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["disconnected"], 0);
        assert_eq!(
            body["message"],
            "No tokens found for provider – nothing to delete"
        );
    }
    // A malformed provider is 400; another user's id is 403; both with the error body.
    let (s, body) = delete_json(&app, &u, &format!("/api/connected-accounts/{u}/Bad-Name")).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].is_string());
    let (s, _) = delete_json(&app, &u, "/api/connected-accounts/someone-else/scaleway").await;
    assert_eq!(s, 403);
    app.stop().await;
}

async fn scw_projects(app: &TestApp, user: &str) -> Vec<Value> {
    let (s, body) = get_json(app, user, "/scaleway_api/scaleway/projects").await;
    assert_eq!(s, 200, "{body}");
    body["projects"].as_array().unwrap().clone()
}

async fn post_json(app: &TestApp, user: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = app.post(user, path);
    trusted_json(match body {
        Some(b) => req.json(&b),
        None => req,
    })
    .await
}

/// S2–S4: the project list with `name`, `enabled` and `isRootProject`; saves; the root project,
/// which becomes the connection's project and the credentials' `projectId`.
async fn s2_s4_scaleway_selection(b: Backend) {
    let app = TestApp::spawn_with(b, trusted()).await;
    let u = new_user();
    let acct = ScwAccount::new(3);
    acct.mount(&app.scaleway).await;
    let connected = connect_scaleway(&app, &u, &acct).await;
    let id = connected["connectionId"].as_str().unwrap().to_owned();
    let (p0, p1, p2) = (
        acct.projects[0].0.clone(),
        acct.projects[1].0.clone(),
        acct.projects[2].0.clone(),
    );

    // S2: every project enabled, the connect-time project is the root (and the default).
    let list = scw_projects(&app, &u).await;
    assert_eq!(list.len(), 3);
    for p in &list {
        let root = p["projectId"] == p0.as_str();
        assert_eq!(p["isRootProject"], root, "{p}");
        assert_eq!(p["isDefault"], root, "{p}");
        assert_eq!(p["enabled"], true, "{p}");
        assert_eq!(p["name"], p["projectName"], "{p}");
    }

    // S3: a save; ids outside the list are ignored.
    let path = "/scaleway_api/scaleway/projects";
    let save = json!({"projects": [{"projectId": p1, "enabled": false},
                                   {"projectId": "not-listed", "enabled": false}]});
    let (s, body) = post_json(&app, &u, path, Some(save)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, json!({"success": true, "message": "Projects saved"}));
    let enabled = |list: &[Value], id: &str| {
        list.iter().find(|p| p["projectId"] == id).unwrap()["enabled"].clone()
    };
    let list = scw_projects(&app, &u).await;
    assert_eq!(enabled(&list, &p1), false);
    assert_eq!(enabled(&list, &p2), true);

    // The root cannot be disabled; a missing body and a non-list are 400s; nothing changes.
    let (s, body) = post_json(
        &app,
        &u,
        path,
        Some(json!({"projects": [{"projectId": p0, "enabled": false}, {"projectId": p2, "enabled": false}]})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["error"],
        "The root project cannot be disabled; choose another root first"
    );
    assert_eq!(
        enabled(&scw_projects(&app, &u).await, &p2),
        true,
        "nothing saved"
    );
    let (s, body) = post_json(&app, &u, path, None).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"], "Invalid or missing JSON body");
    let (s, _) = post_json(&app, &u, path, Some(json!({"projects": "all"}))).await;
    assert_eq!(s, 400);

    // S4: the root moves to p1, which is enabled again and becomes the credentials' projectId.
    let root_path = "/scaleway_api/scaleway/root-project";
    let creds: Value = app
        .credentials(&u, &id, "full")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        creds["credentials"]["projectId"],
        p0.as_str(),
        "cached once"
    );
    let (s, body) = post_json(&app, &u, root_path, Some(json!({"projectId": p1}))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "projectId": p1, "message": "Root project set successfully"})
    );
    let list = scw_projects(&app, &u).await;
    let root: Vec<&Value> = list.iter().filter(|p| p["isRootProject"] == true).collect();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0]["projectId"], p1.as_str());
    assert_eq!(root[0]["enabled"], true);
    let (s, body) = get_json(&app, &u, root_path).await;
    assert_eq!(s, 200);
    assert_eq!(body, json!({"projectId": p1, "hasRootProject": true}));
    let creds: Value = app
        .credentials(&u, &id, "full")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        creds["credentials"]["projectId"],
        p1.as_str(),
        "cache dropped"
    );
    let (_, accounts) = get_json(&app, &u, &format!("/api/connected-accounts/{u}")).await;
    assert_eq!(accounts["accounts"]["scaleway"]["displayText"], p1.as_str());

    // A project outside the organization, and no projectId, are 400s.
    let (s, _) = post_json(&app, &u, root_path, Some(json!({"projectId": "elsewhere"}))).await;
    assert_eq!(s, 400);
    let (s, body) = post_json(&app, &u, root_path, Some(json!({}))).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "projectId is required");
    // Without a connection: 404.
    let other = new_user();
    let (s, _) = post_json(&app, &other, root_path, Some(json!({"projectId": p1}))).await;
    assert_eq!(s, 404);
    app.stop().await;
}

both_backends!(
    c1_connected_accounts,
    c2_connectors_status,
    c3_user_tokens,
    c4_disconnect_provider,
    s2_s4_scaleway_selection,
);
