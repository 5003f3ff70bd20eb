//! The webhook outbox: which audited actions become webhook events, the event body, and the outbox
//! records the store keeps until a delivery worker (`connector-webhooks`) has delivered them.
//!
//! An event is written to the outbox by [`crate::Platform::audit`] in the same transaction as its
//! audit line (see [`crate::store::AuditStore::append_audit_and_outbox`]), so an action that is audited
//! also has its event, and the event survives a restart. The body is built once, at that moment,
//! and sent byte for byte on every attempt: its `id` is the event id the receiver deduplicates on.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::ids::{ConnectionId, ParseError, UserId};
use crate::settings::Settings;
use crate::store::{AuditEvent, ConnectionRecord};

mod event;
pub use self::event::*;

/// The setting that turns webhooks on (with `AURORA_WEBHOOK_SECRET`).
pub const WEBHOOK_URL_SETTING: &str = "AURORA_WEBHOOK_URL";

/// A webhook event type, sent as `connection.created`, … in the body and the event-type header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A connection was connected for the first time.
    Created,
    /// A connection's status changed (a check, a refusal, a recovery, a reconnect, a finished setup).
    StatusChanged,
    /// A connection was disconnected (its credentials are gone).
    Disconnected,
    /// A connection's long-lived secret ends soon (the scheduler's `expiry_warning`).
    Expiring,
}

impl WebhookEvent {
    /// Every event type, in documentation order.
    pub const ALL: [WebhookEvent; 4] = [
        Self::Created,
        Self::StatusChanged,
        Self::Disconnected,
        Self::Expiring,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "connection.created",
            Self::StatusChanged => "connection.status_changed",
            Self::Disconnected => "connection.disconnected",
            Self::Expiring => "connection.expiring",
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `connection.created` ([`WebhookEvent::Created`]).
pub const CONNECTION_CREATED: &str = WebhookEvent::Created.as_str();
/// `connection.status_changed` ([`WebhookEvent::StatusChanged`]).
pub const CONNECTION_STATUS_CHANGED: &str = WebhookEvent::StatusChanged.as_str();
/// `connection.disconnected` ([`WebhookEvent::Disconnected`]).
pub const CONNECTION_DISCONNECTED: &str = WebhookEvent::Disconnected.as_str();
/// `connection.expiring` ([`WebhookEvent::Expiring`]).
pub const CONNECTION_EXPIRING: &str = WebhookEvent::Expiring.as_str();

/// Every event type's name, in documentation order.
pub const EVENT_TYPES: [&str; 4] = [
    CONNECTION_CREATED,
    CONNECTION_STATUS_CHANGED,
    CONNECTION_DISCONNECTED,
    CONNECTION_EXPIRING,
];

/// Whether webhooks are configured (`AURORA_WEBHOOK_URL` set). The gateway refuses to start with a
/// URL and no secret, so a platform that sees the URL also has the secret.
pub fn webhooks_enabled(settings: &Settings) -> bool {
    settings.get(WEBHOOK_URL_SETTING).is_some()
}

/// Where an outbox event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not delivered yet: due at `next_attempt_at` (or held by a worker's lease).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed: dead-lettered, kept for inspection, never sent again by itself.
    Failed,
}

impl OutboxState {
    pub const ALL: [OutboxState; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for OutboxState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(ParseError("unknown outbox state"))
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What enqueuing an event writes. The row starts `pending`, due at `created_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxEvent {
    /// The event id (`X-Aurora-Event-Id`, the body's `id`): the id of the audit line it comes from.
    pub id: uuid::Uuid,
    /// `connection.created`, … (see [`EVENT_TYPES`]).
    pub event_type: String,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    /// The exact JSON body, signed and sent as is on every attempt. Never holds a secret.
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub id: uuid::Uuid,
    pub event_type: String,
    pub user_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub payload: String,
    pub state: OutboxState,
    /// How many times a worker claimed the event (one claim, one delivery attempt).
    pub attempts: i32,
    /// A pending event is not claimed before this instant (a retry's back-off).
    pub next_attempt_at: DateTime<Utc>,
    /// The worker delivering the event right now, if any.
    pub lease_owner: Option<String>,
    /// With an owner: when the lease lapses (then another worker may take the event over).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed: a short status line (`HTTP 503 Service Unavailable`, `timed
    /// out`), never the receiver's body.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How the lease holder ends one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx: `delivered`, the lease dropped.
    Delivered { at: DateTime<Utc> },
    /// A failure with attempts left: still `pending`, claimable again from `not_before`.
    Retry {
        not_before: DateTime<Utc>,
        error: String,
    },
    /// The last attempt failed: `failed` (dead-lettered), kept for inspection.
    Failed { error: String },
}

#[cfg(test)]
mod tests;
