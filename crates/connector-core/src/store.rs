//! The relational store trait and its records: connections, audit events, OAuth states, external IDs,
//! setup tasks.
//!
//! Implementations live in `connector-store` (PostgreSQL and the embedded SQLite). The contract of each
//! method is written here and checked by the conformance suite in that crate, against both.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};

/// A connection row. It holds a *reference* into the secret store, never a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub provider: ProviderId,
    /// The provider-side account: AWS account number, Google e-mail, Azure subscription id,
    /// Scaleway organization id, Tailscale tailnet.
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub read_only: bool,
    /// Path of the connection's secret in the secret store (relative to the store's root).
    pub secret_ref: String,
    /// Non-secret, provider-specific metadata (project ids, regions, role ARNs, …).
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a connect writes. On `(user_id, provider, account_id)` conflict the existing row is updated
/// (its `id` and `created_at` are kept) with every other field of this value.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub provider: ProviderId,
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub read_only: bool,
    pub secret_ref: String,
    pub metadata: serde_json::Value,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A status change after a live check.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub last_validated_at: Option<DateTime<Utc>>,
}

/// One line of the audit trail. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub provider: Option<ProviderId>,
    /// `connect`, `reconnect`, `disconnect`, `credentials_issued`, `status_changed`, `rotate`, …
    pub action: String,
    /// Who asked: `user` for the owner through the frontend, `internal` for a trusted service, `system`.
    pub actor: String,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A pending OAuth authorization (GCP login): looked up by the hash of `state`, used once.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthStateRecord {
    /// SHA-256 (hex) of the `state` value; the raw value is never stored.
    pub state_hash: String,
    pub user_id: UserId,
    pub provider: ProviderId,
    /// The PKCE verifier, sealed by the caller; opaque to the store.
    pub sealed_verifier: Vec<u8>,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The lifecycle state of a setup task (§2: `PENDING`, `STARTED`, `PROGRESS`, `SUCCESS`, `FAILURE`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SetupState {
    /// Queued; no worker has taken it yet.
    Pending,
    /// A worker took it; no step has started.
    Started,
    /// A step is running (or the task waits for a retry after a passing fault).
    Progress,
    /// Finished (also when it finished by asking the user to choose, see the task's `result`).
    Success,
    /// Finished with an error.
    Failure,
}

impl SetupState {
    pub const ALL: [SetupState; 5] = [
        Self::Pending,
        Self::Started,
        Self::Progress,
        Self::Success,
        Self::Failure,
    ];
    /// The states a worker may still claim.
    pub const LIVE: [SetupState; 3] = [Self::Pending, Self::Started, Self::Progress];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Started => "STARTED",
            Self::Progress => "PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }

    /// `SUCCESS` or `FAILURE`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failure)
    }
}

impl FromStr for SetupState {
    type Err = crate::ids::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(crate::ids::ParseError("unknown setup task state"))
    }
}

impl fmt::Display for SetupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durable setup task (the GCP post-auth setup): worked by any replica under a lease.
///
/// `input` is the task's private working document (its input and the checkpoint of the finished steps);
/// `result` is what the owner is shown. Neither ever holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupTaskRecord {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub provider: ProviderId,
    pub state: SetupState,
    /// 0 before the first step starts, then 1..=`total_steps`. Never goes down.
    pub step: i32,
    pub total_steps: i32,
    /// 0-100. Never goes down.
    pub progress: i32,
    /// A human-readable message about the current step.
    pub status_message: String,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub input: serde_json::Value,
    /// How many times a worker claimed the task.
    pub attempts: i32,
    /// The worker holding the lease, if any.
    pub lease_owner: Option<String>,
    /// With an owner: when the lease lapses. Without one: the task is not claimable before this
    /// instant (a retry's back-off); `None` means at once.
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What creating a setup task writes. The task starts without a lease, claimable at once.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSetupTask {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub provider: ProviderId,
    /// Normally `Pending`; a live state in any case.
    pub state: SetupState,
    pub step: i32,
    pub total_steps: i32,
    pub progress: i32,
    pub status_message: String,
    pub input: serde_json::Value,
}

/// A progress report of the lease holder.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupProgress {
    /// A live state (`Started` or `Progress`).
    pub state: SetupState,
    /// Stored as the larger of this and the stored step.
    pub step: i32,
    /// Stored as the larger of this and the stored progress (clamped to 0..=100).
    pub progress: i32,
    pub status_message: String,
    /// Replaces the working document when given.
    pub input: Option<serde_json::Value>,
    /// Extends the lease to this instant when given.
    pub lease_until: Option<DateTime<Utc>>,
}

/// How the lease holder ends a task.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupOutcome {
    /// `Success` or `Failure`.
    pub state: SetupState,
    /// Stored as the larger of this and the stored progress.
    pub progress: i32,
    pub status_message: String,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
    /// Replaces the working document when given.
    pub input: Option<serde_json::Value>,
}

/// A connection claimed for a scheduled status check (see [`Store::claim_due_checks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckClaim {
    pub connection: ConnectionRecord,
    /// Passing failures in a row before this check (drives the back-off).
    pub failures: i32,
}

/// One connection's cached credentials of one mode, claimed for a refresh ahead of use (see
/// [`Store::claim_due_refreshes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshClaim {
    pub connection: ConnectionRecord,
    pub mode: crate::ids::CredentialMode,
}

fn setup_tasks_unsupported<T>() -> Result<T, StoreError> {
    Err(StoreError::Other(
        "setup tasks are not supported by this store".into(),
    ))
}

fn outbox_unsupported<T>() -> Result<T, StoreError> {
    Err(StoreError::Other(
        "the webhook outbox is not supported by this store".into(),
    ))
}

/// The relational store. Every query that names a connection is scoped by its owner: a row of another
/// user behaves exactly like a row that does not exist.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend_name(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Insert a connection, or update the one with the same `(user_id, provider, account_id)`.
    /// Returns the stored row and `true` when it was inserted. An update keeps the row's id and
    /// its `secret_ref` (the caller moves its secret there when the two differ).
    async fn upsert_connection(
        &self,
        new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError>;

    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// The user's connections, oldest first, optionally of one provider.
    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Set status, reason and (when given) `last_validated_at`; bumps `updated_at`.
    /// `None` when no such connection of that user exists.
    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Replace metadata and `expires_at`; bumps `updated_at`.
    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// `true` when a row was deleted.
    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError>;

    /// Of these secret paths, the ones that a connection row (of any user) references as its
    /// `secret_ref`. The reconciler deletes the secrets that no row references.
    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError>;

    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError>;

    /// Append several events at once (one statement where the store can). Default: one by one.
    async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        for e in events {
            self.append_audit(e).await?;
        }
        Ok(())
    }

    /// The user's audit events, newest first, at most `limit`.
    async fn list_audit(
        &self,
        user: &UserId,
        connection: Option<ConnectionId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Delete audit events older than `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError>;

    /// Remove and return the state with this hash if it exists and has not expired at `now`.
    /// Single use: a second call with the same hash returns `None`, also under concurrency.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError>;

    /// The user's external ID (AWS): returns the stored one, or stores `candidate` if there is none.
    /// Read, without taking it, the state with this hash if it exists and has not expired at `now`
    /// (the GCP callback checks the browser binding before it uses the state up). Default: refuses.
    async fn peek_oauth_state(
        &self,
        _state_hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        Err(StoreError::Other(
            "reading an OAuth state without taking it is not supported by this store".into(),
        ))
    }

    async fn get_or_create_external_id(
        &self,
        user: &UserId,
        candidate: &str,
    ) -> Result<String, StoreError>;

    /// Replace the user's external ID with `new` (creating it if absent); returns `new`.
    async fn rotate_external_id(&self, user: &UserId, new: &str) -> Result<String, StoreError>;

    // ---- setup tasks (durable, leased; see `SetupTaskRecord`) ----
    // Every method has a default that refuses, so stores without the table keep compiling.

    /// Insert a task; returns the stored row.
    async fn create_setup_task(&self, _task: NewSetupTask) -> Result<SetupTaskRecord, StoreError> {
        setup_tasks_unsupported()
    }

    /// One task of `user`; `None` for another user's task, as for one that does not exist.
    async fn get_setup_task(
        &self,
        _user: &UserId,
        _id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        setup_tasks_unsupported()
    }

    /// Take the oldest due live task of `provider` for `worker`: one whose lease is absent or lapsed
    /// at `now` (a lapsed lease is taken over). Sets the lease to `lease_until`, adds one to
    /// `attempts`, and moves `PENDING` to `STARTED`. Of concurrent claimers exactly one gets a task.
    async fn claim_setup_task(
        &self,
        _provider: &ProviderId,
        _worker: &str,
        _now: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        setup_tasks_unsupported()
    }

    /// Extend the lease of `worker`; `false` when it no longer holds a lease on a live task.
    async fn renew_setup_lease(
        &self,
        _id: uuid::Uuid,
        _worker: &str,
        _lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        setup_tasks_unsupported()
    }

    /// Record progress as the lease holder. Step and progress never go down. `false` (nothing
    /// written) when `worker` no longer holds the lease or the task has ended (cancelled).
    async fn save_setup_progress(
        &self,
        _id: uuid::Uuid,
        _worker: &str,
        _progress: SetupProgress,
    ) -> Result<bool, StoreError> {
        setup_tasks_unsupported()
    }

    /// End the task as the lease holder (`SUCCESS` or `FAILURE`) and drop the lease; `false` when
    /// `worker` no longer holds it or the task already ended.
    async fn finish_setup_task(
        &self,
        _id: uuid::Uuid,
        _worker: &str,
        _outcome: SetupOutcome,
    ) -> Result<bool, StoreError> {
        setup_tasks_unsupported()
    }

    /// Give the lease back without ending the task, claimable again from `not_before` (a retry's
    /// back-off), with a message for the owner. `false` when `worker` no longer holds it.
    async fn release_setup_task(
        &self,
        _id: uuid::Uuid,
        _worker: &str,
        _not_before: DateTime<Utc>,
        _status_message: &str,
    ) -> Result<bool, StoreError> {
        setup_tasks_unsupported()
    }

    /// End every live task of `user` and `provider` (only those of `connection` when given) as
    /// `FAILURE` with `reason`, dropping their leases; returns how many. A worker still running one
    /// finds out at its next write.
    async fn cancel_setup_tasks(
        &self,
        _user: &UserId,
        _provider: &ProviderId,
        _connection: Option<ConnectionId>,
        _reason: &str,
    ) -> Result<u64, StoreError> {
        setup_tasks_unsupported()
    }

    /// Up to `limit` connections of `provider` in status `pending`, last updated before
    /// `updated_before`, that no live setup task (`PENDING`, `STARTED`, `PROGRESS`) names: what a
    /// crash between a connection's write and its task's can leave behind (the GCP reconciler).
    /// Ordered by id, after `after` when given (a cursor to walk them all). Default: none.
    async fn pending_without_live_task(
        &self,
        _provider: &ProviderId,
        _updated_before: DateTime<Utc>,
        _after: Option<ConnectionId>,
        _limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        Ok(Vec::new())
    }

    // ---- lifecycle (`connector-lifecycle`): scheduled status checks under a row lease, refresh of
    // credentials ahead of use, expiry warnings, retention ----
    // Every default finds no work, so stores without the columns keep compiling and a scheduler over
    // them does nothing.

    /// Schedule the first check of every `active` or `degraded` connection that has none (a new
    /// connection, a reconnect: [`Store::upsert_connection`] clears the schedule) at `at`; returns
    /// how many.
    async fn schedule_unscheduled_checks(&self, _at: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Take up to `limit` connections due for a check for `worker`, oldest due first: `active` or
    /// `degraded`, `next_check_at` at or before `due_before`, check lease absent or lapsed at `now`
    /// (a lapsed lease is taken over). Sets the lease to `lease_until`. Of concurrent claimers each
    /// connection goes to exactly one.
    async fn claim_due_checks(
        &self,
        _worker: &str,
        _due_before: DateTime<Utc>,
        _now: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
        _limit: i64,
    ) -> Result<Vec<CheckClaim>, StoreError> {
        Ok(Vec::new())
    }

    /// End a check as the lease holder: the next one at `next_check_at`, after `failures` passing
    /// failures in a row; drops the lease. `false` (nothing written) when `worker` no longer holds
    /// the lease (taken over, cleared by a reconnect, the connection deleted).
    async fn finish_check(
        &self,
        _id: ConnectionId,
        _worker: &str,
        _next_check_at: DateTime<Utc>,
        _failures: i32,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Note that credentials of `mode` were handed out for a connection at `used_at`, and when they
    /// are due for a refresh ahead of use (`None`: never, e.g. credentials that do not expire).
    /// Advisory: a store may coalesce repeated notes with an unchanged `refresh_at` for a minute.
    async fn record_credential_use(
        &self,
        _id: ConnectionId,
        _mode: crate::ids::CredentialMode,
        _used_at: DateTime<Utc>,
        _refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Take up to `limit` credentials due for a refresh for `worker`, earliest first: `refresh_at` at
    /// or before `now`, used at or after `used_since`, lease absent or lapsed at `now`. Sets the lease
    /// to `lease_until`. Each comes with its connection, whatever its status (the caller skips what it
    /// should not refresh). Of concurrent claimers each goes to exactly one.
    async fn claim_due_refreshes(
        &self,
        _worker: &str,
        _now: DateTime<Utc>,
        _used_since: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
        _limit: i64,
    ) -> Result<Vec<RefreshClaim>, StoreError> {
        Ok(Vec::new())
    }

    /// End a refresh as the lease holder: the next one at `refresh_at` (`None`: none); drops the
    /// lease. `false` (nothing written) when `worker` no longer holds it.
    async fn finish_refresh(
        &self,
        _id: ConnectionId,
        _mode: crate::ids::CredentialMode,
        _worker: &str,
        _refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Take up to `limit` connections, not `pending`, whose `expires_at` is at or before
    /// `warn_before` and that were not warned for that `expires_at` value yet, and mark them warned
    /// for it; soonest first. Across concurrent callers a connection is returned once per
    /// `expires_at` value.
    async fn take_expiry_warnings(
        &self,
        _warn_before: DateTime<Utc>,
        _limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        Ok(Vec::new())
    }

    /// Delete the OAuth states that expired at or before `now`; returns how many.
    async fn prune_oauth_states(&self, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Delete finished setup tasks (`SUCCESS`, `FAILURE`) last updated before `before`; returns how
    /// many.
    async fn prune_setup_tasks(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    // ---- webhook outbox (durable, leased; see `crate::outbox`) ----
    // Defaults: the combined append falls back to two writes; the rest refuse, so stores without
    // the table keep compiling (and a gateway without webhooks never calls them).

    /// Append the audit line and, when given, enqueue its webhook event, in one transaction where
    /// the store has them: the event exists exactly when its audit line does.
    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<crate::outbox::NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.append_audit(event).await?;
        match outbox {
            Some(o) => self.enqueue_webhook(o).await,
            None => Ok(()),
        }
    }

    /// Insert a `pending` event, due at once. A second event with the same id is a `Conflict`.
    async fn enqueue_webhook(
        &self,
        _event: crate::outbox::NewOutboxEvent,
    ) -> Result<(), StoreError> {
        outbox_unsupported()
    }

    /// Take up to `limit` due events for `worker`, oldest due first: `pending`, `next_attempt_at` at
    /// or before `now`, lease absent or lapsed at `now` (a lapsed lease is taken over). Sets the
    /// lease to `lease_until`, adds one to `attempts`, stamps `last_attempt_at`. Of concurrent
    /// claimers each event goes to exactly one.
    async fn claim_webhooks(
        &self,
        _worker: &str,
        _now: DateTime<Utc>,
        _lease_until: DateTime<Utc>,
        _limit: i64,
    ) -> Result<Vec<crate::outbox::OutboxRecord>, StoreError> {
        outbox_unsupported()
    }

    /// End one attempt as the lease holder (see `DeliveryOutcome`) and drop the lease; `false`
    /// (nothing written) when `worker` no longer holds the lease of a pending event.
    async fn finish_webhook_attempt(
        &self,
        _id: uuid::Uuid,
        _worker: &str,
        _outcome: crate::outbox::DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        outbox_unsupported()
    }

    /// Events for inspection, oldest first, optionally in one state, at most `limit`.
    async fn list_webhooks(
        &self,
        _state: Option<crate::outbox::OutboxState>,
        _limit: i64,
    ) -> Result<Vec<crate::outbox::OutboxRecord>, StoreError> {
        outbox_unsupported()
    }

    /// Delete `delivered` events delivered before `before`; returns how many. Failed events stay.
    async fn prune_webhooks(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
        outbox_unsupported()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_state_round_trip() {
        for s in SetupState::ALL {
            assert_eq!(s.as_str().parse::<SetupState>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
            assert_eq!(s.is_terminal(), !SetupState::LIVE.contains(&s));
        }
        assert!("DONE".parse::<SetupState>().is_err());
    }
}
