//! The relational store of Aurora Connectors: one [`SqlStore`] implementing every trait of
//! [`connector_core::store`] (so [`connector_core::store::Store`]) over PostgreSQL (diesel-async) or
//! an embedded SQLite file, one file per trait.
//!
//! Query code is written once (see the `db_run!` macro in `sql.rs`) and instantiated for each
//! backend; every lease claim is written once too (`claim_rows!` in `lease.rs`); `schema.rs` uses
//! column types both backends understand. Migrations are embedded from
//! `migrations/postgres` and `migrations/sqlite` at the workspace root.

mod audit;
mod checks;
mod config;
mod connections;
mod dump;
mod error;
mod lease;
mod models;
mod oauth;
mod outbox;
mod plugin_values;
mod schema;
mod sql;
mod tasks;

pub use config::DbConfig;
pub use connector_core::error::StoreError;
pub use sql::SqlStore;
