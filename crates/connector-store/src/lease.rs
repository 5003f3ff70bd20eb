//! Leasing due rows, written once for every claim of the store (status checks, refreshes, expiry
//! warnings, setup tasks, webhook events).
//!
//! A claim picks the ids of the oldest due rows and updates them (the lease, or a mark). On
//! PostgreSQL the pick and the update run in one transaction with `FOR UPDATE SKIP LOCKED`, so
//! concurrent replicas take different rows without waiting for each other. On SQLite (one writer at
//! a time) the update repeats the due condition, so of concurrent claimers only one updates a row; a
//! claimer that lost every row it picked picks again (an empty answer means nothing is due), one
//! that lost some gets fewer back.

/// How many picks a SQLite claimer tries when concurrent claimers took every row it picked, before
/// it reports nothing due.
pub(crate) const SQLITE_CLAIM_TRIES: usize = 8;

/// Claims rows of `$table` (primary key `$id`, a `Text` column) and evaluates to
/// `Result<Vec<_>, StoreError>` of the updated rows, as `$returning` selects them, in no particular
/// order.
///
/// - `pick`: a closure returning the query of the due ids (ordered and limited);
/// - `due`: a closure returning the due condition, repeated by SQLite's update;
/// - `set`: the update's assignments; `returning`: what the update returns.
macro_rules! claim_rows {
    ($store:expr, $table:expr, $id:expr,
     pick: $pick:ident, due: $due:ident, set: $set:expr, returning: $returning:expr $(,)?) => {{
        use diesel_async::AsyncConnection as _;
        use $crate::error::DbResultExt as _;
        match &$store.pools {
            $crate::sql::Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::pool_error)?;
                let c: &mut diesel_async::AsyncPgConnection = &mut pooled;
                c.transaction(async |c| {
                    let ids: Vec<String> = $pick().for_update().skip_locked().load(c).await?;
                    if ids.is_empty() {
                        return Ok::<_, diesel::result::Error>(Vec::new());
                    }
                    diesel::update($table.filter($id.eq_any(&ids)))
                        .set($set)
                        .returning($returning)
                        .get_results(c)
                        .await
                })
                .await
                .db()
            }
            $crate::sql::Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::pool_error)?;
                let c: &mut $crate::sql::SqliteConn = &mut pooled;
                let mut rows = Vec::new();
                for _ in 0..$crate::lease::SQLITE_CLAIM_TRIES {
                    let ids: Vec<String> = $pick().load(c).await.db()?;
                    if ids.is_empty() {
                        break;
                    }
                    rows = diesel::update($table.filter($id.eq_any(&ids)).filter($due()))
                        .set($set)
                        .returning($returning)
                        .get_results(c)
                        .await
                        .db()?;
                    if !rows.is_empty() {
                        break;
                    }
                }
                Ok(rows)
            }
        }
    }};
}

pub(crate) use claim_rows;
