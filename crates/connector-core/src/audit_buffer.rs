//! Batched audit of the credential hot path: each issue of credentials is counted in process, per
//! connection and mode, and the writer turns the counts into audit lines about every 50 ms (one
//! multi-row insert), instead of a line and an insert per request. Readers flush first (`flush`),
//! so a replica always reads its own writes; a crash loses at most one window.
//!
//! One line per connection and mode and window: `detail.mode`, plus `detail.count` (how many issues;
//! absent: one) and `detail.lastAt` (when the last was; `createdAt` is the first) when there were
//! several. A service that fetches one connection's credentials thousands of times a second thus
//! writes about twenty lines a second, and every issue is still accounted for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::ids::{ConnectionId, CredentialMode, ProviderId, UserId};
use crate::store::{AuditEvent, ConnectionRecord, Store};

/// How long the writer gathers issues before writing them.
const WINDOW: Duration = Duration::from_millis(50);
/// The most lines one insert carries.
const MAX_BATCH: usize = 500;
/// Wake-ups and flushes waiting for the writer (a full channel only means the writer is busy).
const QUEUE: usize = 1024;

enum Msg {
    /// The tally went from empty to not empty: write it at the end of the window.
    Tally,
    Flush(oneshot::Sender<()>),
}

/// Credential issues counted in process until the writer takes them: one entry per connection and
/// mode, so a request only bumps a counter (no allocation, no message) once its entry exists.
type Tally = parking_lot::Mutex<HashMap<(ConnectionId, CredentialMode), Issue>>;

struct Issue {
    id: uuid::Uuid,
    user: UserId,
    provider: ProviderId,
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// A handle to the batching writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditBuffer {
    tx: mpsc::Sender<Msg>,
    tally: Arc<Tally>,
}

impl AuditBuffer {
    /// Start the writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tally = Arc::new(Tally::default());
        tokio::spawn(writer(store, rx, tally.clone()));
        Self { tx, tally }
    }

    /// Count one issue of `conn`'s credentials of `mode` to an internal caller: written as a
    /// `credentials_issued` line (`actor` internal) at the end of the window.
    pub fn push_issue(&self, conn: &ConnectionRecord, mode: CredentialMode) {
        if count(&self.tally, conn, mode, Utc::now()) {
            // Full channel: the writer is busy and takes the tally with its next write anyway.
            let _ = self.tx.try_send(Msg::Tally);
        }
    }

    /// Wait until every issue counted before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Count one issue at `now`; `true` when the tally was empty (the writer is to be woken).
fn count(tally: &Tally, conn: &ConnectionRecord, mode: CredentialMode, now: DateTime<Utc>) -> bool {
    let mut tally = tally.lock();
    match tally.get_mut(&(conn.id, mode)) {
        Some(issue) => {
            issue.count += 1;
            issue.last = issue.last.max(now);
            false
        }
        None => {
            let first = tally.is_empty();
            tally.insert(
                (conn.id, mode),
                Issue {
                    id: uuid::Uuid::new_v4(),
                    user: conn.user_id.clone(),
                    provider: conn.provider.clone(),
                    count: 1,
                    first: now,
                    last: now,
                },
            );
            first
        }
    }
}

/// Empty the tally into audit lines, oldest first, and the number of issues they count.
fn take(tally: &Tally) -> (Vec<AuditEvent>, u64) {
    let issues: Vec<((ConnectionId, CredentialMode), Issue)> = tally.lock().drain().collect();
    let mut total = 0;
    let mut lines: Vec<AuditEvent> = issues
        .into_iter()
        .map(|((conn, mode), i)| {
            total += i.count;
            let mut detail = serde_json::json!({ "mode": mode });
            if i.count > 1 {
                detail["count"] = i.count.into();
                detail["lastAt"] = i
                    .last
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .into();
            }
            AuditEvent {
                id: i.id,
                user_id: i.user,
                connection_id: Some(conn),
                provider: Some(i.provider),
                action: crate::AuditAction::CredentialsIssued.as_str().to_owned(),
                actor: crate::platform::Actor::Internal.as_str().to_owned(),
                detail,
                created_at: i.first,
            }
        })
        .collect();
    lines.sort_by_key(|e| e.created_at);
    (lines, total)
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, tally: Arc<Tally>) {
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        match first {
            Msg::Flush(w) => waiters.push(w),
            Msg::Tally => {
                // Gather the window; a flush ends it early.
                let deadline = tokio::time::Instant::now() + WINDOW;
                loop {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(Msg::Tally)) => {}
                        Ok(Some(Msg::Flush(w))) => {
                            waiters.push(w);
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        // Every flush already queued is answered by this write (it waits for what came before it).
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Flush(w) = msg {
                waiters.push(w);
            }
        }
        let (lines, total) = take(&tally);
        for chunk in lines.chunks(MAX_BATCH) {
            if let Err(e) = store.append_audit_batch(chunk.to_vec()).await {
                tracing::error!(error = %e, lines = chunk.len(), issues = total, "could not write a batch of the audit trail");
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnectionStatus;

    fn record(user: &str) -> ConnectionRecord {
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        ConnectionRecord {
            id: ConnectionId::new(),
            user_id: UserId::parse(user).unwrap(),
            provider: ProviderId::parse("aws").unwrap(),
            account_id: "123456789012".into(),
            display_name: None,
            status: ConnectionStatus::Active,
            status_reason: None,
            read_only: false,
            secret_ref: "connections/x".into(),
            metadata: serde_json::json!({}),
            created_at: at,
            updated_at: at,
            last_validated_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn issues_of_a_window_become_one_counted_line_per_connection_and_mode() {
        let t = |ms: i64| DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap();
        let (a, b, c) = (record("alice"), record("alice"), record("bob"));
        let tally = Tally::default();
        let mut wakes = 0;
        for ms in 0..5 {
            wakes += usize::from(count(&tally, &a, CredentialMode::Full, t(ms)));
        }
        wakes += usize::from(count(&tally, &a, CredentialMode::ReadOnly, t(7)));
        wakes += usize::from(count(&tally, &b, CredentialMode::Full, t(8)));
        wakes += usize::from(count(&tally, &c, CredentialMode::Full, t(9)));
        wakes += usize::from(count(&tally, &a, CredentialMode::Full, t(12)));
        assert_eq!(
            wakes, 1,
            "only the first issue of a window wakes the writer"
        );

        let (lines, total) = take(&tally);
        assert_eq!(total, 9);
        assert_eq!(lines.len(), 4);
        // Oldest first; the first keeps its own time and counts the others.
        assert_eq!(lines[0].connection_id, Some(a.id));
        assert_eq!(lines[0].action, "credentials_issued");
        assert_eq!(lines[0].actor, "internal");
        assert_eq!(
            lines[0].detail["mode"],
            serde_json::json!(CredentialMode::Full)
        );
        assert_eq!(lines[0].detail["count"], 6);
        assert_eq!(lines[0].created_at, t(0));
        let last: DateTime<Utc> = lines[0].detail["lastAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(last, t(12));
        // A single issue is written as it came, with no count.
        for l in &lines[1..] {
            assert!(l.detail.get("count").is_none(), "{}", l.detail);
        }
        assert_eq!(
            lines[1].detail["mode"],
            serde_json::json!(CredentialMode::ReadOnly)
        );
        assert_eq!(lines[2].connection_id, Some(b.id));
        assert_eq!(lines[3].user_id.as_str(), "bob");
        assert!(tally.lock().is_empty(), "taken");
        assert!(
            count(&tally, &a, CredentialMode::Full, t(20)),
            "the next window's first issue wakes the writer again"
        );
    }
}
