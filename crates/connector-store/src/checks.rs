//! Lifecycle queries (`connector-lifecycle`): scheduled status checks under a row lease, the record of
//! credential use that drives refresh ahead of use, expiry warnings, and retention. The `Store`
//! methods in `sql.rs` delegate here.
//!
//! Claims pick the oldest due rows and lease them. On PostgreSQL the pick and the update run in one
//! transaction with `FOR UPDATE SKIP LOCKED`, so concurrent replicas take different rows without
//! waiting for each other. On SQLite (one writer at a time) the update repeats the condition, so of
//! concurrent claimers only one leases a row; a claimer that lost every row it picked picks again
//! (an empty answer means nothing is due), one that lost some gets fewer back.
//! Every write of a lease holder names the holder, so a holder whose lease was taken over (or cleared
//! by a reconnect) writes nothing and learns it from the `false` it gets back.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ConnectionStatus, CredentialMode};
use connector_core::store::{CheckClaim, ConnectionRecord, RefreshClaim};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::{pool_error, DbResultExt};
use crate::models::{to_db, ConnectionRow, Dump};
use crate::schema::credential_usage::dsl as cu;
use crate::schema::user_connections::dsl as uc;
use crate::sql::{db_run, Pools, SqlStore, SqliteConn};

/// The statuses that are checked on a schedule.
const SCHEDULED: [&str; 2] = ["active", "degraded"];
/// The states of a finished setup task.
const FINISHED_TASK: [&str; 2] = ["SUCCESS", "FAILURE"];
/// Repeated notes of the same credentials (same `refresh_at`) within this span are not written again.
const NOTE_COALESCE: Duration = Duration::from_secs(60);
/// At most this many remembered notes; older ones are forgotten first.
const NOTES_MAX: usize = 100_000;
/// How many picks a SQLite claimer tries when concurrent claimers took every row it picked, before
/// it reports nothing due.
const SQLITE_CLAIM_TRIES: usize = 8;

/// The credential-use notes this store wrote lately, so a hot credentials route does not write the
/// same note on every call.
#[derive(Default)]
pub(crate) struct UsageNotes(Mutex<NoteMap>);

type NoteMap = HashMap<(ConnectionId, CredentialMode), (Option<NaiveDateTime>, Instant)>;

impl UsageNotes {
    /// Whether a note of `key` with `refresh_at` is worth writing now; remembers it when it is.
    fn should_write(
        &self,
        key: (ConnectionId, CredentialMode),
        refresh_at: Option<NaiveDateTime>,
    ) -> bool {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((r, at)) = notes.get(&key) {
            if *r == refresh_at && now.duration_since(*at) < NOTE_COALESCE {
                return false;
            }
        }
        if notes.len() >= NOTES_MAX {
            notes.retain(|_, (_, at)| now.duration_since(*at) < NOTE_COALESCE);
            if notes.len() >= NOTES_MAX {
                notes.clear();
            }
        }
        notes.insert(key, (refresh_at, now));
        true
    }

    /// Forget `key` (its write failed), so the next note is written.
    fn forget(&self, key: (ConnectionId, CredentialMode)) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// The key of one connection's credentials of one mode.
fn usage_key(id: ConnectionId, mode: CredentialMode) -> String {
    format!("{}:{}", id.0, mode.as_str())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::schema::credential_usage)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct UsageRow {
    id: String,
    connection_id: String,
    mode: String,
    used_at: NaiveDateTime,
    refresh_at: Option<NaiveDateTime>,
    lease_owner: Option<String>,
    lease_until: Option<NaiveDateTime>,
}

pub(crate) fn dump_usage(dump: &mut Dump, r: &UsageRow) {
    dump.row("credential_usage")
        .s("id", &r.id)
        .s("connection_id", &r.connection_id)
        .s("mode", &r.mode)
        .t("used_at", Some(r.used_at))
        .t("refresh_at", r.refresh_at)
        .o("lease_owner", r.lease_owner.as_deref())
        .t("lease_until", r.lease_until);
}

fn claims(rows: Vec<(ConnectionRow, i32)>) -> Result<Vec<CheckClaim>, StoreError> {
    rows.into_iter()
        .map(|(row, failures)| {
            Ok(CheckClaim {
                connection: row.into_record()?,
                failures,
            })
        })
        .collect()
}

impl SqlStore {
    pub(crate) async fn checks_schedule(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let at = to_db(at);
        let n = db_run!(self, |conn| {
            diesel::update(
                uc::user_connections
                    .filter(uc::next_check_at.is_null())
                    .filter(uc::status.eq_any(SCHEDULED)),
            )
            .set(uc::next_check_at.eq(Some(at)))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n as u64)
    }

    pub(crate) async fn checks_claim(
        &self,
        worker: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CheckClaim>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let due = to_db(due_before);
        let now = to_db(now);
        let until = to_db(lease_until);
        let due = || {
            uc::status
                .eq_any(SCHEDULED)
                .and(uc::next_check_at.le(due))
                .and(
                    uc::check_lease_until
                        .is_null()
                        .or(uc::check_lease_until.le(now)),
                )
        };
        let pick = || {
            uc::user_connections
                .filter(due())
                .order((uc::next_check_at.asc(), uc::id.asc()))
                .limit(limit)
                .select(uc::id)
        };
        let set = (
            uc::check_lease_owner.eq(Some(worker)),
            uc::check_lease_until.eq(Some(until)),
        );
        let rows: Vec<(ConnectionRow, i32)> = match &self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut AsyncPgConnection = &mut pooled;
                c.transaction(async |c| {
                    let ids: Vec<String> = pick().for_update().skip_locked().load(c).await?;
                    if ids.is_empty() {
                        return Ok::<_, diesel::result::Error>(Vec::new());
                    }
                    diesel::update(uc::user_connections.filter(uc::id.eq_any(&ids)))
                        .set(set)
                        .returning((ConnectionRow::as_returning(), uc::check_failures))
                        .get_results(c)
                        .await
                })
                .await
                .db()?
            }
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut SqliteConn = &mut pooled;
                let mut rows = Vec::new();
                for _ in 0..SQLITE_CLAIM_TRIES {
                    let ids: Vec<String> = pick().load(c).await.db()?;
                    if ids.is_empty() {
                        break;
                    }
                    rows = diesel::update(
                        uc::user_connections
                            .filter(uc::id.eq_any(&ids))
                            .filter(due()),
                    )
                    .set(set)
                    .returning((ConnectionRow::as_returning(), uc::check_failures))
                    .get_results(c)
                    .await
                    .db()?;
                    if !rows.is_empty() {
                        break;
                    }
                }
                rows
            }
        };
        claims(rows)
    }

    pub(crate) async fn checks_finish(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError> {
        let id = id.0.to_string();
        let next = to_db(next_check_at);
        let n = db_run!(self, |conn| {
            diesel::update(
                uc::user_connections
                    .filter(uc::id.eq(&id))
                    .filter(uc::check_lease_owner.eq(worker)),
            )
            .set((
                uc::next_check_at.eq(Some(next)),
                uc::check_failures.eq(failures.max(0)),
                uc::check_lease_owner.eq(None::<String>),
                uc::check_lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    pub(crate) async fn usage_record(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        used_at: DateTime<Utc>,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let refresh_at = refresh_at.map(to_db);
        if !self.usage_notes.should_write((id, mode), refresh_at) {
            return Ok(());
        }
        let row = UsageRow {
            id: usage_key(id, mode),
            connection_id: id.0.to_string(),
            mode: mode.as_str().to_owned(),
            used_at: to_db(used_at),
            refresh_at,
            lease_owner: None,
            lease_until: None,
        };
        let res = db_run!(self, |conn| {
            diesel::insert_into(cu::credential_usage)
                .values(&row)
                .on_conflict(cu::id)
                .do_update()
                .set((
                    cu::used_at.eq(excluded(cu::used_at)),
                    cu::refresh_at.eq(excluded(cu::refresh_at)),
                ))
                .execute(conn)
                .await
                .db()
        });
        if res.is_err() {
            self.usage_notes.forget((id, mode));
        }
        res.map(|_| ())
    }

    pub(crate) async fn usage_claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        used_since: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RefreshClaim>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let now = to_db(now);
        let since = to_db(used_since);
        let until = to_db(lease_until);
        let due = || {
            cu::refresh_at
                .le(now)
                .and(cu::used_at.ge(since))
                .and(cu::lease_until.is_null().or(cu::lease_until.le(now)))
        };
        let pick = || {
            cu::credential_usage
                .filter(due())
                .order((cu::refresh_at.asc(), cu::id.asc()))
                .limit(limit)
                .select(cu::id)
        };
        let set = (
            cu::lease_owner.eq(Some(worker)),
            cu::lease_until.eq(Some(until)),
        );
        let usage: Vec<UsageRow> = match &self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut AsyncPgConnection = &mut pooled;
                c.transaction(async |c| {
                    let ids: Vec<String> = pick().for_update().skip_locked().load(c).await?;
                    if ids.is_empty() {
                        return Ok::<_, diesel::result::Error>(Vec::new());
                    }
                    diesel::update(cu::credential_usage.filter(cu::id.eq_any(&ids)))
                        .set(set)
                        .returning(UsageRow::as_returning())
                        .get_results(c)
                        .await
                })
                .await
                .db()?
            }
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut SqliteConn = &mut pooled;
                let mut rows = Vec::new();
                for _ in 0..SQLITE_CLAIM_TRIES {
                    let ids: Vec<String> = pick().load(c).await.db()?;
                    if ids.is_empty() {
                        break;
                    }
                    rows = diesel::update(
                        cu::credential_usage
                            .filter(cu::id.eq_any(&ids))
                            .filter(due()),
                    )
                    .set(set)
                    .returning(UsageRow::as_returning())
                    .get_results(c)
                    .await
                    .db()?;
                    if !rows.is_empty() {
                        break;
                    }
                }
                rows
            }
        };
        if usage.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = usage
            .iter()
            .map(|u| u.connection_id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let conns: Vec<ConnectionRow> = db_run!(self, |conn| {
            uc::user_connections
                .filter(uc::id.eq_any(&ids))
                .select(ConnectionRow::as_select())
                .load(conn)
                .await
                .db()
        })?;
        let mut by_id: HashMap<String, ConnectionRecord> = HashMap::new();
        for row in conns {
            by_id.insert(row.id.clone(), row.into_record()?);
        }
        let mut out = Vec::with_capacity(usage.len());
        for u in usage {
            // A row whose connection went away meanwhile (the delete cascades) is simply not due.
            let (Some(connection), Ok(mode)) = (by_id.get(&u.connection_id), u.mode.parse()) else {
                continue;
            };
            out.push(RefreshClaim {
                connection: connection.clone(),
                mode,
            });
        }
        out.sort_by_key(|c| c.connection.created_at);
        Ok(out)
    }

    pub(crate) async fn usage_finish(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let key = usage_key(id, mode);
        let refresh_at = refresh_at.map(to_db);
        let n = db_run!(self, |conn| {
            diesel::update(
                cu::credential_usage
                    .filter(cu::id.eq(&key))
                    .filter(cu::lease_owner.eq(worker)),
            )
            .set((
                cu::refresh_at.eq(refresh_at),
                cu::lease_owner.eq(None::<String>),
                cu::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n > 0)
    }

    pub(crate) async fn expiry_take(
        &self,
        warn_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let warn_before = to_db(warn_before);
        let pending = ConnectionStatus::Pending.as_str();
        let due = || {
            uc::expires_at
                .le(warn_before)
                .and(uc::status.ne(pending))
                .and(
                    uc::expiry_warned_for
                        .is_null()
                        .or(uc::expiry_warned_for.ne(uc::expires_at)),
                )
        };
        let pick = || {
            uc::user_connections
                .filter(due())
                .order((uc::expires_at.asc(), uc::id.asc()))
                .limit(limit)
                .select(uc::id)
        };
        let rows: Vec<ConnectionRow> = match &self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut AsyncPgConnection = &mut pooled;
                c.transaction(async |c| {
                    let ids: Vec<String> = pick().for_update().skip_locked().load(c).await?;
                    if ids.is_empty() {
                        return Ok::<_, diesel::result::Error>(Vec::new());
                    }
                    diesel::update(uc::user_connections.filter(uc::id.eq_any(&ids)))
                        .set(uc::expiry_warned_for.eq(uc::expires_at))
                        .returning(ConnectionRow::as_returning())
                        .get_results(c)
                        .await
                })
                .await
                .db()?
            }
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let c: &mut SqliteConn = &mut pooled;
                let mut rows = Vec::new();
                for _ in 0..SQLITE_CLAIM_TRIES {
                    let ids: Vec<String> = pick().load(c).await.db()?;
                    if ids.is_empty() {
                        break;
                    }
                    rows = diesel::update(
                        uc::user_connections
                            .filter(uc::id.eq_any(&ids))
                            .filter(due()),
                    )
                    .set(uc::expiry_warned_for.eq(uc::expires_at))
                    .returning(ConnectionRow::as_returning())
                    .get_results(c)
                    .await
                    .db()?;
                    if !rows.is_empty() {
                        break;
                    }
                }
                rows
            }
        };
        let mut out = rows
            .into_iter()
            .map(ConnectionRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|c| (c.expires_at, c.id.0));
        Ok(out)
    }

    pub(crate) async fn oauth_prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        use crate::schema::oauth_states::dsl as os;
        let now = to_db(now);
        let n = db_run!(self, |conn| {
            diesel::delete(os::oauth_states.filter(os::expires_at.le(now)))
                .execute(conn)
                .await
                .db()
        })?;
        Ok(n as u64)
    }

    pub(crate) async fn tasks_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        use crate::schema::setup_tasks::dsl as st;
        let before = to_db(before);
        let n = db_run!(self, |conn| {
            diesel::delete(
                st::setup_tasks
                    .filter(st::state.eq_any(FINISHED_TASK))
                    .filter(st::updated_at.lt(before)),
            )
            .execute(conn)
            .await
            .db()
        })?;
        Ok(n as u64)
    }
}
