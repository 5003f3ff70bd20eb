//! The webhook outbox (`webhook_outbox`): enqueue (alone or in the transaction of its audit line),
//! claim due events under a lease, record an attempt's outcome, list, prune. The `AuditStore`
//! methods in `audit.rs` delegate here.
//!
//! Every write of a worker is fenced by its lease: it names the worker and only touches a `pending`
//! event whose `lease_owner` is that worker. A worker whose lease lapsed and was taken over writes
//! nothing and learns it from the `false` it gets back.
//!
//! Claiming leases the oldest due events: `pending`, `next_attempt_at` reached, lease absent or
//! lapsed (see `lease.rs`).

use chrono::{DateTime, NaiveDateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, UserId};
use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use connector_core::store::AuditEvent;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::dump::Dump;
use crate::error::DbResultExt;
use crate::lease::claim_rows;
use crate::models::{from_db, now_db, to_db, AuditRow};
use crate::schema::audit_events;
use crate::schema::webhook_outbox::dsl as wo;
use crate::sql::{count_rows, db_run, insert_rows, SqlStore};

const PENDING: &str = "pending";
/// The longest `last_error` kept (a status line, not a body).
const MAX_ERROR_LEN: usize = 300;

fn corrupt(field: &'static str) -> StoreError {
    StoreError::Other(format!("a stored outbox row does not decode ({field})"))
}

/// An outbox row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::schema::webhook_outbox)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct OutboxRow {
    pub id: String,
    pub event_type: String,
    pub user_id: String,
    pub connection_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl OutboxRow {
    /// The row an enqueue inserts: `pending`, due at the event's creation, stamped `now`.
    fn from_new(e: NewOutboxEvent, now: NaiveDateTime) -> Self {
        let created = to_db(e.created_at);
        Self {
            id: e.id.to_string(),
            event_type: e.event_type,
            user_id: e.user_id.as_str().to_owned(),
            connection_id: e.connection_id.map(|c| c.0.to_string()),
            payload: e.payload,
            state: PENDING.to_owned(),
            attempts: 0,
            next_attempt_at: created,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            last_attempt_at: None,
            delivered_at: None,
            created_at: created,
            updated_at: now,
        }
    }

    fn into_record(self) -> Result<OutboxRecord, StoreError> {
        Ok(OutboxRecord {
            id: uuid::Uuid::parse_str(&self.id).map_err(|_| corrupt("id"))?,
            event_type: self.event_type,
            user_id: UserId::parse(&self.user_id).map_err(|_| corrupt("user_id"))?,
            connection_id: self
                .connection_id
                .as_deref()
                .map(|c| {
                    c.parse::<ConnectionId>()
                        .map_err(|_| corrupt("connection_id"))
                })
                .transpose()?,
            payload: self.payload,
            state: self.state.parse().map_err(|_| corrupt("state"))?,
            attempts: self.attempts,
            next_attempt_at: from_db(self.next_attempt_at),
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at.map(from_db),
            last_error: self.last_error,
            last_attempt_at: self.last_attempt_at.map(from_db),
            delivered_at: self.delivered_at.map(from_db),
            created_at: from_db(self.created_at),
            updated_at: from_db(self.updated_at),
        })
    }
}

fn records(rows: Vec<OutboxRow>) -> Result<Vec<OutboxRecord>, StoreError> {
    rows.into_iter().map(OutboxRow::into_record).collect()
}

/// At most [`MAX_ERROR_LEN`] bytes, cut on a character boundary.
fn short(error: &str) -> String {
    if error.len() <= MAX_ERROR_LEN {
        return error.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}

/// Renders an outbox row for `SqlStore::dump_text`.
pub(crate) fn dump_row(dump: &mut Dump, r: &OutboxRow) {
    dump.row("webhook_outbox")
        .s("id", &r.id)
        .s("event_type", &r.event_type)
        .s("user_id", &r.user_id)
        .o("connection_id", r.connection_id.as_deref())
        .s("payload", &r.payload)
        .s("state", &r.state)
        .d("attempts", r.attempts)
        .t("next_attempt_at", Some(r.next_attempt_at))
        .o("lease_owner", r.lease_owner.as_deref())
        .t("lease_expires_at", r.lease_expires_at)
        .o("last_error", r.last_error.as_deref())
        .t("last_attempt_at", r.last_attempt_at)
        .t("delivered_at", r.delivered_at)
        .t("created_at", Some(r.created_at))
        .t("updated_at", Some(r.updated_at));
}

impl SqlStore {
    pub(crate) async fn outbox_append_with_audit(
        &self,
        event: AuditEvent,
        outbox: Option<NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        let audit = AuditRow::from_event(event);
        let row = outbox.map(|o| OutboxRow::from_new(o, now_db()));
        db_run!(self, |conn| {
            conn.transaction(async |c| {
                diesel::insert_into(audit_events::table)
                    .values(&audit)
                    .execute(c)
                    .await?;
                if let Some(row) = &row {
                    diesel::insert_into(wo::webhook_outbox)
                        .values(row)
                        .execute(c)
                        .await?;
                }
                Ok::<_, diesel::result::Error>(())
            })
            .await
            .db()
        })
    }

    pub(crate) async fn outbox_enqueue(&self, event: NewOutboxEvent) -> Result<(), StoreError> {
        let row = OutboxRow::from_new(event, now_db());
        insert_rows!(self, wo::webhook_outbox, &row)
    }

    pub(crate) async fn outbox_claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let limit = limit.max(0);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = to_db(now);
        let until = to_db(lease_until);
        let due = || {
            wo::state.eq(PENDING).and(wo::next_attempt_at.le(now)).and(
                wo::lease_expires_at
                    .is_null()
                    .or(wo::lease_expires_at.le(now)),
            )
        };
        let pick = || {
            wo::webhook_outbox
                .filter(due())
                .order((
                    wo::next_attempt_at.asc(),
                    wo::created_at.asc(),
                    wo::id.asc(),
                ))
                .select(wo::id)
                .limit(limit)
        };
        let rows: Vec<OutboxRow> = claim_rows!(self, wo::webhook_outbox, wo::id,
            pick: pick,
            due: due,
            set: (
                wo::lease_owner.eq(Some(worker)),
                wo::lease_expires_at.eq(Some(until)),
                wo::attempts.eq(wo::attempts + 1),
                wo::last_attempt_at.eq(Some(now)),
                wo::updated_at.eq(now),
            ),
            returning: OutboxRow::as_returning(),
        )?;
        let mut out = records(rows)?;
        out.sort_by_key(|r| (r.next_attempt_at, r.created_at, r.id));
        Ok(out)
    }

    pub(crate) async fn outbox_finish(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let now = now_db();
        let (state, next, error, delivered) = match outcome {
            DeliveryOutcome::Delivered { at } => (OutboxState::Delivered, None, None, Some(at)),
            DeliveryOutcome::Retry { not_before, error } => {
                (OutboxState::Pending, Some(not_before), Some(error), None)
            }
            DeliveryOutcome::Failed { error } => (OutboxState::Failed, None, Some(error), None),
        };
        let next = next.map(to_db);
        let error = error.as_deref().map(short);
        let delivered = delivered.map(to_db);
        let n = count_rows!(
            self,
            diesel::update(
                wo::webhook_outbox
                    .filter(wo::id.eq(&id))
                    .filter(wo::lease_owner.eq(worker))
                    .filter(wo::state.eq(PENDING)),
            )
            .set((
                wo::state.eq(state.as_str()),
                next.map(|t| wo::next_attempt_at.eq(t)),
                error.as_ref().map(|e| wo::last_error.eq(Some(e))),
                delivered.map(|t| wo::delivered_at.eq(Some(t))),
                wo::lease_owner.eq(None::<String>),
                wo::lease_expires_at.eq(None::<NaiveDateTime>),
                wo::updated_at.eq(now),
            ))
        )?;
        Ok(n > 0)
    }

    pub(crate) async fn outbox_list(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let limit = limit.max(0);
        let rows: Vec<OutboxRow> = db_run!(self, |conn| {
            let mut q = wo::webhook_outbox
                .select(OutboxRow::as_select())
                .order((wo::created_at.asc(), wo::id.asc()))
                .limit(limit)
                .into_boxed();
            if let Some(s) = state {
                q = q.filter(wo::state.eq(s.as_str()));
            }
            q.load(conn).await.db()
        })?;
        records(rows)
    }

    pub(crate) async fn outbox_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_db(before);
        let delivered = OutboxState::Delivered.as_str();
        let n = count_rows!(
            self,
            diesel::delete(
                wo::webhook_outbox
                    .filter(wo::state.eq(delivered))
                    .filter(wo::delivered_at.lt(before)),
            )
        )?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_on_a_char_boundary() {
        assert_eq!(short("HTTP 503"), "HTTP 503");
        let long = "é".repeat(400);
        let s = short(&long);
        assert!(s.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(s.ends_with('…'));
    }
}
