//! `StubConnector`: a `Connector` whose validate / issue_credentials / revoke answers are set by the
//! test and whose calls are counted (feature `platform`). It mounts no route.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::web;
use chrono::Utc;
use connector_core::{
    async_trait, AuthKind, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, ProviderId, ProviderInfo, SecretValue, Validated,
};
use serde_json::{json, Value};

/// What the next calls of one kind answer.
pub type Answer = Result<(), ConnectorError>;

/// A connector driven by the test. Its credentials are `{"secret": <stored secret>, "issue": n,
/// "mode": "read_only"|"full"}` (n counts the issues, from 1), expiring `ttl` after the issue (none
/// when `ttl` is `None`); with `rotate`, each issue also hands back the stored secret with
/// `"rotated": n` added.
pub struct StubConnector {
    id: ProviderId,
    validate: Mutex<Answer>,
    issue: Mutex<Answer>,
    revoke: Mutex<Answer>,
    ttl: Option<chrono::Duration>,
    rotate: bool,
    validate_calls: AtomicUsize,
    issue_calls: AtomicUsize,
    revoke_calls: AtomicUsize,
}

/// Builds a [`StubConnector`]; every answer is `Ok` unless set.
pub struct StubBuilder {
    id: ProviderId,
    validate: Answer,
    issue: Answer,
    revoke: Answer,
    ttl: Option<chrono::Duration>,
    rotate: bool,
}

impl StubConnector {
    /// A stub with the provider id `id` (letters, digits, `_`, `-`; panics otherwise: tests only).
    pub fn builder(id: &str) -> StubBuilder {
        StubBuilder {
            id: ProviderId::parse(id).unwrap_or_else(|e| panic!("stub provider id {id:?}: {e}")),
            validate: Ok(()),
            issue: Ok(()),
            revoke: Ok(()),
            ttl: Some(chrono::Duration::hours(1)),
            rotate: false,
        }
    }

    /// Change what the next validations answer.
    pub fn set_validate(&self, answer: Answer) {
        *lock(&self.validate) = answer;
    }
    /// Change what the next issues answer.
    pub fn set_issue(&self, answer: Answer) {
        *lock(&self.issue) = answer;
    }
    /// Change what the next revocations answer.
    pub fn set_revoke(&self, answer: Answer) {
        *lock(&self.revoke) = answer;
    }
    pub fn validate_calls(&self) -> usize {
        self.validate_calls.load(Ordering::SeqCst)
    }
    pub fn issue_calls(&self) -> usize {
        self.issue_calls.load(Ordering::SeqCst)
    }
    pub fn revoke_calls(&self) -> usize {
        self.revoke_calls.load(Ordering::SeqCst)
    }
}

impl StubBuilder {
    pub fn validate(mut self, answer: Answer) -> Self {
        self.validate = answer;
        self
    }
    pub fn issue(mut self, answer: Answer) -> Self {
        self.issue = answer;
        self
    }
    pub fn revoke(mut self, answer: Answer) -> Self {
        self.revoke = answer;
        self
    }
    /// Credentials expire this long after they are issued; `None`: they never expire.
    pub fn ttl(mut self, ttl: Option<chrono::Duration>) -> Self {
        self.ttl = ttl;
        self
    }
    /// Every issue hands back a rotated secret.
    pub fn rotate(mut self, rotate: bool) -> Self {
        self.rotate = rotate;
        self
    }
    pub fn build(self) -> Arc<StubConnector> {
        Arc::new(StubConnector {
            id: self.id,
            validate: Mutex::new(self.validate),
            issue: Mutex::new(self.issue),
            revoke: Mutex::new(self.revoke),
            ttl: self.ttl,
            rotate: self.rotate,
            validate_calls: AtomicUsize::new(0),
            issue_calls: AtomicUsize::new(0),
            revoke_calls: AtomicUsize::new(0),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn encode(v: &Value) -> Result<SecretValue, ConnectorError> {
    SecretValue::encode(v)
        .map_err(|e| ConnectorError::InvalidRequest(format!("stub: encoding a secret: {e}")))
}

#[async_trait]
impl Connector for StubConnector {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: self.id.clone(),
            display_name: format!("Stub {}", self.id),
            auth_kind: AuthKind::ApiKey,
            capabilities: vec![],
            open_paths: vec![],
            connect_paths: vec![],
        }
    }

    fn configure(self: Arc<Self>, _cfg: &mut web::ServiceConfig) {}

    async fn validate(
        &self,
        _: &ConnectionRecord,
        _: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        self.validate_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.validate).clone()?;
        Ok(Validated::default())
    }

    async fn issue_credentials(
        &self,
        _: &ConnectionRecord,
        secret: &SecretValue,
        mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let n = self.issue_calls.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.issue).clone()?;
        let stored: Value = secret
            .decode()
            .map_err(|e| ConnectorError::InvalidRequest(format!("stub: decoding a secret: {e}")))?;
        let updated_secret = if self.rotate {
            let mut rotated = stored.clone();
            if let Some(obj) = rotated.as_object_mut() {
                obj.insert("rotated".into(), json!(n));
            }
            Some(encode(&rotated)?)
        } else {
            None
        };
        Ok(IssuedCredentials {
            credentials: encode(&json!({"secret": stored, "issue": n, "mode": mode}))?,
            expires_at: self.ttl.map(|ttl| Utc::now() + ttl),
            updated_secret,
        })
    }

    async fn revoke(&self, _: &ConnectionRecord, _: &SecretValue) -> Result<(), ConnectorError> {
        self.revoke_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.revoke).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestPlatform;
    use connector_core::{Actor, ConnectSpec, ConnectionStatus, Settings, UserId};

    async fn connect(tp: &TestPlatform, stub: &StubConnector) -> ConnectionRecord {
        let spec = ConnectSpec {
            user: UserId::parse("alice").unwrap(),
            provider: stub.info().id,
            account_id: "acct-1".into(),
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
                json!({"secret": {"seed": "s1"}, "issue": 1, "mode": "full"})
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
        assert_eq!(stored, json!({"seed": "s1", "rotated": 2}));
    }
}
