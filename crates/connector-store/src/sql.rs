//! `SqlStore`: the store over a PostgreSQL or SQLite connection pool: the pools, `db_run!`,
//! migrations and the test dump. Each store trait is implemented in its own file.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use connector_core::error::StoreError;
use connector_core::store::ConnectionStore;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{ConnectionError, ConnectionResult, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::checks::{dump_usage, UsageRow};
use crate::config::DbConfig;
use crate::dump::Dump;
use crate::error::{connection_error, pool_error, DbResultExt};
use crate::models::{AuditRow, ConnectionRow, OAuthRow, PluginValueRow, SetupTaskRow};
use crate::outbox::{dump_row, OutboxRow};
use crate::schema::{
    audit_events, credential_usage, oauth_states, plugin_values, setup_tasks, user_connections,
    webhook_outbox,
};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long a caller waits for a pooled connection, and for a new connection to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of the SQLite pool (WAL: many readers, one writer at a time).
const SQLITE_POOL_SIZE: usize = 8;
/// Set on every SQLite connection. `busy_timeout` first, so the others wait for a lock.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

pub(crate) enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// The relational store over PostgreSQL or SQLite.
pub struct SqlStore {
    pub(crate) pools: Pools,
    /// What `connect` was given; used by `migrate` to open a dedicated connection.
    url: String,
    /// Credential-use notes written lately, to coalesce repeats (`checks.rs`).
    pub(crate) usage_notes: crate::checks::UsageNotes,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the store uses.
/// The body is written once and compiled for each backend; it evaluates to a
/// `Result<_, StoreError>`.
macro_rules! db_run {
    ($store:expr, |$conn:ident| $body:block) => {
        match &$store.pools {
            $crate::sql::Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::pool_error)?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut pooled;
                $body
            }
            $crate::sql::Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::error::pool_error)?;
                let $conn: &mut $crate::sql::SqliteConn = &mut pooled;
                $body
            }
        }
    };
}

/// Runs the statement `$stmt` (an update or a delete) with [`db_run!`]; evaluates to
/// `Result<u64, StoreError>`, how many rows it touched.
macro_rules! count_rows {
    ($store:expr, $stmt:expr) => {
        $crate::sql::db_run!($store, |conn| {
            diesel_async::RunQueryDsl::execute($stmt, conn)
                .await
                .map_err($crate::error::db_error)
        })
        .map(|n| n as u64)
    };
}

/// Runs `$query` with [`db_run!`] through `RunQueryDsl::$method` (`first` for a select,
/// `get_result` for a statement with `RETURNING`); evaluates to `Result<Option<T>, StoreError>`,
/// `None` where no row matched.
macro_rules! optional_row {
    ($store:expr, $method:ident, $query:expr) => {
        $crate::sql::db_run!($store, |conn| {
            diesel::OptionalExtension::optional(
                diesel_async::RunQueryDsl::$method($query, conn).await,
            )
            .map_err($crate::error::db_error)
        })
    };
}

/// Inserts `$rows` (a row or a slice of rows) into `$table` with [`db_run!`]; evaluates to
/// `Result<(), StoreError>`.
macro_rules! insert_rows {
    ($store:expr, $table:expr, $rows:expr) => {
        $crate::sql::db_run!($store, |conn| {
            diesel_async::RunQueryDsl::execute(diesel::insert_into($table).values($rows), conn)
                .await
                .map_err($crate::error::db_error)
        })
        .map(|_| ())
    };
}

/// The row with id `$id` owned by `$user` in `$table` (a `crate::schema` table with `user_id` and
/// `id` columns), read as `$row` and turned into its record; evaluates to
/// `Result<Option<Record>, StoreError>`. A row of another user is `None`.
macro_rules! user_row {
    ($store:expr, $table:ident, $row:ty, $user:expr, $id:expr) => {
        $crate::sql::optional_row!(
            $store,
            first,
            $crate::schema::$table::table
                .filter($crate::schema::$table::user_id.eq($user.as_str()))
                .filter($crate::schema::$table::id.eq($id))
                .select(<$row>::as_select())
        )
        .and_then(|row: Option<$row>| row.map(<$row>::into_record).transpose())
    };
}

pub(crate) use {count_rows, db_run, insert_rows, optional_row, user_row};

type SetupFuture<'a> = Pin<Box<dyn Future<Output = ConnectionResult<SqliteConn>> + Send + 'a>>;

/// Opens a SQLite connection with the store's pragmas (blocking).
fn open_sqlite(path: &str) -> ConnectionResult<SqliteConnection> {
    let mut conn = SqliteConnection::establish(path)?;
    conn.batch_execute(SQLITE_PRAGMAS)
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Deadpool's connection factory for SQLite.
fn sqlite_setup(path: &str) -> SetupFuture<'_> {
    let path = path.to_owned();
    Box::pin(async move {
        let conn = tokio::task::spawn_blocking(move || open_sqlite(&path))
            .await
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))??;
        Ok(SyncConnectionWrapper::new(conn))
    })
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(format!("a blocking database task failed: {e}"))
}

fn migration_error(e: impl fmt::Display) -> StoreError {
    StoreError::Other(format!("migration failed: {e}"))
}

/// Applies the pending migrations of `source` on `conn`; returns their names.
/// The advisory lock key of the migrations: per schema, so schemas of one database migrate apart.
const PG_MIGRATION_LOCK: &str = "hashtext('aurora-migrations:' || current_schema())";

fn run_migrations<C, DB>(
    conn: &mut C,
    source: EmbeddedMigrations,
) -> Result<Vec<String>, StoreError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    let pending = conn.pending_migrations(source).map_err(migration_error)?;
    let mut applied = Vec::with_capacity(pending.len());
    for m in pending {
        conn.run_migration(&*m).map_err(migration_error)?;
        applied.push(m.name().to_string());
    }
    Ok(applied)
}

impl SqlStore {
    /// Builds the pool. PostgreSQL connects lazily (a dead server shows up as `Unavailable` on
    /// the first query); SQLite creates the parent directory and opens the file at once.
    pub async fn connect(cfg: &DbConfig) -> Result<Self, StoreError> {
        match cfg {
            DbConfig::Postgres { url, pool_size } => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.clone());
                let pool = Pool::builder(manager)
                    .max_size((*pool_size).max(1))
                    .wait_timeout(Some(POOL_TIMEOUT))
                    .create_timeout(Some(POOL_TIMEOUT))
                    .recycle_timeout(Some(POOL_TIMEOUT))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| StoreError::Other(format!("cannot build the pool: {e}")))?;
                Ok(Self {
                    pools: Pools::Postgres(pool),
                    url: url.clone(),
                    usage_notes: Default::default(),
                })
            }
            DbConfig::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| {
                        StoreError::Unavailable(format!(
                            "cannot create the database directory: {e}"
                        ))
                    })?;
                }
                let url = sqlite_path(path)?;
                let mut mc = ManagerConfig::<SqliteConn>::default();
                mc.custom_setup = Box::new(sqlite_setup);
                // A local file does not go away under us: skip the per-checkout round trip.
                mc.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::new_with_config(url.clone(), mc);
                let pool = Pool::builder(manager)
                    .max_size(SQLITE_POOL_SIZE)
                    .wait_timeout(Some(POOL_TIMEOUT))
                    .create_timeout(Some(POOL_TIMEOUT))
                    .recycle_timeout(Some(POOL_TIMEOUT))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| StoreError::Other(format!("cannot build the pool: {e}")))?;
                // Open one connection now: creates the file and switches it to WAL before any
                // concurrent use, and reports a bad path here rather than on the first query.
                drop(pool.get().await.map_err(pool_error)?);
                Ok(Self {
                    pools: Pools::Sqlite(pool),
                    url,
                    usage_notes: Default::default(),
                })
            }
        }
    }

    /// Applies the pending embedded migrations on a dedicated connection (never a pooled one) and
    /// returns the names applied, empty when the schema is current.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let url = self.url.clone();
        let applied = match &self.pools {
            Pools::Postgres(_) => tokio::task::spawn_blocking(move || {
                let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
                    .map_err(|e| connection_error(&e))?;
                // Replicas starting together: one migrates under this lock (one per schema), the
                // others wait for it and then find nothing pending. Released with the connection
                // if the unlock below never runs.
                conn.batch_execute(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                    .map_err(migration_error)?;
                let out = run_migrations(&mut conn, PG_MIGRATIONS);
                if let Err(e) =
                    conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                {
                    tracing::warn!(error = %e, "could not release the migration lock; it goes with the connection");
                }
                out
            })
            .await
            .map_err(join_error)??,
            Pools::Sqlite(_) => tokio::task::spawn_blocking(move || {
                let mut conn = open_sqlite(&url).map_err(|e| connection_error(&e))?;
                run_migrations(&mut conn, SQLITE_MIGRATIONS)
            })
            .await
            .map_err(join_error)??,
        };
        if !applied.is_empty() {
            tracing::info!(backend = self.backend_name(), migrations = ?applied, "applied migrations");
        }
        Ok(applied)
    }

    /// Every row of every table as text, one line a row, for tests asserting that no secret
    /// reaches the database.
    pub async fn dump_text(&self) -> Result<String, StoreError> {
        // Every row of `$table` in `$order`, read as `$row` and written by `$write`.
        macro_rules! dump_table {
            ($conn:ident, $dump:ident, $table:ident, $order:expr, $row:ty, $write:expr) => {
                for r in $table::table
                    .order($order)
                    .select(<$row>::as_select())
                    .load($conn)
                    .await
                    .db()?
                {
                    $write(&mut $dump, &r);
                }
            };
        }
        db_run!(self, |conn| {
            let mut dump = Dump::new();
            {
                dump_table!(
                    conn,
                    dump,
                    user_connections,
                    user_connections::id,
                    ConnectionRow,
                    Dump::connection
                );
                dump_table!(
                    conn,
                    dump,
                    audit_events,
                    audit_events::id,
                    AuditRow,
                    Dump::audit
                );
                dump_table!(
                    conn,
                    dump,
                    oauth_states,
                    oauth_states::state_hash,
                    OAuthRow,
                    Dump::oauth
                );
                dump_table!(
                    conn,
                    dump,
                    plugin_values,
                    (
                        plugin_values::provider,
                        plugin_values::user_id,
                        plugin_values::name
                    ),
                    PluginValueRow,
                    Dump::plugin_value
                );
                dump_table!(
                    conn,
                    dump,
                    setup_tasks,
                    setup_tasks::id,
                    SetupTaskRow,
                    Dump::setup_task
                );
                dump_table!(
                    conn,
                    dump,
                    webhook_outbox,
                    webhook_outbox::id,
                    OutboxRow,
                    dump_row
                );
                dump_table!(
                    conn,
                    dump,
                    credential_usage,
                    credential_usage::id,
                    UsageRow,
                    dump_usage
                );
            }
            Ok(dump.finish())
        })
    }
}

fn sqlite_path(path: &Path) -> Result<String, StoreError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Other("the SQLite path is not valid UTF-8".into()))
}
