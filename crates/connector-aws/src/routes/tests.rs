//! Unit tests of the routes of `connector-aws`.

use super::*;
use actix_web::test::TestRequest;
use connector_core::http::parse_optional_body;

#[test]
fn optional_bodies() {
    assert!(parse_optional_body::<DisconnectRequest>(b"")
        .unwrap()
        .is_none());
    assert!(parse_optional_body::<DisconnectRequest>(b" null ")
        .unwrap()
        .is_none());
    let b =
        parse_optional_body::<DisconnectRequest>(br#"{"account_id":"123456789012","userId":"u"}"#)
            .unwrap()
            .unwrap();
    assert_eq!(b.account_id(), Some("123456789012"));
    assert_eq!(b.user_id.as_deref(), Some("u"));
    assert_eq!(
        parse_optional_body::<DisconnectRequest>(b"[1]")
            .unwrap_err()
            .code,
        "invalid_request"
    );
}

#[test]
fn query_values() {
    let req = TestRequest::default()
        .uri("/x?accountId=%20123456789012%20&connection_id=abc")
        .to_http_request();
    assert_eq!(
        query_value(&req, ["accountId", "account_id"])
            .unwrap()
            .as_deref(),
        Some("123456789012")
    );
    assert_eq!(
        query_value(&req, ["connectionId", "connection_id"])
            .unwrap()
            .as_deref(),
        Some("abc")
    );
    assert!(parse_account_id("12345").is_err());
    assert!(parse_connection_id("abc").is_err());
}

#[test]
fn mismatch_error_shape() {
    let e = external_id_mismatch();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.code, "external_id_mismatch");
}
