//! Mapping of diesel, pool and migration errors onto `StoreError`, without bound values.

use connector_core::error::StoreError;
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use diesel_async::pooled_connection::PoolError as ManagerError;

/// A diesel error as a `StoreError`. Only the server's primary message is kept (PostgreSQL puts the
/// offending values in the *detail*, which is dropped).
pub(crate) fn db_error(e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(kind, info) => {
            let msg = info.message().to_owned();
            match kind {
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict(msg)
                }
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    StoreError::Unavailable(msg)
                }
                _ if is_busy(&msg) => StoreError::Unavailable(msg),
                _ => StoreError::Other(msg),
            }
        }
        DieselError::BrokenTransactionManager => {
            StoreError::Unavailable("the database connection is broken".into())
        }
        DieselError::DeserializationError(e) => {
            StoreError::Other(format!("a stored value does not decode: {e}"))
        }
        DieselError::SerializationError(e) => {
            StoreError::Other(format!("a value could not be encoded: {e}"))
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// SQLite's "database is locked" / "database is busy": the writer lock was not obtained in time.
fn is_busy(msg: &str) -> bool {
    msg.contains("database is locked") || msg.contains("database is busy")
}

/// A connection that could not be opened.
pub(crate) fn connection_error(e: &ConnectionError) -> StoreError {
    StoreError::Unavailable(format!("cannot connect to the database: {e}"))
}

/// A pool checkout failure: always `Unavailable` except for a misconfigured pool.
pub(crate) fn pool_error(e: PoolError) -> StoreError {
    use deadpool::managed::PoolError as P;
    match e {
        P::Timeout(t) => StoreError::Unavailable(format!(
            "timed out waiting for a database connection ({t:?})"
        )),
        P::Backend(ManagerError::ConnectionError(e)) => connection_error(&e),
        P::Backend(ManagerError::QueryError(e)) => match db_error(e) {
            StoreError::Other(m) | StoreError::Conflict(m) => StoreError::Unavailable(m),
            u @ StoreError::Unavailable(_) => u,
        },
        P::Closed => StoreError::Unavailable("the database pool is closed".into()),
        P::PostCreateHook(e) => StoreError::Unavailable(format!("connection setup failed: {e}")),
        P::NoRuntimeSpecified => {
            StoreError::Other("the database pool has no runtime for timeouts".into())
        }
    }
}

/// Extension to map diesel results.
pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResultExt<T> for Result<T, DieselError> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_error)
    }
}
