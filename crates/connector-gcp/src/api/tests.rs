//! Unit tests of Google API error classification.

use super::*;

#[test]
fn status_tokens() {
    assert_eq!(
        status_token(br#"{"error":{"code":403,"message":"x","status":"PERMISSION_DENIED"}}"#),
        Some("PERMISSION_DENIED".into())
    );
    assert_eq!(status_token(br#"{"error":{"status":"a b"}}"#), None);
    assert_eq!(status_token(b"<html>"), None);
}

#[test]
fn error_classes() {
    assert!(GoogleError::RateLimited(3).is_transient());
    assert!(GoogleError::Unavailable("x".into()).is_transient());
    assert!(!GoogleError::Denied(None).is_transient());
    assert!(GoogleError::Unauthorized
        .into_connector("listing the projects")
        .is_refusal());
    let e = GoogleError::Denied(Some("PERMISSION_DENIED".into())).into_connector("listing");
    assert!(
        e.to_string().contains("PERMISSION_DENIED (HTTP 403)"),
        "{e}"
    );
}
