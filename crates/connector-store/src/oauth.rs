//! Pending OAuth states: `OAuthStateStore` for `SqlStore`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::store::{OAuthStateRecord, OAuthStateStore};
use diesel::prelude::*;

use crate::models::{to_db, OAuthRow};
use crate::schema::oauth_states;
use crate::schema::oauth_states::dsl as os;
use crate::sql::{count_rows, insert_rows, optional_row, SqlStore};

#[async_trait]
impl OAuthStateStore for SqlStore {
    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError> {
        let row = OAuthRow::from_record(state);
        insert_rows!(self, oauth_states::table, &row)
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        // DELETE … RETURNING is atomic: of concurrent takers exactly one gets the row.
        let row: Option<OAuthRow> = optional_row!(
            self,
            get_result,
            diesel::delete(os::oauth_states.filter(os::state_hash.eq(state_hash)))
                .returning(OAuthRow::as_returning())
        )?;
        match row {
            Some(r) if r.expires_at > to_db(now) => Ok(Some(r.into_record()?)),
            _ => Ok(None),
        }
    }

    async fn peek_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        let row: Option<OAuthRow> = optional_row!(
            self,
            first,
            os::oauth_states
                .filter(os::state_hash.eq(state_hash))
                .filter(os::expires_at.gt(to_db(now)))
                .select(OAuthRow::as_select())
        )?;
        row.map(OAuthRow::into_record).transpose()
    }

    async fn prune_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = to_db(now);
        let n = count_rows!(
            self,
            diesel::delete(os::oauth_states.filter(os::expires_at.le(now)))
        )?;
        Ok(n)
    }
}
