//! Row types of each table and their conversions to and from the core records.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use connector_core::error::StoreError;
use connector_core::ids::{ConnectionId, ProviderId, UserId};
use connector_core::store::{
    AuditEvent, ConnectionRecord, NewConnection, NewSetupTask, OAuthStateRecord, SetupTaskRecord,
};
use diesel::prelude::*;

use crate::schema::{audit_events, oauth_states, plugin_values, setup_tasks, user_connections};

/// A UTC instant as stored: naive UTC, truncated to microseconds (PostgreSQL's precision), so
/// both backends hold and return the same value.
pub(crate) fn to_db(t: DateTime<Utc>) -> NaiveDateTime {
    t.trunc_subsecs(6).naive_utc()
}

pub(crate) fn from_db(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// The current instant, as stored.
pub(crate) fn now_db() -> NaiveDateTime {
    to_db(Utc::now())
}

fn corrupt(field: &'static str) -> StoreError {
    StoreError::Other(format!("a stored row does not decode ({field})"))
}

fn parse_uuid(s: &str, field: &'static str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(s).map_err(|_| corrupt(field))
}

fn parse_user(s: &str) -> Result<UserId, StoreError> {
    UserId::parse(s).map_err(|_| corrupt("user_id"))
}

fn parse_provider(s: &str) -> Result<ProviderId, StoreError> {
    ProviderId::parse(s).map_err(|_| corrupt("provider"))
}

fn parse_json(s: &str, field: &'static str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(field))
}

pub(crate) fn to_json(v: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    v.to_string()
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_connections)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ConnectionRow {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub account_id: String,
    pub display_name: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub read_only: bool,
    pub secret_ref: String,
    pub metadata: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_validated_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

impl ConnectionRow {
    /// The row a connect inserts, stamped `now` for both `created_at` and `updated_at`.
    pub fn from_new(n: NewConnection, now: NaiveDateTime) -> Self {
        Self {
            id: n.id.0.to_string(),
            user_id: n.user_id.as_str().to_owned(),
            provider: n.provider.as_str().to_owned(),
            account_id: n.account_id,
            display_name: n.display_name,
            status: n.status.as_str().to_owned(),
            status_reason: n.status_reason,
            read_only: n.read_only,
            secret_ref: n.secret_ref,
            metadata: to_json(&n.metadata),
            created_at: now,
            updated_at: now,
            last_validated_at: n.last_validated_at.map(to_db),
            expires_at: n.expires_at.map(to_db),
        }
    }

    pub fn into_record(self) -> Result<ConnectionRecord, StoreError> {
        Ok(ConnectionRecord {
            id: ConnectionId(parse_uuid(&self.id, "id")?),
            user_id: parse_user(&self.user_id)?,
            provider: parse_provider(&self.provider)?,
            account_id: self.account_id,
            display_name: self.display_name,
            status: self.status.parse().map_err(|_| corrupt("status"))?,
            status_reason: self.status_reason,
            read_only: self.read_only,
            secret_ref: self.secret_ref,
            metadata: parse_json(&self.metadata, "metadata")?,
            created_at: from_db(self.created_at),
            updated_at: from_db(self.updated_at),
            last_validated_at: self.last_validated_at.map(from_db),
            expires_at: self.expires_at.map(from_db),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct AuditRow {
    pub id: String,
    pub user_id: String,
    pub connection_id: Option<String>,
    pub provider: Option<String>,
    pub action: String,
    pub actor: String,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

impl AuditRow {
    pub fn from_event(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            user_id: e.user_id.as_str().to_owned(),
            connection_id: e.connection_id.map(|c| c.0.to_string()),
            provider: e.provider.map(|p| p.as_str().to_owned()),
            action: e.action,
            actor: e.actor,
            detail: to_json(&e.detail),
            created_at: to_db(e.created_at),
        }
    }

    pub fn into_event(self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: parse_uuid(&self.id, "id")?,
            user_id: parse_user(&self.user_id)?,
            connection_id: self
                .connection_id
                .as_deref()
                .map(|c| parse_uuid(c, "connection_id").map(ConnectionId))
                .transpose()?,
            provider: self.provider.as_deref().map(parse_provider).transpose()?,
            action: self.action,
            actor: self.actor,
            detail: parse_json(&self.detail, "detail")?,
            created_at: from_db(self.created_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct OAuthRow {
    pub state_hash: String,
    pub user_id: String,
    pub provider: String,
    pub sealed_verifier: Vec<u8>,
    pub redirect_uri: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl OAuthRow {
    pub fn from_record(r: OAuthStateRecord) -> Self {
        Self {
            state_hash: r.state_hash,
            user_id: r.user_id.as_str().to_owned(),
            provider: r.provider.as_str().to_owned(),
            sealed_verifier: r.sealed_verifier,
            redirect_uri: r.redirect_uri,
            created_at: to_db(r.created_at),
            expires_at: to_db(r.expires_at),
        }
    }

    pub fn into_record(self) -> Result<OAuthStateRecord, StoreError> {
        Ok(OAuthStateRecord {
            state_hash: self.state_hash,
            user_id: parse_user(&self.user_id)?,
            provider: parse_provider(&self.provider)?,
            sealed_verifier: self.sealed_verifier,
            redirect_uri: self.redirect_uri,
            created_at: from_db(self.created_at),
            expires_at: from_db(self.expires_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = plugin_values)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct PluginValueRow {
    pub provider: String,
    pub user_id: String,
    pub name: String,
    pub value: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A setup task row (the GCP post-auth setup; see `tasks.rs`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = setup_tasks)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct SetupTaskRow {
    pub id: String,
    pub user_id: String,
    pub connection_id: Option<String>,
    pub provider: String,
    pub state: String,
    pub step: i32,
    pub total_steps: i32,
    pub progress: i32,
    pub status_message: String,
    pub error: Option<String>,
    pub result: Option<String>,
    pub input: String,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl SetupTaskRow {
    /// The row a new task inserts, stamped `now`, without a lease.
    pub fn from_new(t: NewSetupTask, now: NaiveDateTime) -> Self {
        Self {
            id: t.id.to_string(),
            user_id: t.user_id.as_str().to_owned(),
            connection_id: t.connection_id.map(|c| c.0.to_string()),
            provider: t.provider.as_str().to_owned(),
            state: t.state.as_str().to_owned(),
            step: t.step.max(0),
            total_steps: t.total_steps.max(0),
            progress: t.progress.clamp(0, 100),
            status_message: t.status_message,
            error: None,
            result: None,
            input: to_json(&t.input),
            attempts: 0,
            lease_owner: None,
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn into_record(self) -> Result<SetupTaskRecord, StoreError> {
        Ok(SetupTaskRecord {
            id: parse_uuid(&self.id, "id")?,
            user_id: parse_user(&self.user_id)?,
            connection_id: self
                .connection_id
                .as_deref()
                .map(|c| parse_uuid(c, "connection_id").map(ConnectionId))
                .transpose()?,
            provider: parse_provider(&self.provider)?,
            state: self.state.parse().map_err(|_| corrupt("state"))?,
            step: self.step,
            total_steps: self.total_steps,
            progress: self.progress,
            status_message: self.status_message,
            error: self.error,
            result: self
                .result
                .as_deref()
                .map(|r| parse_json(r, "result"))
                .transpose()?,
            input: parse_json(&self.input, "input")?,
            attempts: self.attempts,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at.map(from_db),
            created_at: from_db(self.created_at),
            updated_at: from_db(self.updated_at),
        })
    }
}
