//! The audit trail: `AuditStore` for `SqlStore`. Its webhook-outbox methods delegate to
//! `outbox.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, UserId};
use connector_core::outbox::{DeliveryOutcome, NewOutboxEvent, OutboxRecord, OutboxState};
use connector_core::store::{AuditEvent, AuditStore};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::{pool_error, DbResultExt};
use crate::models::{to_db, AuditRow};
use crate::schema::audit_events;
use crate::sql::{count_rows, db_run, insert_rows, Pools, SqlStore, SqliteConn};

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        let row = AuditRow::from_event(event);
        insert_rows!(self, audit_events::table, &row)
    }

    async fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<AuditRow> = events.into_iter().map(AuditRow::from_event).collect();
        match &self.pools {
            // One multi-row INSERT.
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                diesel::insert_into(audit_events::table)
                    .values(&rows)
                    .execute(&mut conn)
                    .await
                    .db()?;
            }
            // SQLite's dialect has no DEFAULT keyword for diesel's batch insert: one transaction of
            // single-row inserts, which costs one commit.
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let conn: &mut SqliteConn = &mut pooled;
                use diesel_async::AsyncConnection;
                conn.transaction(async |c| {
                    for row in &rows {
                        diesel::insert_into(audit_events::table)
                            .values(row)
                            .execute(c)
                            .await?;
                    }
                    Ok::<_, diesel::result::Error>(())
                })
                .await
                .db()?;
            }
        }
        Ok(())
    }

    async fn list_audit(
        &self,
        user: &UserId,
        connection: Option<ConnectionId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        use crate::schema::audit_events::dsl as ae;
        let connection = connection.map(|c| c.0.to_string());
        let since = since.map(to_db);
        let limit = limit.max(0);
        let rows: Vec<AuditRow> = db_run!(self, |conn| {
            let mut q = ae::audit_events
                .filter(ae::user_id.eq(user.as_str()))
                .select(AuditRow::as_select())
                .order((ae::created_at.desc(), ae::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some(c) = &connection {
                q = q.filter(ae::connection_id.eq(c));
            }
            if let Some(t) = since {
                q = q.filter(ae::created_at.ge(t));
            }
            q.load(conn).await.db()
        })?;
        rows.into_iter().map(AuditRow::into_event).collect()
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        use crate::schema::audit_events::dsl as ae;
        let before = to_db(before);
        let n = count_rows!(
            self,
            diesel::delete(ae::audit_events.filter(ae::created_at.lt(before)))
        )?;
        Ok(n)
    }

    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.outbox_append_with_audit(event, outbox).await
    }

    async fn enqueue_webhook(&self, event: NewOutboxEvent) -> Result<(), StoreError> {
        self.outbox_enqueue(event).await
    }

    async fn claim_webhooks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.outbox_claim(worker, now, lease_until, limit).await
    }

    async fn finish_webhook_attempt(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.outbox_finish(id, worker, outcome).await
    }

    async fn list_webhooks(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.outbox_list(state, limit).await
    }

    async fn prune_webhooks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.outbox_prune(before).await
    }
}
