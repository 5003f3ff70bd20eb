//! The relational store of Aurora Connectors: one [`SqlStore`] implementing
//! [`connector_core::store::Store`] over PostgreSQL (diesel-async) or an embedded SQLite file.
//!
//! Query code is written once (see the `db_run!` macro in `sql.rs`) and instantiated for each
//! backend; `schema.rs` uses column types both backends understand. Migrations are embedded from
//! `migrations/postgres` and `migrations/sqlite` at the workspace root.

mod checks;
mod config;
mod error;
mod models;
mod outbox;
mod schema;
mod sql;
mod tasks;

pub use config::DbConfig;
pub use connector_core::error::StoreError;
pub use sql::SqlStore;
