//! Values a provider plugin keeps per user (`plugin_values`): `PluginValueStore` for `SqlStore`.

use async_trait::async_trait;
use connector_core::error::StoreError;
use connector_core::ids::{ProviderId, UserId};
use connector_core::store::PluginValueStore;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::error::DbResultExt;
use crate::models::{now_db, PluginValueRow};
use crate::schema::plugin_values::dsl as pv;
use crate::sql::{db_run, SqlStore};

/// The primary key: one value per provider, user and name.
const KEY: (pv::provider, pv::user_id, pv::name) = (pv::provider, pv::user_id, pv::name);

fn row(provider: &ProviderId, user: &UserId, name: &str, value: &str) -> PluginValueRow {
    let now = now_db();
    PluginValueRow {
        provider: provider.as_str().to_owned(),
        user_id: user.as_str().to_owned(),
        name: name.to_owned(),
        value: value.to_owned(),
        created_at: now,
        updated_at: now,
    }
}

/// Inserts `$row` on `$conn`; on a [`KEY`] conflict the existing row is handled by the builder
/// call `$conflict` (`do_nothing()` or `do_update().set(…)`). `Result<usize, StoreError>`.
macro_rules! insert_on_key {
    ($conn:ident, $row:expr, $($conflict:tt)*) => {
        diesel::insert_into(pv::plugin_values)
            .values($row)
            .on_conflict(KEY)
            .$($conflict)*
            .execute($conn)
            .await
            .db()
    };
}

#[async_trait]
impl PluginValueStore for SqlStore {
    async fn get_or_create_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let row = row(provider, user, name, candidate);
        db_run!(self, |conn| {
            insert_on_key!(conn, &row, do_nothing())?;
            pv::plugin_values
                .filter(pv::provider.eq(&row.provider))
                .filter(pv::user_id.eq(&row.user_id))
                .filter(pv::name.eq(&row.name))
                .select(pv::value)
                .first::<String>(conn)
                .await
                .db()
        })
    }

    async fn replace_plugin_value(
        &self,
        provider: &ProviderId,
        user: &UserId,
        name: &str,
        new: &str,
    ) -> Result<String, StoreError> {
        let row = row(provider, user, name, new);
        db_run!(self, |conn| {
            insert_on_key!(
                conn,
                &row,
                do_update().set((
                    pv::value.eq(excluded(pv::value)),
                    pv::updated_at.eq(excluded(pv::updated_at)),
                ))
            )
        })?;
        Ok(new.to_owned())
    }
}
