//! Connection rows: `ConnectionStore` for `SqlStore`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ProviderId, UserId};
use connector_core::store::{ConnectionRecord, ConnectionStore, NewConnection, StatusUpdate};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::error::DbResultExt;
use crate::models::{now_db, to_db, ConnectionRow};
use crate::sql::{count_rows, db_run, optional_row, user_row, Pools, SqlStore};

fn rows_to_records(rows: Vec<ConnectionRow>) -> Result<Vec<ConnectionRecord>, StoreError> {
    rows.into_iter().map(ConnectionRow::into_record).collect()
}

#[async_trait]
impl ConnectionStore for SqlStore {
    fn backend_name(&self) -> &'static str {
        match self.pools {
            Pools::Postgres(_) => "postgres",
            Pools::Sqlite(_) => "sqlite",
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        db_run!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await.db()?;
            Ok(())
        })
    }

    async fn upsert_connection(
        &self,
        new: NewConnection,
    ) -> Result<(ConnectionRecord, bool), StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let row = ConnectionRow::from_new(new, now_db());
        let stored: ConnectionRow = db_run!(self, |conn| {
            diesel::insert_into(uc::user_connections)
                .values(&row)
                .on_conflict((uc::user_id, uc::provider, uc::account_id))
                .do_update()
                .set((
                    uc::display_name.eq(excluded(uc::display_name)),
                    uc::status.eq(excluded(uc::status)),
                    uc::status_reason.eq(excluded(uc::status_reason)),
                    uc::read_only.eq(excluded(uc::read_only)),
                    // The secret_ref is never moved by a conflicting insert: a connect that lost
                    // the race moves its secret under the row's path (`Platform::connect`), so the
                    // winner's secret is never left without its row.
                    uc::metadata.eq(excluded(uc::metadata)),
                    uc::updated_at.eq(excluded(uc::updated_at)),
                    uc::last_validated_at.eq(excluded(uc::last_validated_at)),
                    uc::expires_at.eq(excluded(uc::expires_at)),
                    // A (re)connect puts the connection back on the check schedule, afresh.
                    uc::next_check_at.eq(None::<chrono::NaiveDateTime>),
                    uc::check_lease_owner.eq(None::<String>),
                    uc::check_lease_until.eq(None::<chrono::NaiveDateTime>),
                    uc::check_failures.eq(0),
                ))
                .returning(ConnectionRow::as_returning())
                .get_result(conn)
                .await
                .db()
        })?;
        // An update keeps the existing id and created_at: the row is ours only if both match.
        let inserted = stored.id == row.id && stored.created_at == row.created_at;
        Ok((stored.into_record()?, inserted))
    }

    async fn get_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let id = id.0.to_string();
        user_row!(self, user_connections, ConnectionRow, user, &id)
    }

    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let row: Option<ConnectionRow> = optional_row!(
            self,
            first,
            uc::user_connections
                .filter(uc::user_id.eq(user.as_str()))
                .filter(uc::provider.eq(provider.as_str()))
                .filter(uc::account_id.eq(account_id))
                .select(ConnectionRow::as_select())
        )?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn list_connections(
        &self,
        user: &UserId,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let rows: Vec<ConnectionRow> = db_run!(self, |conn| {
            let mut q = uc::user_connections
                .filter(uc::user_id.eq(user.as_str()))
                .select(ConnectionRow::as_select())
                .order((uc::created_at.asc(), uc::id.asc()))
                .into_boxed();
            if let Some(p) = provider {
                q = q.filter(uc::provider.eq(p.as_str()));
            }
            q.load(conn).await.db()
        })?;
        rows_to_records(rows)
    }

    async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let id = id.0.to_string();
        let now = now_db();
        let validated = update.last_validated_at.map(to_db);
        let row: Option<ConnectionRow> = optional_row!(
            self,
            get_result,
            diesel::update(
                uc::user_connections
                    .filter(uc::user_id.eq(user.as_str()))
                    .filter(uc::id.eq(&id)),
            )
            .set((
                uc::status.eq(update.status.as_str()),
                uc::status_reason.eq(update.status_reason.as_deref()),
                validated.map(|t| uc::last_validated_at.eq(Some(t))),
                uc::updated_at.eq(now),
            ))
            .returning(ConnectionRow::as_returning())
        )?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let id = id.0.to_string();
        let now = now_db();
        let metadata = metadata.to_string();
        let expires_at = expires_at.map(to_db);
        let row: Option<ConnectionRow> = optional_row!(
            self,
            get_result,
            diesel::update(
                uc::user_connections
                    .filter(uc::user_id.eq(user.as_str()))
                    .filter(uc::id.eq(&id)),
            )
            .set((
                uc::metadata.eq(&metadata),
                uc::expires_at.eq(expires_at),
                uc::updated_at.eq(now),
            ))
            .returning(ConnectionRow::as_returning())
        )?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let id = id.0.to_string();
        let n = count_rows!(
            self,
            diesel::delete(
                uc::user_connections
                    .filter(uc::user_id.eq(user.as_str()))
                    .filter(uc::id.eq(&id)),
            )
        )?;
        Ok(n > 0)
    }

    async fn referenced_secrets(
        &self,
        refs: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let mut found = std::collections::HashSet::new();
        // Bounded `IN` lists: SQLite caps bound parameters (32,766 in current builds).
        for chunk in refs.chunks(500) {
            let rows: Vec<String> = db_run!(self, |conn| {
                uc::user_connections
                    .filter(uc::secret_ref.eq_any(chunk))
                    .select(uc::secret_ref)
                    .load(conn)
                    .await
                    .db()
            })?;
            found.extend(rows);
        }
        Ok(found)
    }
}
