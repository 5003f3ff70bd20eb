//! `StubConnector`: a `Connector` whose validate / issue_credentials / revoke answers (and delays)
//! are set by the test and whose calls are counted (feature `platform`). It mounts no route.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web;
use chrono::Utc;
use connector_core::{
    async_trait, AuthKind, ConnectionRecord, Connector, ConnectorError, CredentialMode,
    IssuedCredentials, ProviderId, ProviderInfo, SecretValue, Validated,
};
use serde_json::{json, Value};

/// What the next calls of one kind answer.
pub type Answer = Result<(), ConnectorError>;

/// How long a validation of one account takes (by the connection's `account_id`).
pub type DelayFn = dyn Fn(&str) -> Duration + Send + Sync;

/// A passing failure, as a provider answering 503 gives: a checked connection goes `degraded`.
pub fn unavailable() -> Answer {
    Err(ConnectorError::ProviderUnavailable(
        "the provider answered 503".into(),
    ))
}

/// A refusal, as a provider answering 401 gives: a checked connection goes `needs_reconnect`.
pub fn refused() -> Answer {
    Err(ConnectorError::CredentialsRejected(
        "the provider refused the key (401)".into(),
    ))
}

/// A connector driven by the test.
///
/// Credentials: `{"token": "<seed>-<n>", "secret": <stored secret>, "issue": n, "mode":
/// "read_only"|"full"}`, where n counts the issues (from 1, in the order the calls arrive) and the
/// seed is the stored secret's `"seed"` string (`tok` without one). They expire `ttl` after the
/// issue (never when `ttl` is `None`); the first issue uses `first_ttl` when set. With `rotate`,
/// each issue also hands back the stored secret with `"seed": "<seed>+r"` and `"rotated": n`.
///
/// Validation answers the account's own answer when one was set (`set_validate_for`), else the
/// common one, after the account's delay (`validate_delay`). Validations are counted per account,
/// with the number in flight, the most in flight at once, and how many overlapped another
/// validation of the same account.
pub struct StubConnector {
    id: ProviderId,
    validate: Mutex<Answer>,
    validate_for: Mutex<HashMap<String, Answer>>,
    validate_delay: Option<Box<DelayFn>>,
    issue: Mutex<Answer>,
    revoke: Mutex<Answer>,
    ttl: Mutex<Option<chrono::Duration>>,
    first_ttl: Option<Option<chrono::Duration>>,
    rotate: bool,
    issue_delay: Duration,
    next_issue_delay: Mutex<Duration>,
    validate_calls: AtomicUsize,
    validations: Mutex<Validations>,
    issue_calls: AtomicUsize,
    revoke_calls: AtomicUsize,
}

/// The validation counts.
#[derive(Default)]
struct Validations {
    per_account: HashMap<String, usize>,
    in_flight_per_account: HashMap<String, usize>,
    in_flight: usize,
    max_in_flight: usize,
    overlaps: usize,
}

/// Builds a [`StubConnector`]; every answer is `Ok` and nothing is delayed unless set.
pub struct StubBuilder {
    id: ProviderId,
    validate: Answer,
    validate_delay: Option<Box<DelayFn>>,
    issue: Answer,
    revoke: Answer,
    ttl: Option<chrono::Duration>,
    first_ttl: Option<Option<chrono::Duration>>,
    rotate: bool,
    issue_delay: Duration,
}

impl StubConnector {
    /// A stub with the provider id `id` (letters, digits, `_`, `-`; panics otherwise: tests only).
    pub fn builder(id: &str) -> StubBuilder {
        StubBuilder {
            id: ProviderId::parse(id).unwrap_or_else(|e| panic!("stub provider id {id:?}: {e}")),
            validate: Ok(()),
            validate_delay: None,
            issue: Ok(()),
            revoke: Ok(()),
            ttl: Some(chrono::Duration::hours(1)),
            first_ttl: None,
            rotate: false,
            issue_delay: Duration::ZERO,
        }
    }

    /// Change what the next validations answer (accounts without an answer of their own).
    pub fn set_validate(&self, answer: Answer) {
        *lock(&self.validate) = answer;
    }
    /// Change what the next validations of `account` answer.
    pub fn set_validate_for(&self, account: &str, answer: Answer) {
        lock(&self.validate_for).insert(account.to_owned(), answer);
    }
    /// Change what the next issues answer.
    pub fn set_issue(&self, answer: Answer) {
        *lock(&self.issue) = answer;
    }
    /// Change what the next revocations answer.
    pub fn set_revoke(&self, answer: Answer) {
        *lock(&self.revoke) = answer;
    }
    /// Credentials issued from now on expire this long after the issue (`None`: never).
    pub fn set_ttl(&self, ttl: Option<chrono::Duration>) {
        *lock(&self.ttl) = ttl;
    }
    /// The next issue (only) takes `extra` longer than the others.
    pub fn delay_next_issue(&self, extra: Duration) {
        *lock(&self.next_issue_delay) = extra;
    }
    /// Validations so far, of every account.
    pub fn validate_calls(&self) -> usize {
        self.validate_calls.load(Ordering::SeqCst)
    }
    /// Validations of `account` so far.
    pub fn validate_calls_of(&self, account: &str) -> usize {
        lock(&self.validations)
            .per_account
            .get(account)
            .copied()
            .unwrap_or(0)
    }
    /// Validations running now.
    pub fn validate_in_flight(&self) -> usize {
        lock(&self.validations).in_flight
    }
    /// The most validations that ran at once.
    pub fn max_validate_in_flight(&self) -> usize {
        lock(&self.validations).max_in_flight
    }
    /// Validations that started while another one of the same account was running.
    pub fn validate_overlaps(&self) -> usize {
        lock(&self.validations).overlaps
    }
    /// Issues so far (counted as they start).
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
    /// A validation of an account takes `delay(account_id)` before it answers.
    pub fn validate_delay(
        mut self,
        delay: impl Fn(&str) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.validate_delay = Some(Box::new(delay));
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
    /// The credentials of the first issue (only) expire this long after it.
    pub fn first_ttl(mut self, ttl: Option<chrono::Duration>) -> Self {
        self.first_ttl = Some(ttl);
        self
    }
    /// Every issue takes this long (a slow provider: concurrent callers pile up behind the first).
    pub fn issue_delay(mut self, delay: Duration) -> Self {
        self.issue_delay = delay;
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
            validate_for: Mutex::new(HashMap::new()),
            validate_delay: self.validate_delay,
            issue: Mutex::new(self.issue),
            revoke: Mutex::new(self.revoke),
            ttl: Mutex::new(self.ttl),
            first_ttl: self.first_ttl,
            rotate: self.rotate,
            issue_delay: self.issue_delay,
            next_issue_delay: Mutex::new(Duration::ZERO),
            validate_calls: AtomicUsize::new(0),
            validations: Mutex::new(Validations::default()),
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

/// One validation of `account` in flight; counted out when dropped (also when the call is
/// cancelled).
struct InFlight<'a> {
    stub: &'a StubConnector,
    account: &'a str,
}

impl<'a> InFlight<'a> {
    fn start(stub: &'a StubConnector, account: &'a str) -> Self {
        let mut v = lock(&stub.validations);
        *v.per_account.entry(account.to_owned()).or_default() += 1;
        v.in_flight += 1;
        v.max_in_flight = v.max_in_flight.max(v.in_flight);
        let n = v
            .in_flight_per_account
            .entry(account.to_owned())
            .or_default();
        *n += 1;
        if *n > 1 {
            v.overlaps += 1;
        }
        Self { stub, account }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut v = lock(&self.stub.validations);
        v.in_flight = v.in_flight.saturating_sub(1);
        if let Some(n) = v.in_flight_per_account.get_mut(self.account) {
            *n = n.saturating_sub(1);
        }
    }
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
        conn: &ConnectionRecord,
        _: &SecretValue,
    ) -> Result<Validated, ConnectorError> {
        self.validate_calls.fetch_add(1, Ordering::SeqCst);
        let account = conn.account_id.as_str();
        let in_flight = InFlight::start(self, account);
        if let Some(delay) = &self.validate_delay {
            // The provider's own slowness (part of the scenario, not synchronization).
            tokio::time::sleep(delay(account)).await;
        }
        drop(in_flight);
        let own = lock(&self.validate_for).get(account).cloned();
        own.unwrap_or_else(|| lock(&self.validate).clone())?;
        Ok(Validated::default())
    }

    async fn issue_credentials(
        &self,
        _: &ConnectionRecord,
        secret: &SecretValue,
        mode: CredentialMode,
    ) -> Result<IssuedCredentials, ConnectorError> {
        let n = self.issue_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let extra = std::mem::take(&mut *lock(&self.next_issue_delay));
        let delay = self.issue_delay + extra;
        if !delay.is_zero() {
            // The provider's own slowness (part of the scenario, not synchronization).
            tokio::time::sleep(delay).await;
        }
        lock(&self.issue).clone()?;
        let stored: Value = secret
            .decode()
            .map_err(|e| ConnectorError::InvalidRequest(format!("stub: decoding a secret: {e}")))?;
        let seed = stored["seed"].as_str().unwrap_or("tok").to_owned();
        let updated_secret = if self.rotate {
            let mut rotated = stored.clone();
            if let Some(obj) = rotated.as_object_mut() {
                if obj.contains_key("seed") {
                    obj.insert("seed".into(), json!(format!("{seed}+r")));
                }
                obj.insert("rotated".into(), json!(n));
            }
            Some(encode(&rotated)?)
        } else {
            None
        };
        let ttl = match self.first_ttl {
            Some(first) if n == 1 => first,
            _ => *lock(&self.ttl),
        };
        Ok(IssuedCredentials {
            credentials: encode(&json!({
                "token": format!("{seed}-{n}"),
                "secret": stored,
                "issue": n,
                "mode": mode,
            }))?,
            expires_at: ttl.map(|ttl| Utc::now() + ttl),
            updated_secret,
        })
    }

    async fn revoke(&self, _: &ConnectionRecord, _: &SecretValue) -> Result<(), ConnectorError> {
        self.revoke_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.revoke).clone()
    }
}

#[cfg(test)]
mod tests;
