//! Unit tests of the STS client: failure classification and credential conversion.

use super::*;

#[test]
fn codes_are_classified() {
    assert_eq!(
        classify_code(Some("AccessDenied"), 403),
        FailureKind::AccessDenied
    );
    assert_eq!(classify_code(None, 403), FailureKind::AccessDenied);
    assert_eq!(
        classify_code(Some("InvalidClientTokenId"), 403),
        FailureKind::GatewayCredentials("InvalidClientTokenId".into())
    );
    assert_eq!(
        classify_code(Some("Throttling"), 400),
        FailureKind::Throttled
    );
    assert_eq!(classify_code(None, 429), FailureKind::Throttled);
    assert_eq!(
        classify_code(None, 503),
        FailureKind::ServerError(Some(503))
    );
    assert_eq!(
        classify_code(Some("InternalFailure"), 500),
        FailureKind::ServerError(Some(500))
    );
    assert_eq!(
        classify_code(Some("RegionDisabledException"), 403),
        FailureKind::RegionDisabled
    );
    assert_eq!(
        classify_code(Some("ValidationError"), 400),
        FailureKind::Validation("ValidationError".into())
    );
    assert_eq!(
        classify_code(Some("Weird"), 400),
        FailureKind::Unexpected {
            code: Some("Weird".into()),
            status: Some(400)
        }
    );
    for k in [
        FailureKind::Throttled,
        FailureKind::ServerError(None),
        FailureKind::Unreachable,
        FailureKind::Timeout,
    ] {
        assert!(k.is_transient());
    }
    for k in [
        FailureKind::AccessDenied,
        FailureKind::RegionDisabled,
        FailureKind::GatewayCredentials("x".into()),
        FailureKind::Validation("x".into()),
    ] {
        assert!(!k.is_transient());
    }
}

#[test]
fn backoff_grows_within_bounds() {
    let cfg = AwsConfig {
        retry_base: Duration::from_millis(100),
        ..AwsConfig::default()
    };
    let c = StsClient::new(&cfg, Arc::new(Metrics::new()));
    for _ in 0..50 {
        let d2 = c.backoff(2);
        assert!(d2 >= Duration::from_millis(50) && d2 <= Duration::from_millis(100));
        let d4 = c.backoff(4);
        assert!(d4 >= Duration::from_millis(200) && d4 <= Duration::from_millis(400));
        assert!(c.backoff(30) <= MAX_BACKOFF);
    }
}

#[test]
fn session_credentials_debug_is_redacted() {
    let s = SessionCredentials {
        access_key_id: "ASIAX".into(),
        secret_access_key: SecretString::from("sekrit".to_owned()),
        session_token: SecretString::from("t0ken".to_owned()),
        expiration: Utc::now(),
    };
    let d = format!("{s:?}");
    assert!(d.contains("ASIAX") && !d.contains("sekrit") && !d.contains("t0ken"));
}
