//! `SqlStore`: the `Store` implementation over a PostgreSQL or SQLite connection pool.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ProviderId, UserId};
use connector_core::store::{
    AuditEvent, ConnectionRecord, NewConnection, NewSetupTask, OAuthStateRecord, SetupOutcome,
    SetupProgress, SetupTaskRecord, StatusUpdate, Store,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel::{ConnectionError, ConnectionResult, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DbConfig;
use crate::error::{connection_error, pool_error, DbResultExt};
use crate::models::{
    now_db, to_db, AuditRow, ConnectionRow, Dump, ExternalIdRow, OAuthRow, SetupTaskRow,
};
use crate::schema::{audit_events, external_ids, oauth_states, setup_tasks, user_connections};

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
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let $conn: &mut AsyncPgConnection = &mut pooled;
                $body
            }
            Pools::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(pool_error)?;
                let $conn: &mut SqliteConn = &mut pooled;
                $body
            }
        }
    };
}

pub(crate) use db_run;

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
        db_run!(self, |conn| {
            let mut dump = Dump::new();
            for r in user_connections::table
                .order(user_connections::id)
                .select(ConnectionRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                dump.connection(&r);
            }
            for r in audit_events::table
                .order(audit_events::id)
                .select(AuditRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                dump.audit(&r);
            }
            for r in oauth_states::table
                .order(oauth_states::state_hash)
                .select(OAuthRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                dump.oauth(&r);
            }
            for r in external_ids::table
                .order(external_ids::user_id)
                .select(ExternalIdRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                dump.external_id(&r);
            }
            for r in setup_tasks::table
                .order(setup_tasks::id)
                .select(SetupTaskRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                dump.setup_task(&r);
            }
            for r in crate::schema::webhook_outbox::table
                .order(crate::schema::webhook_outbox::id)
                .select(crate::outbox::OutboxRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                crate::outbox::dump_row(&mut dump, &r);
            }
            for r in crate::schema::credential_usage::table
                .order(crate::schema::credential_usage::id)
                .select(crate::checks::UsageRow::as_select())
                .load(conn)
                .await
                .db()?
            {
                crate::checks::dump_usage(&mut dump, &r);
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

fn rows_to_records(rows: Vec<ConnectionRow>) -> Result<Vec<ConnectionRecord>, StoreError> {
    rows.into_iter().map(ConnectionRow::into_record).collect()
}

#[async_trait]
impl Store for SqlStore {
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
        use crate::schema::user_connections::dsl as uc;
        let id = id.0.to_string();
        let row: Option<ConnectionRow> = db_run!(self, |conn| {
            uc::user_connections
                .filter(uc::user_id.eq(user.as_str()))
                .filter(uc::id.eq(&id))
                .select(ConnectionRow::as_select())
                .first(conn)
                .await
                .optional()
                .db()
        })?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn find_connection(
        &self,
        user: &UserId,
        provider: &ProviderId,
        account_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let row: Option<ConnectionRow> = db_run!(self, |conn| {
            uc::user_connections
                .filter(uc::user_id.eq(user.as_str()))
                .filter(uc::provider.eq(provider.as_str()))
                .filter(uc::account_id.eq(account_id))
                .select(ConnectionRow::as_select())
                .first(conn)
                .await
                .optional()
                .db()
        })?;
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
        let row: Option<ConnectionRow> = db_run!(self, |conn| {
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
            .get_result(conn)
            .await
            .optional()
            .db()
        })?;
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
        let row: Option<ConnectionRow> = db_run!(self, |conn| {
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
            .get_result(conn)
            .await
            .optional()
            .db()
        })?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn delete_connection(&self, user: &UserId, id: ConnectionId) -> Result<bool, StoreError> {
        use crate::schema::user_connections::dsl as uc;
        let id = id.0.to_string();
        let n = db_run!(self, |conn| {
            diesel::delete(
                uc::user_connections
                    .filter(uc::user_id.eq(user.as_str()))
                    .filter(uc::id.eq(&id)),
            )
            .execute(conn)
            .await
            .db()
        })?;
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

    async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        let row = AuditRow::from_event(event);
        db_run!(self, |conn| {
            diesel::insert_into(audit_events::table)
                .values(&row)
                .execute(conn)
                .await
                .db()
        })?;
        Ok(())
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
        let n = db_run!(self, |conn| {
            diesel::delete(ae::audit_events.filter(ae::created_at.lt(before)))
                .execute(conn)
                .await
                .db()
        })?;
        Ok(n as u64)
    }

    async fn put_oauth_state(&self, state: OAuthStateRecord) -> Result<(), StoreError> {
        let row = OAuthRow::from_record(state);
        db_run!(self, |conn| {
            diesel::insert_into(oauth_states::table)
                .values(&row)
                .execute(conn)
                .await
                .db()
        })?;
        Ok(())
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        use crate::schema::oauth_states::dsl as os;
        // DELETE … RETURNING is atomic: of concurrent takers exactly one gets the row.
        let row: Option<OAuthRow> = db_run!(self, |conn| {
            diesel::delete(os::oauth_states.filter(os::state_hash.eq(state_hash)))
                .returning(OAuthRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .db()
        })?;
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
        use crate::schema::oauth_states::dsl as os;
        let row: Option<OAuthRow> = db_run!(self, |conn| {
            os::oauth_states
                .filter(os::state_hash.eq(state_hash))
                .filter(os::expires_at.gt(to_db(now)))
                .select(OAuthRow::as_select())
                .first(conn)
                .await
                .optional()
                .db()
        })?;
        row.map(OAuthRow::into_record).transpose()
    }

    async fn get_or_create_external_id(
        &self,
        user: &UserId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        use crate::schema::external_ids::dsl as ex;
        let row = ExternalIdRow {
            user_id: user.as_str().to_owned(),
            external_id: candidate.to_owned(),
            created_at: now_db(),
            rotated_at: None,
        };
        db_run!(self, |conn| {
            diesel::insert_into(ex::external_ids)
                .values(&row)
                .on_conflict(ex::user_id)
                .do_nothing()
                .execute(conn)
                .await
                .db()?;
            ex::external_ids
                .filter(ex::user_id.eq(user.as_str()))
                .select(ex::external_id)
                .first::<String>(conn)
                .await
                .db()
        })
    }

    async fn rotate_external_id(&self, user: &UserId, new: &str) -> Result<String, StoreError> {
        use crate::schema::external_ids::dsl as ex;
        let now = now_db();
        let row = ExternalIdRow {
            user_id: user.as_str().to_owned(),
            external_id: new.to_owned(),
            created_at: now,
            rotated_at: None,
        };
        db_run!(self, |conn| {
            diesel::insert_into(ex::external_ids)
                .values(&row)
                .on_conflict(ex::user_id)
                .do_update()
                .set((
                    ex::external_id.eq(excluded(ex::external_id)),
                    ex::rotated_at.eq(Some(now)),
                ))
                .execute(conn)
                .await
                .db()
        })?;
        Ok(new.to_owned())
    }

    async fn create_setup_task(&self, task: NewSetupTask) -> Result<SetupTaskRecord, StoreError> {
        self.task_create(task).await
    }

    async fn get_setup_task(
        &self,
        user: &UserId,
        id: uuid::Uuid,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.task_get(user, id).await
    }

    async fn claim_setup_task(
        &self,
        provider: &ProviderId,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SetupTaskRecord>, StoreError> {
        self.task_claim(provider, worker, now, lease_until).await
    }

    async fn renew_setup_lease(
        &self,
        id: uuid::Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.task_renew(id, worker, lease_until).await
    }

    async fn save_setup_progress(
        &self,
        id: uuid::Uuid,
        worker: &str,
        progress: SetupProgress,
    ) -> Result<bool, StoreError> {
        self.task_save(id, worker, progress).await
    }

    async fn finish_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: SetupOutcome,
    ) -> Result<bool, StoreError> {
        self.task_finish(id, worker, outcome).await
    }

    async fn release_setup_task(
        &self,
        id: uuid::Uuid,
        worker: &str,
        not_before: DateTime<Utc>,
        status_message: &str,
    ) -> Result<bool, StoreError> {
        self.task_release(id, worker, not_before, status_message)
            .await
    }

    async fn cancel_setup_tasks(
        &self,
        user: &UserId,
        provider: &ProviderId,
        connection: Option<ConnectionId>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.task_cancel(user, provider, connection, reason).await
    }

    async fn pending_without_live_task(
        &self,
        provider: &ProviderId,
        updated_before: DateTime<Utc>,
        after: Option<ConnectionId>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.pending_without_live_task_page(provider, updated_before, after, limit)
            .await
    }

    async fn schedule_unscheduled_checks(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.checks_schedule(at).await
    }

    async fn claim_due_checks(
        &self,
        worker: &str,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<connector_core::store::CheckClaim>, StoreError> {
        self.checks_claim(worker, due_before, now, lease_until, limit)
            .await
    }

    async fn finish_check(
        &self,
        id: ConnectionId,
        worker: &str,
        next_check_at: DateTime<Utc>,
        failures: i32,
    ) -> Result<bool, StoreError> {
        self.checks_finish(id, worker, next_check_at, failures)
            .await
    }

    async fn record_credential_use(
        &self,
        id: ConnectionId,
        mode: connector_core::ids::CredentialMode,
        used_at: DateTime<Utc>,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.usage_record(id, mode, used_at, refresh_at).await
    }

    async fn claim_due_refreshes(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        used_since: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<connector_core::store::RefreshClaim>, StoreError> {
        self.usage_claim(worker, now, used_since, lease_until, limit)
            .await
    }

    async fn finish_refresh(
        &self,
        id: ConnectionId,
        mode: connector_core::ids::CredentialMode,
        worker: &str,
        refresh_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.usage_finish(id, mode, worker, refresh_at).await
    }

    async fn take_expiry_warnings(
        &self,
        warn_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.expiry_take(warn_before, limit).await
    }

    async fn prune_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.oauth_prune(now).await
    }

    async fn prune_setup_tasks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.tasks_prune(before).await
    }

    async fn append_audit_and_outbox(
        &self,
        event: AuditEvent,
        outbox: Option<connector_core::outbox::NewOutboxEvent>,
    ) -> Result<(), StoreError> {
        self.outbox_append_with_audit(event, outbox).await
    }

    async fn enqueue_webhook(
        &self,
        event: connector_core::outbox::NewOutboxEvent,
    ) -> Result<(), StoreError> {
        self.outbox_enqueue(event).await
    }

    async fn claim_webhooks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<connector_core::outbox::OutboxRecord>, StoreError> {
        self.outbox_claim(worker, now, lease_until, limit).await
    }

    async fn finish_webhook_attempt(
        &self,
        id: uuid::Uuid,
        worker: &str,
        outcome: connector_core::outbox::DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.outbox_finish(id, worker, outcome).await
    }

    async fn list_webhooks(
        &self,
        state: Option<connector_core::outbox::OutboxState>,
        limit: i64,
    ) -> Result<Vec<connector_core::outbox::OutboxRecord>, StoreError> {
        self.outbox_list(state, limit).await
    }

    async fn prune_webhooks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.outbox_prune(before).await
    }
}
