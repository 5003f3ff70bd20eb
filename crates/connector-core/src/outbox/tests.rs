//! Unit tests of the webhook events and outbox states.

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
