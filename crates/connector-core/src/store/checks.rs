//! Lifecycle work under row leases (`connector-lifecycle`): scheduled status checks, refresh of
//! credentials ahead of use, expiry warnings. [`CheckStore`] and its claims.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ConnectionRecord;
use crate::error::StoreError;
use crate::ids::{ConnectionId, CredentialMode};

/// A connection claimed for a scheduled status check (see [`CheckStore::claim_due_checks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckClaim {
    pub connection: ConnectionRecord,
    /// Passing failures in a row before this check (drives the back-off).
    pub failures: i32,
}

/// One connection's cached credentials of one mode, claimed for a refresh ahead of use (see
/// [`CheckStore::claim_due_refreshes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshClaim {
    pub connection: ConnectionRecord,
    pub mode: CredentialMode,
}

/// Scheduled status checks under a row lease, the record of credential use that drives refresh
/// ahead of use, and expiry warnings.
#[async_trait]
pub trait CheckStore: Send + Sync + 'static {
    /// Schedule the first check of every `active` or `degraded` connection that has none (a new
    /// connection, a reconnect: `ConnectionStore::upsert_connection` clears the schedule) at `at`;
    /// returns how many.
    async fn schedule_unscheduled_checks(&self, at: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Take up to `limit` connections due for a check for `worker`, oldest due first: `active` or
    /// `degraded`, `next_check_at` at or before `due_before`, check lease absent or lapsed at `now`
    /// (a lapsed lease is taken over). Sets the lease to `lease_until`. Of concurrent claimers each
    /// connection goes to exactly one.
    async fn claim_due_checks(
        &self,
        worker: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CheckClaim>, StoreError>;

    /// End a check as the lease holder: the next one at `next_check_at`, after `failures` passing
    /// failures in a row; drops the lease. `false` (nothing written) when `worker` no longer holds
    /// the lease (taken over, cleared by a reconnect, the connection deleted).
    async fn finish_check(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError>;

    /// Note that credentials of `mode` were handed out for a connection at `used_at`, and when they
    /// are due for a refresh ahead of use (`None`: never, e.g. credentials that do not expire).
    /// Advisory: a store may coalesce repeated notes with an unchanged `refresh_at` for a minute.
    async fn record_credential_use(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        used_at: DateTime<Utc>,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// Take up to `limit` credentials due for a refresh for `worker`, earliest first: `refresh_at` at
    /// or before `now`, used at or after `used_since`, lease absent or lapsed at `now`. Sets the lease
    /// to `lease_until`. Each comes with its connection, whatever its status (the caller skips what it
    /// should not refresh). Of concurrent claimers each goes to exactly one.
    async fn claim_due_refreshes(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        used_since: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RefreshClaim>, StoreError>;

    /// End a refresh as the lease holder: the next one at `refresh_at` (`None`: none); drops the
    /// lease. `false` (nothing written) when `worker` no longer holds it.
    async fn finish_refresh(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;

    /// Take up to `limit` connections, not `pending`, whose `expires_at` is at or before
    /// `warn_before` and that were not warned for that `expires_at` value yet, and mark them warned
    /// for it; soonest first. Across concurrent callers a connection is returned once per
    /// `expires_at` value.
    async fn take_expiry_warnings(
        &self,
        warn_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
}
