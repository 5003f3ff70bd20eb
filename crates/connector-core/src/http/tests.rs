//! Unit tests of the HTTP helpers: identity headers, query values and optional bodies.

use super::*;
use actix_web::test::TestRequest;

#[test]
fn optional_bodies_and_connection_ids() {
    #[derive(Debug, serde::Deserialize)]
    struct B {
        #[serde(alias = "connection_id")]
        #[serde(rename = "connectionId")]
        id: Option<String>,
    }
    assert!(parse_optional_body::<B>(b"").unwrap().is_none());
    assert!(parse_optional_body::<B>(b" \n").unwrap().is_none());
    assert!(parse_optional_body::<B>(b"null").unwrap().is_none());
    let b = parse_optional_body::<B>(br#"{"connection_id":"x"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(b.id.as_deref(), Some("x"));
    assert_eq!(
        parse_optional_body::<B>(b"{").unwrap_err().code,
        "invalid_request"
    );
    assert_eq!(
        parse_optional_body::<B>(b"[1]").unwrap_err().code,
        "invalid_request"
    );
    let req = TestRequest::with_uri("/x?connection_id=abc&connectionId=def").to_http_request();
    assert_eq!(query_connection_id(&req).unwrap().as_deref(), Some("def"));
    let req = TestRequest::with_uri("/x?connectionId=%20").to_http_request();
    assert_eq!(
        query_connection_id(&req).unwrap_err().message,
        "connectionId must not be empty"
    );
    let req = TestRequest::with_uri("/x?connectionID=abc").to_http_request();
    assert!(only_query_keys(&req, &["connectionId", "connection_id"]).is_err());
    let req = TestRequest::with_uri("/x?connection_id=abc").to_http_request();
    assert!(only_query_keys(&req, &["connectionId", "connection_id"]).is_ok());
    assert!(parse_connection_id("abc").is_err());
    let id = ConnectionId::new();
    assert_eq!(parse_connection_id(&format!(" {id} ")).unwrap(), id);
}

#[test]
fn an_array_is_not_an_optional_body() {
    // Found by schemathesis: `[]` was read as an empty object, and `["<id>"]` as a filter.
    for body in [&b"[]"[..], b" [\"x\"]", b"\"x\"", b"1", b"true"] {
        let e = parse_optional_body::<Filter>(body).unwrap_err();
        assert_eq!(
            e.code,
            "invalid_request",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let f = parse_optional_body::<Filter>(br#" {"connectionId":"x"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(f.id.as_deref(), Some("x"));
    assert!(parse_optional_body::<Filter>(b"null").unwrap().is_none());
    assert!(parse_optional_body::<Filter>(b"nul").is_err());
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default, rename = "connectionId", deserialize_with = "non_blank")]
    id: Option<String>,
}

#[test]
fn blank_and_unknown_body_filters_are_refused() {
    assert!(parse_optional_body::<Filter>(br#"{"connectionId":null}"#)
        .unwrap()
        .unwrap()
        .id
        .is_none());
    let e = parse_optional_body::<Filter>(br#"{"connectionId":" "}"#).unwrap_err();
    assert!(e.message.contains("must not be empty"), "{}", e.message);
    let e = parse_optional_body::<Filter>(br#"{"connectionID":"x"}"#).unwrap_err();
    assert!(e.message.contains("unknown field"), "{}", e.message);
    assert!(!e.message.contains("\"x\""), "{}", e.message);
}

#[test]
fn sanitized_json_errors_drop_every_quoted_value() {
    let e = serde_json::from_str::<u32>("\"hunter2\"").unwrap_err();
    let s = sanitize_json_error(&e);
    assert!(!s.contains("hunter2"), "{s}");
    assert!(s.contains("invalid type"), "{s}");
}

#[test]
fn a_repeated_identity_header_is_refused() {
    for name in IDENTITY_HEADERS {
        let req = TestRequest::default()
            .insert_header((USER_HEADER, "u1"))
            .append_header((name, "a"))
            .append_header((name, "b"))
            .to_http_request();
        let e = Caller::from_request_parts(&req).unwrap_err();
        assert_eq!(e.code, "unauthenticated", "{name}");
        assert!(e.message.contains(name), "{}", e.message);
    }
}

#[test]
fn caller_rules() {
    let req = TestRequest::default().to_http_request();
    assert_eq!(
        Caller::from_request_parts(&req).unwrap_err().code,
        "unauthenticated"
    );
    let req = TestRequest::default()
        .insert_header((USER_HEADER, "bad user"))
        .to_http_request();
    assert!(Caller::from_request_parts(&req).is_err());
    let req = TestRequest::default()
        .insert_header((USER_HEADER, "u1"))
        .to_http_request();
    let c = Caller::from_request_parts(&req).unwrap();
    assert_eq!(c.user.as_str(), "u1");
    assert!(!c.trusted);
    assert!(c.bind_owner(Some("u1")).is_ok());
    assert!(c.bind_owner(None).is_ok());
    assert_eq!(c.bind_owner(Some("u2")).unwrap_err().code, "user_mismatch");
}

#[test]
fn internal_secret_is_enforced_when_configured() {
    let cfg = web::Data::new(AuthConfig {
        internal_secret: Some(SecretString::from("s3cret")),
    });
    let req = TestRequest::default()
        .app_data(cfg.clone())
        .insert_header((USER_HEADER, "u1"))
        .to_http_request();
    assert!(Caller::from_request_parts(&req).is_err());
    let req = TestRequest::default()
        .app_data(cfg)
        .insert_header((USER_HEADER, "u1"))
        .insert_header((INTERNAL_SECRET_HEADER, "s3cret"))
        .to_http_request();
    assert!(Caller::from_request_parts(&req).unwrap().trusted);
}
