//! The webhook body of an audit event: which audit lines become events, and what they carry.

use super::*;

/// The body's `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventData<'a> {
    pub(super) connection_id: Option<ConnectionId>,
    pub(super) provider: Option<&'a str>,
    pub(super) account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) previous_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<String>,
    pub(super) user_id: &'a str,
}

/// The whole body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventBody<'a> {
    pub(super) id: uuid::Uuid,
    #[serde(rename = "type")]
    pub(super) event_type: &'a str,
    pub(super) created_at: String,
    pub(super) data: EventData<'a>,
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn detail_str(detail: &serde_json::Value, key: &str) -> Option<String> {
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
