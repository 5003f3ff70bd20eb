//! Tests of the stub connector through a real platform.

use super::*;
use crate::TestPlatform;
use connector_core::{Actor, ConnectSpec, ConnectionStatus, Settings, UserId};

async fn connect(tp: &TestPlatform, stub: &StubConnector) -> ConnectionRecord {
    connect_account(tp, stub, "acct-1").await
}

async fn connect_account(
    tp: &TestPlatform,
    stub: &StubConnector,
    account: &str,
) -> ConnectionRecord {
    let spec = ConnectSpec {
        user: UserId::parse("alice").unwrap(),
        provider: stub.info().id,
        account_id: account.into(),
        display_name: None,
        read_only: false,
        metadata: json!({}),
        expires_at: None,
        status: ConnectionStatus::Active,
        secret: SecretValue::encode(&json!({"seed": "s1"})).unwrap(),
    };
    tp.platform.connect(spec, Actor::User).await.unwrap().0
}

#[tokio::test]
async fn answers_are_the_tests_and_calls_are_counted() {
    let tp = TestPlatform::new(Settings::new()).await.unwrap();
    let stub = StubConnector::builder("stubby")
        .validate(Err(ConnectorError::CredentialsRejected("no".into())))
        .build();
    let conn = connect(&tp, &stub).await;
    assert_eq!(tp.rows("alice").await.unwrap().len(), 1);

    let checked = tp
        .platform
        .validate(stub.as_ref(), &conn, Actor::User)
        .await
        .unwrap();
    assert_eq!(checked.status, ConnectionStatus::NeedsReconnect);
    assert_eq!(stub.validate_calls(), 1);
    stub.set_validate(Ok(()));
    let checked = tp
        .platform
        .validate(stub.as_ref(), &checked, Actor::User)
        .await
        .unwrap();
    assert_eq!(checked.status, ConnectionStatus::Active);
    assert_eq!(stub.validate_calls(), 2);

    // Issued once, then served from the broker's cache.
    for _ in 0..3 {
        let creds = tp
            .platform
            .credentials(stub.clone(), &checked, CredentialMode::Full)
            .await
            .unwrap();
        let v: Value = creds.credentials.decode().unwrap();
        assert_eq!(
            v,
            json!({"token": "s1-1", "secret": {"seed": "s1"}, "issue": 1, "mode": "full"})
        );
        assert!(creds.expires_at.unwrap() > Utc::now());
    }
    assert_eq!(stub.issue_calls(), 1);

    // A refused revoke is counted and does not keep the row or the secret.
    stub.set_revoke(Err(ConnectorError::ProviderUnavailable("down".into())));
    tp.platform
        .disconnect(stub.as_ref(), &checked, Actor::User)
        .await
        .unwrap();
    assert_eq!(stub.revoke_calls(), 1);
    assert!(tp.row("alice", conn.id).await.unwrap().is_none());
    assert!(!tp.has_secret(&conn.secret_ref).await.unwrap());
}

#[tokio::test]
async fn a_refused_issue_reaches_the_caller_and_rotation_is_written_back() {
    let tp = TestPlatform::new(Settings::new()).await.unwrap();
    let stub = StubConnector::builder("stubby")
        .issue(Err(ConnectorError::ProviderUnavailable("503".into())))
        .rotate(true)
        .build();
    let conn = connect(&tp, &stub).await;
    let err = tp
        .platform
        .credentials(stub.clone(), &conn, CredentialMode::ReadOnly)
        .await
        .unwrap_err();
    assert_eq!(err.status.as_u16(), 502, "{err:?}");
    assert_eq!(stub.issue_calls(), 1);

    stub.set_issue(Ok(()));
    let creds = tp
        .platform
        .credentials(stub.clone(), &conn, CredentialMode::ReadOnly)
        .await
        .unwrap();
    let v: Value = creds.credentials.decode().unwrap();
    assert_eq!(v["issue"], 2);
    assert_eq!(v["mode"], "read_only");
    let stored = tp.platform.load_secret(&conn).await.unwrap().unwrap();
    let stored: Value = stored.decode().unwrap();
    assert_eq!(stored, json!({"seed": "s1+r", "rotated": 2}));
    // The next issue starts from the rotated secret.
    let secret = tp.platform.load_secret(&conn).await.unwrap().unwrap();
    let issued = stub
        .issue_credentials(&conn, &secret, CredentialMode::Full)
        .await
        .unwrap();
    let v: Value = issued.credentials.decode().unwrap();
    assert_eq!(v["token"], "s1+r-3");
}

#[tokio::test]
async fn ttls_and_delays_are_the_tests() {
    let tp = TestPlatform::new(Settings::new()).await.unwrap();
    let stub = StubConnector::builder("stubby")
        .first_ttl(Some(chrono::Duration::minutes(6)))
        .ttl(None)
        .issue_delay(std::time::Duration::from_millis(30))
        .build();
    let conn = connect(&tp, &stub).await;
    let secret = tp.platform.load_secret(&conn).await.unwrap().unwrap();
    let issue = || async {
        let started = std::time::Instant::now();
        let issued = stub
            .issue_credentials(&conn, &secret, CredentialMode::Full)
            .await
            .unwrap();
        (issued, started.elapsed())
    };
    let (first, took) = issue().await;
    let left = first.expires_at.unwrap() - Utc::now();
    assert!(left > chrono::Duration::minutes(5) && left <= chrono::Duration::minutes(6));
    assert!(took >= std::time::Duration::from_millis(30), "{took:?}");
    let (second, _) = issue().await;
    assert_eq!(second.expires_at, None, "ttl None after the first issue");
    stub.set_ttl(Some(chrono::Duration::seconds(10)));
    stub.delay_next_issue(std::time::Duration::from_millis(200));
    let (third, took) = issue().await;
    assert!(third.expires_at.unwrap() <= Utc::now() + chrono::Duration::seconds(10));
    assert!(took >= std::time::Duration::from_millis(230), "{took:?}");
    let (_, took) = issue().await;
    assert!(
        took < std::time::Duration::from_millis(200),
        "one-shot: {took:?}"
    );
    assert_eq!(stub.issue_calls(), 4);
    let v: Value = third.credentials.decode().unwrap();
    assert_eq!(v["token"], "s1-3");
}

#[tokio::test]
async fn validations_answer_and_count_per_account() {
    let tp = TestPlatform::new(Settings::new()).await.unwrap();
    let stub = StubConnector::builder("stubby")
        .validate_delay(|account| {
            std::time::Duration::from_millis(if account == "slow" { 100 } else { 1 })
        })
        .build();
    let slow = connect_account(&tp, &stub, "slow").await;
    let fast = connect_account(&tp, &stub, "fast").await;
    let other = connect_account(&tp, &stub, "other").await;
    stub.set_validate_for("fast", unavailable());
    stub.set_validate_for("other", refused());
    let secret = SecretValue::encode(&json!({})).unwrap();
    let (a, b, c, d) = tokio::join!(
        stub.validate(&slow, &secret),
        stub.validate(&slow, &secret),
        stub.validate(&fast, &secret),
        stub.validate(&other, &secret),
    );
    assert!(a.is_ok() && b.is_ok());
    assert!(matches!(c, Err(ConnectorError::ProviderUnavailable(_))));
    assert!(matches!(d, Err(ConnectorError::CredentialsRejected(_))));
    assert_eq!(stub.validate_calls(), 4);
    assert_eq!(stub.validate_calls_of("slow"), 2);
    assert_eq!(stub.validate_calls_of("fast"), 1);
    assert_eq!(stub.validate_calls_of("nobody"), 0);
    assert_eq!(stub.validate_overlaps(), 1, "the two checks of `slow`");
    assert_eq!(stub.max_validate_in_flight(), 4);
    assert_eq!(stub.validate_in_flight(), 0);
    // The common answer covers the accounts without one of their own.
    stub.set_validate(refused());
    assert!(stub.validate(&slow, &secret).await.is_err());
    assert!(matches!(
        stub.validate(&fast, &secret).await,
        Err(ConnectorError::ProviderUnavailable(_))
    ));
    assert_eq!(stub.validate_overlaps(), 1);
}
