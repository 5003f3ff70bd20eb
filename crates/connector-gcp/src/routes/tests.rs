//! Unit tests of the routes of `connector-gcp`.

use super::*;

#[test]
fn openapi_lists_the_routes() {
    let json = serde_json::to_value(GcpApiDoc::openapi()).unwrap();
    for p in [
        "/gcp/login",
        "/gcp/callback",
        "/gcp/setup/status/{task_id}",
        "/gcp/post-auth-retry",
        "/api/gcp/force-disconnect",
    ] {
        assert!(json["paths"][p].is_object(), "{p} missing");
    }
    assert!(json["paths"]["/gcp/callback"]["get"].is_object());
    assert!(json["paths"]["/gcp/callback"]["post"].is_object());
    for s in [
        "LoginResponse",
        "SetupStatusResponse",
        "RetryRequest",
        "RetryResponse",
    ] {
        assert!(json["components"]["schemas"][s].is_object(), "{s} missing");
    }
}

#[test]
fn an_optional_body_is_an_object_or_nothing() {
    // Found by schemathesis: `[]` was read as an empty `LoginRequest` (serde reads a struct
    // from an array too).
    for body in [&b"[]"[..], b" [null]", b"\"u\"", b"1"] {
        let e = connector_core::http::parse_optional_body::<LoginRequest>(body).unwrap_err();
        assert_eq!(
            e.code,
            "invalid_request",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    for empty in [&b""[..], b" \n", b"null"] {
        assert!(
            connector_core::http::parse_optional_body::<LoginRequest>(empty)
                .unwrap()
                .is_none()
        );
    }
    let b = connector_core::http::parse_optional_body::<LoginRequest>(br#" {"userId":"u"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(b.user_id.as_deref(), Some("u"));
}

#[test]
fn the_callback_documents_state_as_required() {
    let json = serde_json::to_value(GcpApiDoc::openapi()).unwrap();
    let params = json["paths"]["/gcp/callback"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let state = params.iter().find(|p| p["name"] == "state").unwrap();
    assert_eq!(state["in"], "query");
    assert_eq!(state["required"], true);
}

#[test]
fn status_shape() {
    let r = SetupStatusResponse {
        task_id: uuid::Uuid::nil(),
        state: SetupState::Progress,
        status: "Listing".into(),
        complete: false,
        progress: 28,
        step: 3,
        total_steps: 7,
        error: None,
        result: None,
        connection_id: None,
    };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["state"], "PROGRESS");
    assert_eq!(v["total_steps"], 7);
    assert_eq!(v["taskId"], uuid::Uuid::nil().to_string());
    assert!(v.get("error").is_none() && v.get("result").is_none());
}
