//! Batched audit writes for the hot path: credential issues are queued and written in one multi-row
//! insert every few milliseconds, instead of one insert per request. Readers flush first (`flush`),
//! so a replica always reads its own writes; a crash loses at most one batch window.
//!
//! Within one window, identical events (same user, connection, provider, action, actor and detail)
//! become one line that counts them: `detail.count` is how many there were (absent: one) and
//! `detail.lastAt` when the last one happened (`createdAt` is the first). A service that fetches one
//! connection's credentials thousands of times a second thus writes about twenty lines a second,
//! and every issue is still accounted for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::{mpsc, oneshot};

use crate::ids::{ConnectionId, CredentialMode, ProviderId, UserId};
use crate::store::{AuditEvent, ConnectionRecord, Store};

/// How long the writer gathers events before writing them.
const WINDOW: Duration = Duration::from_millis(50);
/// The most lines one insert carries (after identical events were counted together).
const MAX_BATCH: usize = 500;
/// Queued events beyond this are written directly by the caller (back-pressure, nothing dropped).
const QUEUE: usize = 50_000;

/// Distinct connections and modes the tally holds before the writer is woken early.
const MAX_TALLY: usize = 10_000;

enum Msg {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
    /// The credential-issue tally has something: write it at the end of the window.
    Tally,
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
    store: Arc<dyn Store>,
    tally: Arc<Tally>,
}

impl AuditBuffer {
    /// Start the writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tally = Arc::new(Tally::default());
        tokio::spawn(writer(store.clone(), rx, tally.clone()));
        Self { tx, store, tally }
    }

    /// Count one issue of `conn`'s credentials of `mode` to an internal caller: written as a
    /// `credentials_issued` line (`actor` internal, `detail.mode`, and `detail.count` / `detail.lastAt`
    /// when there were several) at the end of the window.
    pub fn push_issue(&self, conn: &ConnectionRecord, mode: CredentialMode) {
        let now = Utc::now();
        let wake = {
            let mut tally = self.tally.lock();
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
                    first || tally.len().is_multiple_of(MAX_TALLY)
                }
            }
        };
        if wake {
            // Full channel: the writer is busy and takes the tally with its next write anyway.
            let _ = self.tx.try_send(Msg::Tally);
        }
    }

    /// Queue an event; when the queue is full (or the writer is gone) write it now.
    pub async fn push(&self, event: AuditEvent) {
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Msg::Event(e)))
            | Err(mpsc::error::TrySendError::Closed(Msg::Event(e))) => {
                if let Err(err) = self.store.append_audit(e).await {
                    tracing::error!(error = %err, "could not write the audit trail");
                }
            }
            Err(_) => {}
        }
    }

    /// Wait until everything queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The lines of one window: identical events counted together, in order of their first occurrence.
#[derive(Default)]
struct Batch {
    lines: Vec<(AuditEvent, u64, DateTime<Utc>)>,
    index: HashMap<(crate::ids::UserId, Option<crate::ids::ConnectionId>, String), usize>,
}

impl Batch {
    fn add(&mut self, e: AuditEvent) {
        // Provider, action, actor and detail in one string: the fields an identical event repeats.
        let what = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            e.provider.as_ref().map(|p| p.as_str()).unwrap_or(""),
            e.action,
            e.actor,
            e.detail
        );
        let key = (e.user_id.clone(), e.connection_id, what);
        match self.index.get(&key) {
            Some(&i) => {
                let line = &mut self.lines[i];
                line.1 += 1;
                line.2 = line.2.max(e.created_at);
            }
            None => {
                self.index.insert(key, self.lines.len());
                let at = e.created_at;
                self.lines.push((e, 1, at));
            }
        }
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    /// Add the tally's issues as lines of their own (already counted).
    fn add_tally(&mut self, tally: &Tally) {
        let issues: Vec<((ConnectionId, CredentialMode), Issue)> = tally.lock().drain().collect();
        for ((conn, mode), i) in issues {
            self.lines.push((
                AuditEvent {
                    id: i.id,
                    user_id: i.user,
                    connection_id: Some(conn),
                    provider: Some(i.provider),
                    action: "credentials_issued".to_owned(),
                    actor: crate::platform::Actor::Internal.as_str().to_owned(),
                    detail: serde_json::json!({ "mode": mode }),
                    created_at: i.first,
                },
                i.count,
                i.last,
            ));
        }
    }

    fn take(&mut self) -> (Vec<AuditEvent>, u64) {
        self.index.clear();
        let mut total = 0;
        let events = std::mem::take(&mut self.lines)
            .into_iter()
            .map(|(mut e, n, last)| {
                total += n;
                if n > 1 {
                    if let serde_json::Value::Object(map) = &mut e.detail {
                        map.insert("count".into(), n.into());
                        map.insert(
                            "lastAt".into(),
                            last.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                                .into(),
                        );
                    } else {
                        e.detail = serde_json::json!({
                            "value": e.detail,
                            "count": n,
                            "lastAt": last.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        });
                    }
                }
                e
            })
            .collect();
        (events, total)
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, tally: Arc<Tally>) {
    let mut batch = Batch::default();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut flush_now = false;
        match first {
            Msg::Event(e) => batch.add(e),
            Msg::Tally => {}
            Msg::Flush(w) => {
                waiters.push(w);
                flush_now = true;
            }
        }
        if !flush_now {
            let deadline = tokio::time::Instant::now() + WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Event(e))) => batch.add(e),
                    Ok(Some(Msg::Tally)) => {}
                    Ok(Some(Msg::Flush(w))) => {
                        waiters.push(w);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // Everything already queued belongs to this write (a flush waits for what came before it).
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Event(e)) => batch.add(e),
                Ok(Msg::Tally) => {}
                Ok(Msg::Flush(w)) => waiters.push(w),
                Err(_) => break,
            }
        }
        batch.add_tally(&tally);
        if batch.len() > 0 {
            let (events, total) = batch.take();
            if let Err(e) = store.append_audit_batch(events).await {
                tracing::error!(error = %e, events = total, "could not write a batch of the audit trail");
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
    use crate::ids::{ConnectionId, ProviderId, UserId};

    fn issue(user: &str, conn: ConnectionId, mode: &str, ms: i64) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: UserId::parse(user).unwrap(),
            connection_id: Some(conn),
            provider: Some(ProviderId::parse("aws").unwrap()),
            action: "credentials_issued".into(),
            actor: "internal".into(),
            detail: serde_json::json!({"mode": mode}),
            created_at: DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap(),
        }
    }

    #[test]
    fn identical_events_of_a_window_become_one_counted_line() {
        let (a, b) = (ConnectionId::new(), ConnectionId::new());
        let mut batch = Batch::default();
        for ms in 0..5 {
            batch.add(issue("alice", a, "full", ms));
        }
        batch.add(issue("alice", a, "read-only", 7));
        batch.add(issue("alice", b, "full", 8));
        batch.add(issue("bob", a, "full", 9));
        batch.add(issue("alice", a, "full", 12));
        assert_eq!(batch.len(), 4);
        let (lines, total) = batch.take();
        assert_eq!(total, 9);
        assert_eq!(lines.len(), 4);
        // In order of first occurrence; the first keeps its own time and counts the others.
        assert_eq!(lines[0].detail["mode"], "full");
        assert_eq!(lines[0].detail["count"], 6);
        assert_eq!(
            lines[0].created_at,
            DateTime::from_timestamp_millis(1_800_000_000_000).unwrap()
        );
        let last: DateTime<Utc> = lines[0].detail["lastAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            last,
            DateTime::from_timestamp_millis(1_800_000_000_012).unwrap()
        );
        // A single event is written as it came, with no count.
        for l in &lines[1..] {
            assert!(l.detail.get("count").is_none(), "{}", l.detail);
        }
        assert_eq!(lines[1].detail["mode"], "read-only");
        assert_eq!(lines[2].connection_id, Some(b));
        assert_eq!(lines[3].user_id.as_str(), "bob");
        assert_eq!(batch.len(), 0, "taken");
    }
}
