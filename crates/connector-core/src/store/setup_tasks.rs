//! Durable setup tasks: their records and [`SetupTaskStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ConnectionRecord, SetupState};
use crate::error::StoreError;
use crate::ids::{ConnectionId, ProviderId, UserId};

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

/// Durable setup tasks (the GCP post-auth setup), worked by any replica under a lease (see
/// [`SetupTaskRecord`]).
#[async_trait]
pub trait SetupTaskStore: Send + Sync + 'static {
    /// Insert a task; returns the stored row.
    async fn create_setup_task(&self, task: NewSetupTask) -> Result<SetupTaskRecord, StoreError>;

    /// One task of `user`; `None` for another user's task, as for one that does not exist.
    async fn get_setup_task(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError>;

    /// Take the oldest due live task of `provider` for `worker`: one whose lease is absent or lapsed
    /// at `now` (a lapsed lease is taken over). Sets the lease to `lease_until`, adds one to
    /// `attempts`, and moves `PENDING` to `STARTED`. Of concurrent claimers exactly one gets a task.
    async fn claim_setup_task(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError>;

    /// Extend the lease of `worker`; `false` when it no longer holds a lease on a live task.
    async fn renew_setup_lease(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Record progress as the lease holder. Step and progress never go down. `false` (nothing
    /// written) when `worker` no longer holds the lease or the task has ended (cancelled).
    async fn save_setup_progress(
        &self,
        id: uuid::Uuid,
        worker: &str,
        progress: SetupProgress,
    ) -> Result<bool, StoreError>;

    /// End the task as the lease holder (`SUCCESS` or `FAILURE`) and drop the lease; `false` when
    /// `worker` no longer holds it or the task already ended.
    async fn finish_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: SetupOutcome,
    ) -> Result<bool, StoreError>;

    /// Give the lease back without ending the task, claimable again from `not_before` (a retry's
    /// back-off), with a message for the owner. `false` when `worker` no longer holds it.
    async fn release_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError>;

    /// End every live task of `user` and `provider` (only those of `connection` when given) as
    /// `FAILURE` with `reason`, dropping their leases; returns how many. A worker still running one
    /// finds out at its next write.
    async fn cancel_setup_tasks(
        &self,
        user: &UserId,
        provider: &ProviderId,
        connection: Option<ConnectionId>,
        reason: &str,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` connections of `provider` in status `pending`, last updated before
    /// `updated_before`, that no live setup task (`PENDING`, `STARTED`, `PROGRESS`) names: what a
    /// crash between a connection's write and its task's can leave behind (the GCP reconciler).
    /// Ordered by id, after `after` when given (a cursor to walk them all).
    async fn pending_without_live_task(
        &self,
        provider: &ProviderId,
        updated_before: DateTime<Utc>,
        after: Option<ConnectionId>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Delete finished setup tasks (`SUCCESS`, `FAILURE`) last updated before `before`; returns how
    /// many.
    async fn prune_setup_tasks(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
