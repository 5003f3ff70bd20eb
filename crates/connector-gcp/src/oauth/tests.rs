//! Unit tests of the OAuth helpers: PKCE, state, sealed logins, ID tokens and token errors.

use super::*;
use connector_core::Settings;

#[test]
fn pkce_rfc7636_vector() {
    // RFC 7636, appendix B.
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn random_tokens_are_long_url_safe_and_distinct() {
    let a = random_token();
    let b = random_token();
    assert_eq!(a.len(), 43);
    assert_ne!(*a, *b);
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_eq!(state_hash("abc").len(), 64);
    assert_ne!(state_hash("abc"), "abc");
}

#[test]
fn authorization_url_is_form_encoded() {
    let cfg = GcpConfig::from_settings(
        &Settings::new()
            .with("AURORA_PUBLIC_URL", "https://aurora.example")
            .with(crate::config::AUTH_URL, "https://auth.example/o/auth?hd=x"),
    )
    .unwrap();
    let url = authorization_url(&cfg, "client.apps", "st-ate", "chal");
    assert!(url.starts_with("https://auth.example/o/auth?hd=x&response_type=code&"));
    assert!(url.contains("client_id=client.apps"));
    assert!(url.contains("redirect_uri=https%3A%2F%2Faurora.example%2Fgcp%2Fcallback"));
    assert!(
        url.contains("scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform+openid+email")
    );
    assert!(url.contains("access_type=offline"));
    assert!(url.contains("prompt=consent"));
    assert!(url.contains("code_challenge=chal&code_challenge_method=S256"));
    assert!(url.ends_with("state=st-ate"));
}

#[test]
fn sealed_login_round_trip_and_browser_binding() {
    let cookie = random_token();
    let l = SealedLogin {
        verifier: random_token(),
        browser_hash: Some(state_hash(&cookie)),
    };
    let back = SealedLogin::from_bytes(&l.to_bytes()).unwrap();
    assert_eq!(*back.verifier, *l.verifier);
    assert!(back.browser_matches(&cookie));
    assert!(
        !back.browser_matches(&random_token()),
        "another browser's cookie"
    );
    assert!(!back.browser_matches(""));
    // Unbound (the setting off) and the older format (the bare verifier): no cookie matches.
    let unbound = SealedLogin {
        verifier: random_token(),
        browser_hash: None,
    };
    let back = SealedLogin::from_bytes(&unbound.to_bytes()).unwrap();
    assert!(back.browser_hash.is_none() && !back.browser_matches(&cookie));
    let legacy = SealedLogin::from_bytes(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
    assert_eq!(
        *legacy.verifier,
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    assert!(legacy.browser_hash.is_none());
    assert!(SealedLogin::from_bytes(b"").is_none());
    assert!(SealedLogin::from_bytes(b"{not json").is_none());
    // One cookie name per login, not revealing the state.
    let st = random_token();
    let name = browser_cookie_name(&st);
    assert!(name.starts_with("aurora_gcp_state_") && name.len() == 33);
    assert_ne!(name, browser_cookie_name(&random_token()));
    assert!(!name.contains(st.as_str()));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(!constant_time_eq(b"", b"a"));
}

#[test]
fn id_token_claims() {
    let payload =
        URL_SAFE_NO_PAD.encode(br#"{"sub":"123","email":"a@example.com","aud":"cid","iss":"x"}"#);
    let t = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig");
    assert_eq!(
        id_token_identity(&t, "cid"),
        Some(Identity {
            sub: "123".into(),
            email: Some("a@example.com".into())
        })
    );
    assert_eq!(
        id_token_identity(&t, "other"),
        None,
        "another client's token"
    );
    let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"johndoe","aud":["cid"]}"#);
    let t = format!("h.{payload}.s");
    let i = id_token_identity(&t, "cid").unwrap();
    assert_eq!(i.account_id(), "johndoe", "falls back to sub");
    // `aud` is required (OpenID Connect Core §2): without it, or empty, the token names nobody.
    for claims in [
        br#"{"sub":"123","email":"a@example.com"}"#.as_slice(),
        br#"{"sub":"123","email":"a@example.com","aud":null}"#,
        br#"{"sub":"123","email":"a@example.com","aud":[]}"#,
        br#"{"sub":"123","email":"a@example.com","aud":""}"#,
    ] {
        let t = format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(
            id_token_identity(&t, "cid"),
            None,
            "{}",
            String::from_utf8_lossy(claims)
        );
    }
    assert_eq!(id_token_identity("garbage", "cid"), None);
    assert_eq!(id_token_identity("a.!!!.c", "cid"), None);
}

#[test]
fn token_errors() {
    let h = reqwest::header::HeaderMap::new();
    let code = oauth_error_code(br#"{"error":"invalid_grant","error_description":"Bad Request"}"#);
    assert_eq!(code.as_deref(), Some("invalid_grant"));
    assert!(token_error(StatusCode::BAD_REQUEST, code.as_deref(), &h).is_refusal());
    assert_eq!(oauth_error_code(br#"{"error":"<script>"}"#), None);
    assert_eq!(oauth_error_code(br#"{"error":{"code":400}}"#), None);
    assert!(matches!(
        token_error(StatusCode::UNAUTHORIZED, Some("invalid_client"), &h),
        ConnectorError::ProviderUnavailable(_)
    ));
    assert!(matches!(
        token_error(StatusCode::TOO_MANY_REQUESTS, None, &h),
        ConnectorError::RateLimited { .. }
    ));
    assert!(matches!(
        token_error(StatusCode::BAD_GATEWAY, None, &h),
        ConnectorError::ProviderUnavailable(_)
    ));
    assert!(matches!(
        token_error(StatusCode::BAD_REQUEST, Some("invalid_request"), &h),
        ConnectorError::InvalidRequest(_)
    ));
}

#[test]
fn token_response_debug_is_redacted() {
    let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ya29.secret","expires_in":3599,"refresh_token":"1//rt-secret","scope":"a b","token_type":"Bearer","id_token":"x.y.z"}"#,
        )
        .unwrap();
    let d = format!("{t:?}");
    assert!(
        !d.contains("ya29.secret") && !d.contains("rt-secret"),
        "{d}"
    );
    let now = Utc::now();
    assert_eq!(t.expires_at(now), now + chrono::Duration::seconds(3599));
    assert_eq!(t.token_type(), "Bearer");
    let t: TokenResponse =
        serde_json::from_str(r#"{"access_token":"a","refresh_token":""}"#).unwrap();
    assert!(t.refresh_token.is_none());
}
