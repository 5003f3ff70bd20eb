//! Durable setup tasks (`setup_tasks`): create, read for the owner, claim under a lease, report
//! progress, finish, release, cancel. The `Store` methods in `sql.rs` delegate here.
//!
//! Every write of a worker is fenced by its lease: it names the worker and only touches a live task
//! (`PENDING`, `STARTED`, `PROGRESS`) whose `lease_owner` is that worker. A worker whose lease was
//! taken over, or whose task was cancelled, writes nothing and learns it from the `false` it gets back.
//!
//! Claiming picks the oldest live task whose lease is absent or lapsed. On PostgreSQL the pick and the
//! update run in one transaction with `FOR UPDATE SKIP LOCKED`, so concurrent replicas take different
//! tasks without waiting for each other. On SQLite (one writer at a time) the update is conditional on
//! the row still being due, and a claimer that lost the race tries the next candidate.

use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ConnectionStatus, ProviderId, UserId};
use connector_core::store::{
    ConnectionRecord, NewSetupTask, SetupOutcome, SetupProgress, SetupState, SetupTaskRecord,
};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::{pool_error, DbResultExt};
use crate::models::{now_db, to_db, to_json, ConnectionRow, SetupTaskRow};
use crate::schema::setup_tasks::dsl as st;
use crate::sql::{db_run, Pools, SqlStore, SqliteConn};

/// The states a worker may still claim and write.
const LIVE: [&str; 3] = ["PENDING", "STARTED", "PROGRESS"];
/// How many candidates a SQLite claimer tries before it reports nothing due.
const SQLITE_CLAIM_TRIES: usize = 8;

fn live_state(s: SetupState, what: &str) -> Result<(), StoreError> {
    if s.is_terminal() {
        Err(StoreError::Other(format!(
            "{what} must be a live state, not {s}"
        )))
    } else {
        Ok(())
    }
}

/// The claim's update: the lease, one more attempt, `PENDING` → `STARTED`.
fn claimed_state(observed: &str) -> &str {
    if observed == "PENDING" {
        "STARTED"
    } else {
        observed
    }
}

impl SqlStore {
    pub(crate) async fn task_create(
        &self,
        task: NewSetupTask,
    ) -> Result<SetupTaskRecord, StoreError> {
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

    pub(crate) async fn task_get(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        let id = id.to_string();
        let row: Option<SetupTaskRow> = db_run!(self, |conn| {
            st::setup_tasks
                .filter(st::user_id.eq(user.as_str()))
                .filter(st::id.eq(&id))
                .select(SetupTaskRow::as_select())
                .first(conn)
                .await
                .optional()
                .db()
        })?;
        row.map(SetupTaskRow::into_record).transpose()
    }

    pub(crate) async fn task_claim(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        let now = to_db(now);
        let until = to_db(lease_until);
        let provider = provider.as_str();
        let row: Option<SetupTaskRow> = match &self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let conn: &mut AsyncPgConnection = &mut pooled;
                conn.transaction(async |c| {
                    let picked: Option<(String, String)> = st::setup_tasks
                        .filter(st::provider.eq(provider))
                        .filter(st::state.eq_any(LIVE))
                        .filter(
                            st::lease_expires_at
                                .is_null()
                                .or(st::lease_expires_at.le(now)),
                        )
                        .order((st::created_at.asc(), st::id.asc()))
                        .select((st::id, st::state))
                        .for_update()
                        .skip_locked()
                        .first(c)
                        .await
                        .optional()?;
                    let Some((id, state)) = picked else {
                        return Ok::<_, diesel::result::Error>(None);
                    };
                    diesel::update(st::setup_tasks.filter(st::id.eq(&id)))
                        .set((
                            st::state.eq(claimed_state(&state)),
                            st::lease_owner.eq(Some(worker)),
                            st::lease_expires_at.eq(Some(until)),
                            st::attempts.eq(st::attempts + 1),
                            st::updated_at.eq(now),
                        ))
                        .returning(SetupTaskRow::as_returning())
                        .get_result(c)
                        .await
                        .optional()
                })
                .await
                .db()?
            }
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let conn: &mut SqliteConn = &mut pooled;
                let mut claimed = None;
                for _ in 0..SQLITE_CLAIM_TRIES {
                    let picked: Option<(String, String)> = st::setup_tasks
                        .filter(st::provider.eq(provider))
                        .filter(st::state.eq_any(LIVE))
                        .filter(
                            st::lease_expires_at
                                .is_null()
                                .or(st::lease_expires_at.le(now)),
                        )
                        .order((st::created_at.asc(), st::id.asc()))
                        .select((st::id, st::state))
                        .first(conn)
                        .await
                        .optional()
                        .db()?;
                    let Some((id, state)) = picked else {
                        break;
                    };
                    // Conditional on the row being exactly as picked and still due: of concurrent
                    // claimers only one matches.
                    let row: Option<SetupTaskRow> = diesel::update(
                        st::setup_tasks
                            .filter(st::id.eq(&id))
                            .filter(st::state.eq(&state))
                            .filter(
                                st::lease_expires_at
                                    .is_null()
                                    .or(st::lease_expires_at.le(now)),
                            ),
                    )
                    .set((
                        st::state.eq(claimed_state(&state)),
                        st::lease_owner.eq(Some(worker)),
                        st::lease_expires_at.eq(Some(until)),
                        st::attempts.eq(st::attempts + 1),
                        st::updated_at.eq(now),
                    ))
                    .returning(SetupTaskRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()
                    .db()?;
                    if row.is_some() {
                        claimed = row;
                        break;
                    }
                }
                claimed
            }
        };
        row.map(SetupTaskRow::into_record).transpose()
    }

    pub(crate) async fn task_renew(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let until = to_db(lease_until);
        let now = now_db();
        let n = db_run!(self, |conn| {
            diesel::update(
                st::setup_tasks
                    .filter(st::id.eq(&id))
                    .filter(st::lease_owner.eq(worker))
                    .filter(st::state.eq_any(LIVE)),
            )
            .set((st::lease_expires_at.eq(Some(until)), st::updated_at.eq(now)))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    /// The `(step, progress)` of a live task leased by `worker`.
    async fn task_held(&self, id: &str, worker: &str) -> Result<Option<(i32, i32)>, StoreError> {
        db_run!(self, |conn| {
            st::setup_tasks
                .filter(st::id.eq(id))
                .filter(st::lease_owner.eq(worker))
                .filter(st::state.eq_any(LIVE))
                .select((st::step, st::progress))
                .first::<(i32, i32)>(conn)
                .await
                .optional()
                .db()
        })
    }

    pub(crate) async fn task_save(
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
        let n = db_run!(self, |conn| {
            diesel::update(
                st::setup_tasks
                    .filter(st::id.eq(&id))
                    .filter(st::lease_owner.eq(worker))
                    .filter(st::state.eq_any(LIVE))
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
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    pub(crate) async fn task_finish(
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
        let n = db_run!(self, |conn| {
            diesel::update(
                st::setup_tasks
                    .filter(st::id.eq(&id))
                    .filter(st::lease_owner.eq(worker))
                    .filter(st::state.eq_any(LIVE))
                    .filter(st::progress.le(progress)),
            )
            .set((
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
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    pub(crate) async fn task_release(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let not_before = to_db(not_before);
        let now = now_db();
        let n = db_run!(self, |conn| {
            diesel::update(
                st::setup_tasks
                    .filter(st::id.eq(&id))
                    .filter(st::lease_owner.eq(worker))
                    .filter(st::state.eq_any(LIVE)),
            )
            .set((
                st::lease_owner.eq(None::<String>),
                st::lease_expires_at.eq(Some(not_before)),
                st::status_message.eq(status_message),
                st::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    pub(crate) async fn task_cancel(
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

    /// `Store::pending_without_live_task`: one statement, the live-task test a correlated
    /// `NOT EXISTS`, so a page is never filled with connections that are only waiting for a task.
    pub(crate) async fn pending_without_live_task_page(
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
}
