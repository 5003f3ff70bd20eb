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

/// The body's `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    connection_id: Option<ConnectionId>,
    provider: Option<&'a str>,
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    user_id: &'a str,
}

/// The whole body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    id: uuid::Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: String,
    data: EventData<'a>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn detail_str(detail: &serde_json::Value, key: &str) -> Option<String> {
    detail.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// The webhook event an audited action causes, if any. `conn` is the connection the audit line names
/// (for `status_changed` the record from *before* the change; the new status is in the detail).
///
/// | audit action | event |
/// |---|---|
/// | `connect` | `connection.created` |
/// | `reconnect` whose status differs from `detail.previousStatus` | `connection.status_changed` |
/// | `status_changed`, `setup_completed`, `setup_failed` | `connection.status_changed` |
/// | `disconnect` | `connection.disconnected` |
/// | `expiry_warning` | `connection.expiring` |
///
/// Every other action (`credentials_issued`, `rotate_external_id`, …) causes none. The body holds
/// identifiers, statuses and the status reason, never a secret.
pub fn event_for_audit(
    audit: &AuditEvent,
    conn: Option<&ConnectionRecord>,
) -> Option<NewOutboxEvent> {
    let d = &audit.detail;
    let current = conn.map(|c| c.status.as_str().to_owned());
    use crate::AuditAction as A;
    let (event_type, status, previous_status, reason) = match A::parse_core(&audit.action)? {
        A::Connect => (WebhookEvent::Created, current, None, None),
        A::Reconnect => {
            let previous = detail_str(d, "previousStatus")?;
            if Some(&previous) == current.as_ref() {
                return None;
            }
            (
                WebhookEvent::StatusChanged,
                current,
                Some(previous),
                Some("reconnected".to_owned()),
            )
        }
        A::StatusChanged => (
            WebhookEvent::StatusChanged,
            detail_str(d, "to").or(current),
            detail_str(d, "from"),
            detail_str(d, "reason"),
        ),
        A::SetupCompleted => (
            WebhookEvent::StatusChanged,
            current,
            detail_str(d, "from"),
            Some("setup completed".to_owned()),
        ),
        A::SetupFailed => (
            WebhookEvent::StatusChanged,
            current,
            detail_str(d, "from"),
            detail_str(d, "reason").or_else(|| conn.and_then(|c| c.status_reason.clone())),
        ),
        A::Disconnect => (WebhookEvent::Disconnected, None, None, None),
        A::ExpiryWarning => (
            WebhookEvent::Expiring,
            current,
            None,
            detail_str(d, "reason"),
        ),
        _ => return None,
    };
    let expires_at = if event_type == WebhookEvent::Expiring {
        // The record's value, in the body's format; the detail's for an audit line without one.
        conn.and_then(|c| c.expires_at)
            .map(rfc3339)
            .or_else(|| detail_str(d, "expiresAt"))
    } else {
        None
    };
    let body = EventBody {
        id: audit.id,
        event_type: event_type.as_str(),
        created_at: rfc3339(audit.created_at),
        data: EventData {
            connection_id: conn.map(|c| c.id).or(audit.connection_id),
            provider: conn
                .map(|c| c.provider.as_str())
                .or(audit.provider.as_ref().map(|p| p.as_str())),
            account_id: conn.map(|c| c.account_id.as_str()),
            status,
            previous_status,
            reason,
            expires_at,
            user_id: audit.user_id.as_str(),
        },
    };
    // Serializing this struct cannot fail (plain strings and a UUID).
    let payload = serde_json::to_string(&body).ok()?;
    Some(NewOutboxEvent {
        id: audit.id,
        event_type: event_type.as_str().to_owned(),
        user_id: audit.user_id.clone(),
        connection_id: body.data.connection_id,
        payload,
        created_at: audit.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionStatus, ProviderId};

    fn conn(status: ConnectionStatus) -> ConnectionRecord {
        let t = Utc::now();
        ConnectionRecord {
            id: ConnectionId::new(),
            user_id: UserId::parse("alice").unwrap(),
            provider: ProviderId::parse("scaleway").unwrap(),
            account_id: "org-1".into(),
            display_name: None,
            status,
            status_reason: None,
            read_only: false,
            secret_ref: "users/alice/scaleway/x".into(),
            metadata: serde_json::json!({}),
            created_at: t,
            updated_at: t,
            last_validated_at: None,
            expires_at: None,
        }
    }

    fn audit(c: &ConnectionRecord, action: &str, detail: serde_json::Value) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: c.user_id.clone(),
            connection_id: Some(c.id),
            provider: Some(c.provider.clone()),
            action: action.into(),
            actor: "user".into(),
            detail,
            created_at: Utc::now(),
        }
    }

    fn body(e: &NewOutboxEvent) -> serde_json::Value {
        serde_json::from_str(&e.payload).unwrap()
    }

    #[test]
    fn connect_is_created_with_the_audit_id() {
        let c = conn(ConnectionStatus::Active);
        let a = audit(&c, "connect", serde_json::json!({"accountId": "org-1"}));
        let e = event_for_audit(&a, Some(&c)).unwrap();
        assert_eq!(e.id, a.id);
        assert_eq!(e.event_type, CONNECTION_CREATED);
        let b = body(&e);
        assert_eq!(b["id"], a.id.to_string());
        assert_eq!(b["type"], "connection.created");
        assert_eq!(b["data"]["connectionId"], c.id.to_string());
        assert_eq!(b["data"]["provider"], "scaleway");
        assert_eq!(b["data"]["accountId"], "org-1");
        assert_eq!(b["data"]["status"], "active");
        assert_eq!(b["data"]["userId"], "alice");
        assert!(b["data"].get("previousStatus").is_none());
        assert!(b["createdAt"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn status_changes_and_disconnects() {
        let c = conn(ConnectionStatus::Active);
        let a = audit(
            &c,
            "status_changed",
            serde_json::json!({"from": "active", "to": "needs_reconnect", "reason": "refused"}),
        );
        let b = body(&event_for_audit(&a, Some(&c)).unwrap());
        assert_eq!(b["type"], "connection.status_changed");
        assert_eq!(b["data"]["status"], "needs_reconnect");
        assert_eq!(b["data"]["previousStatus"], "active");
        assert_eq!(b["data"]["reason"], "refused");

        let a = audit(&c, "disconnect", serde_json::json!({}));
        let b = body(&event_for_audit(&a, Some(&c)).unwrap());
        assert_eq!(b["type"], "connection.disconnected");
        assert!(b["data"].get("status").is_none());

        // A reconnect is a status change only when the status changed.
        let a = audit(
            &c,
            "reconnect",
            serde_json::json!({"previousStatus": "active"}),
        );
        assert!(event_for_audit(&a, Some(&c)).is_none());
        let a = audit(
            &c,
            "reconnect",
            serde_json::json!({"previousStatus": "needs_reconnect"}),
        );
        let b = body(&event_for_audit(&a, Some(&c)).unwrap());
        assert_eq!(b["data"]["previousStatus"], "needs_reconnect");
        assert_eq!(b["data"]["status"], "active");
    }

    #[test]
    fn expiry_and_ignored_actions() {
        let mut c = conn(ConnectionStatus::Active);
        c.expires_at = Some(Utc::now());
        let a = audit(&c, "expiry_warning", serde_json::json!({}));
        let b = body(&event_for_audit(&a, Some(&c)).unwrap());
        assert_eq!(b["type"], "connection.expiring");
        assert!(b["data"]["expiresAt"].is_string());
        for action in [
            "credentials_issued",
            "rotate_external_id",
            "force_disconnect",
        ] {
            let a = audit(&c, action, serde_json::json!({}));
            assert!(event_for_audit(&a, Some(&c)).is_none(), "{action}");
        }
    }

    #[test]
    fn state_round_trip() {
        for s in OutboxState::ALL {
            assert_eq!(s.as_str().parse::<OutboxState>().unwrap(), s);
        }
        assert!("sent".parse::<OutboxState>().is_err());
    }
}
