//! Lifecycle queries (`connector-lifecycle`): scheduled status checks under a row lease, the record of
//! credential use that drives refresh ahead of use, and expiry warnings: `CheckStore` for
//! `SqlStore`.
//!
//! Claims pick the oldest due rows and lease them (see `lease.rs`).
//! Every write of a lease holder names the holder, so a holder whose lease was taken over (or cleared
//! by a reconnect) writes nothing and learns it from the `false` it gets back.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ConnectionStatus, CredentialMode};
use connector_core::store::{CheckClaim, CheckStore, ConnectionRecord, RefreshClaim};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::dump::Dump;
use crate::error::DbResultExt;
use crate::lease::claim_rows;
use crate::models::{to_db, ConnectionRow};
use crate::schema::credential_usage::dsl as cu;
use crate::schema::user_connections::dsl as uc;
use crate::sql::{count_rows, db_run, SqlStore};

/// The statuses that are checked on a schedule.
const SCHEDULED: [&str; 2] = ["active", "degraded"];
/// Repeated notes of the same credentials (same `refresh_at`) within this span are not written again.
const NOTE_COALESCE: Duration = Duration::from_secs(60);
/// At most this many remembered notes; older ones are forgotten first.
const NOTES_MAX: usize = 100_000;

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

#[async_trait::async_trait]
impl CheckStore for SqlStore {
    async fn schedule_unscheduled_checks(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let at = to_db(at);
        let n = count_rows!(
            self,
            diesel::update(
                uc::user_connections
                    .filter(uc::next_check_at.is_null())
                    .filter(uc::status.eq_any(SCHEDULED)),
            )
            .set(uc::next_check_at.eq(Some(at)))
        )?;
        Ok(n)
    }

    async fn claim_due_checks(
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
        let rows: Vec<(ConnectionRow, i32)> = claim_rows!(self, uc::user_connections, uc::id,
            pick: pick,
            due: due,
            set: set,
            returning: (ConnectionRow::as_returning(), uc::check_failures),
        )?;
        claims(rows)
    }

    async fn finish_check(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError> {
        let id = id.0.to_string();
        let next = to_db(next_check_at);
        let n = count_rows!(
            self,
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
        )?;
        Ok(n > 0)
    }

    async fn record_credential_use(
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

    async fn claim_due_refreshes(
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
        let usage: Vec<UsageRow> = claim_rows!(self, cu::credential_usage, cu::id,
            pick: pick,
            due: due,
            set: set,
            returning: UsageRow::as_returning(),
        )?;
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

    async fn finish_refresh(
        &self,
        id: ConnectionId,
        mode: CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let key = usage_key(id, mode);
        let refresh_at = refresh_at.map(to_db);
        let n = count_rows!(
            self,
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
        )?;
        Ok(n > 0)
    }

    async fn take_expiry_warnings(
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
        let rows: Vec<ConnectionRow> = claim_rows!(self, uc::user_connections, uc::id,
            pick: pick,
            due: due,
            set: uc::expiry_warned_for.eq(uc::expires_at),
            returning: ConnectionRow::as_returning(),
        )?;
        let mut out = rows
            .into_iter()
            .map(ConnectionRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|c| (c.expires_at, c.id.0));
        Ok(out)
    }
}
