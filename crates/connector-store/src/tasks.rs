//! Durable setup tasks (`setup_tasks`): create, read for the owner, claim under a lease, report
//! progress, finish, release, cancel, prune: `SetupTaskStore` for `SqlStore`.
//!
//! Every write of a worker is fenced by its lease: it names the worker and only touches a live task
//! (`PENDING`, `STARTED`, `PROGRESS`) whose `lease_owner` is that worker. A worker whose lease was
//! taken over, or whose task was cancelled, writes nothing and learns it from the `false` it gets back.
//!
//! Claiming leases the oldest live task whose lease is absent or lapsed (see `lease.rs`).

use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};
use connector_core::store::{
    ConnectionRecord, NewSetupTask, SetupOutcome, SetupProgress, SetupState, SetupTaskRecord,
    SetupTaskStore,
};
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::DbResultExt;
use crate::lease::claim_rows;
use crate::models::{now_db, to_db, to_json, ConnectionRow, SetupTaskRow};
use crate::schema::setup_tasks::dsl as st;
use crate::sql::{count_rows, db_run, optional_row, user_row, SqlStore};

/// The states a worker may still claim and write.
const LIVE: [&str; 3] = ["PENDING", "STARTED", "PROGRESS"];
/// The states of a finished task.
const FINISHED: [&str; 2] = ["SUCCESS", "FAILURE"];

/// The live task `id` while `worker` holds its lease: what every write of a worker touches.
type Held<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<st::setup_tasks, diesel::dsl::Eq<st::id, &'a str>>,
        diesel::dsl::Eq<st::lease_owner, &'a str>,
    >,
    diesel::dsl::EqAny<st::state, [&'static str; 3]>,
>;

fn held<'a>(id: &'a str, worker: &'a str) -> Held<'a> {
    st::setup_tasks
        .filter(st::id.eq(id))
        .filter(st::lease_owner.eq(worker))
        .filter(st::state.eq_any(LIVE))
}

fn live_state(s: SetupState, what: &str) -> Result<(), StoreError> {
    if s.is_terminal() {
        Err(StoreError::Other(format!(
            "{what} must be a live state, not {s}"
        )))
    } else {
        Ok(())
    }
}

impl SqlStore {
    /// The `(step, progress)` of a live task leased by `worker`.
    async fn task_held(&self, id: &str, worker: &str) -> Result<Option<(i32, i32)>, StoreError> {
        optional_row!(
            self,
            first,
            held(id, worker).select((st::step, st::progress))
        )
    }
}

#[async_trait::async_trait]
impl SetupTaskStore for SqlStore {
    async fn create_setup_task(&self, task: NewSetupTask) -> Result<SetupTaskRecord, StoreError> {
        live_state(task.state, "a new task's state")?;
        let row = SetupTaskRow::from_new(task, now_db());
        let stored: SetupTaskRow = db_run!(self, |conn| {
            diesel::insert_into(st::setup_tasks)
                .values(&row)
                .returning(SetupTaskRow::as_returning())
                .get_result(conn)
                .await
                .db()
        })?;
        stored.into_record()
    }

    async fn get_setup_task(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        let id = id.to_string();
        user_row!(self, setup_tasks, SetupTaskRow, user, &id)
    }

    async fn claim_setup_task(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        let now = to_db(now);
        let until = to_db(lease_until);
        let provider = provider.as_str();
        let due = || {
            st::provider.eq(provider).and(st::state.eq_any(LIVE)).and(
                st::lease_expires_at
                    .is_null()
                    .or(st::lease_expires_at.le(now)),
            )
        };
        let pick = || {
            st::setup_tasks
                .filter(due())
                .order((st::created_at.asc(), st::id.asc()))
                .limit(1)
                .select(st::id)
        };
        // The lease, one more attempt, `PENDING` → `STARTED` (other live states stay).
        let started = || {
            case_when::<_, _, diesel::sql_types::Text>(st::state.eq("PENDING"), "STARTED")
                .otherwise(st::state)
        };
        let rows: Vec<SetupTaskRow> = claim_rows!(self, st::setup_tasks, st::id,
            pick: pick,
            due: due,
            set: (
                st::state.eq(started()),
                st::lease_owner.eq(Some(worker)),
                st::lease_expires_at.eq(Some(until)),
                st::attempts.eq(st::attempts + 1),
                st::updated_at.eq(now),
            ),
            returning: SetupTaskRow::as_returning(),
        )?;
        let row = rows.into_iter().next();
        row.map(SetupTaskRow::into_record).transpose()
    }

    async fn renew_setup_lease(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let until = to_db(lease_until);
        let now = now_db();
        let n = count_rows!(
            self,
            diesel::update(held(&id, worker),)
                .set((st::lease_expires_at.eq(Some(until)), st::updated_at.eq(now)))
        )?;
        Ok(n > 0)
    }

    async fn save_setup_progress(
        &self,
        id: uuid::Uuid,
        worker: &str,
        p: SetupProgress,
    ) -> Result<bool, StoreError> {
        live_state(p.state, "a progress report's state")?;
        let id = id.to_string();
        let Some((old_step, old_progress)) = self.task_held(&id, worker).await? else {
            return Ok(false);
        };
        let step = p.step.max(old_step);
        let progress = p.progress.clamp(0, 100).max(old_progress);
        let input = p.input.as_ref().map(to_json);
        let until = p.lease_until.map(to_db);
        let now = now_db();
        let n = count_rows!(
            self,
            diesel::update(
                held(&id, worker)
                    .filter(st::step.le(step))
                    .filter(st::progress.le(progress)),
            )
            .set((
                st::state.eq(p.state.as_str()),
                st::step.eq(step),
                st::progress.eq(progress),
                st::status_message.eq(&p.status_message),
                input.as_ref().map(|i| st::input.eq(i)),
                until.map(|u| st::lease_expires_at.eq(Some(u))),
                st::updated_at.eq(now),
            ))
        )?;
        Ok(n > 0)
    }

    async fn finish_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        o: SetupOutcome,
    ) -> Result<bool, StoreError> {
        if !o.state.is_terminal() {
            return Err(StoreError::Other(format!(
                "a task ends in SUCCESS or FAILURE, not {}",
                o.state
            )));
        }
        let id = id.to_string();
        let Some((_, old_progress)) = self.task_held(&id, worker).await? else {
            return Ok(false);
        };
        let progress = o.progress.clamp(0, 100).max(old_progress);
        let input = o.input.as_ref().map(to_json);
        let result = o.result.as_ref().map(to_json);
        let now = now_db();
        let n = count_rows!(
            self,
            diesel::update(held(&id, worker).filter(st::progress.le(progress)),).set((
                st::state.eq(o.state.as_str()),
                st::progress.eq(progress),
                st::status_message.eq(&o.status_message),
                st::error.eq(o.error.as_deref()),
                st::result.eq(result.as_deref()),
                input.as_ref().map(|i| st::input.eq(i)),
                st::lease_owner.eq(None::<String>),
                st::lease_expires_at.eq(None::<chrono::NaiveDateTime>),
                st::updated_at.eq(now),
            ))
        )?;
        Ok(n > 0)
    }

    async fn release_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let not_before = to_db(not_before);
        let now = now_db();
        let n = count_rows!(
            self,
            diesel::update(held(&id, worker),).set((
                st::lease_owner.eq(None::<String>),
                st::lease_expires_at.eq(Some(not_before)),
                st::status_message.eq(status_message),
                st::updated_at.eq(now),
            ))
        )?;
        Ok(n > 0)
    }

    async fn cancel_setup_tasks(
        &self,
        user: &UserId,
        provider: &ProviderId,
        connection: Option<ConnectionId>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let connection = connection.map(|c| c.0.to_string());
        let now = now_db();
        let n = db_run!(self, |conn| {
            let mut q = diesel::update(st::setup_tasks)
                .filter(st::user_id.eq(user.as_str()))
                .filter(st::provider.eq(provider.as_str()))
                .filter(st::state.eq_any(LIVE))
                .into_boxed();
            if let Some(c) = &connection {
                q = q.filter(st::connection_id.eq(c));
            }
            q.set((
                st::state.eq(SetupState::Failure.as_str()),
                st::status_message.eq(reason),
                st::error.eq(Some(reason)),
                st::lease_owner.eq(None::<String>),
                st::lease_expires_at.eq(None::<chrono::NaiveDateTime>),
                st::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n as u64)
    }

    /// One statement, the live-task test a correlated
    /// `NOT EXISTS`, so a page is never filled with connections that are only waiting for a task.
    async fn pending_without_live_task(
        &self,
        provider: &ProviderId,
        updated_before: DateTime<Utc>,
        after: Option<ConnectionId>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let before = to_db(updated_before);
        let after = after.map(|c| c.0.to_string());
        let rows: Vec<ConnectionRow> = db_run!(self, |conn| {
            let live = st::setup_tasks
                .filter(st::connection_id.eq(uc::id.nullable()))
                .filter(st::state.eq_any(LIVE));
            let mut q = uc::user_connections
                .filter(uc::provider.eq(provider.as_str()))
                .filter(uc::status.eq(ConnectionStatus::Pending.as_str()))
                .filter(uc::updated_at.lt(before))
                .filter(diesel::dsl::not(diesel::dsl::exists(live)))
                .select(ConnectionRow::as_select())
                .order(uc::id.asc())
                .limit(limit.max(0))
                .into_boxed();
            if let Some(a) = &after {
                q = q.filter(uc::id.gt(a));
            }
            q.load(conn).await.db()
        })?;
        rows.into_iter().map(ConnectionRow::into_record).collect()
    }

    async fn prune_setup_tasks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_db(before);
        let n = count_rows!(
            self,
            diesel::delete(
                st::setup_tasks
                    .filter(st::state.eq_any(FINISHED))
                    .filter(st::updated_at.lt(before)),
            )
        )?;
        Ok(n)
    }
}
