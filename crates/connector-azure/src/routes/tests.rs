//! Unit tests of the routes of `connector-azure`.

use super::*;
use actix_web::test::TestRequest;
use connector_core::http::{parse_connection_id, parse_optional_body, query_connection_id};

#[test]
fn optional_body_forms() {
    assert!(parse_optional_body::<DisconnectRequest>(b"")
        .unwrap()
        .is_none());
    assert!(parse_optional_body::<DisconnectRequest>(b"null")
        .unwrap()
        .is_none());
    let b = parse_optional_body::<DisconnectRequest>(br#"{"connection_id":"x","userId":"u"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(b.connection_id(), Some("x"));
    assert_eq!(
        parse_optional_body::<DisconnectRequest>(b"{")
            .unwrap_err()
            .code,
        "invalid_request"
    );
}

#[test]
fn connection_id_from_query() {
    let req = TestRequest::default()
        .uri("/x?connectionId=%20abc%20")
        .to_http_request();
    assert_eq!(query_connection_id(&req).unwrap().as_deref(), Some("abc"));
    let req = TestRequest::default().uri("/x").to_http_request();
    assert_eq!(query_connection_id(&req).unwrap(), None);
    assert!(parse_connection_id("abc").is_err());
}
