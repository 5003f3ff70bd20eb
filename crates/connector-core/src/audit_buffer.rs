//! Batched audit writes for the hot path: credential issues are queued and written in one multi-row
//! insert every few milliseconds, instead of one insert per request. Readers flush first (`flush`),
//! so a replica always reads its own writes; a crash loses at most one batch window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditEvent, Store};

/// How long the writer gathers events before writing them.
const WINDOW: Duration = Duration::from_millis(50);
/// The most events one insert carries.
const MAX_BATCH: usize = 500;
/// Queued events beyond this are written directly by the caller (back-pressure, nothing dropped).
const QUEUE: usize = 50_000;

enum Msg {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// A handle to the batching writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditBuffer {
    tx: mpsc::Sender<Msg>,
    store: Arc<dyn Store>,
}

impl AuditBuffer {
    /// Start the writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store.clone(), rx));
        Self { tx, store }
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

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut flush_now = false;
        match first {
            Msg::Event(e) => batch.push(e),
            Msg::Flush(w) => {
                waiters.push(w);
                flush_now = true;
            }
        }
        if !flush_now {
            let deadline = tokio::time::Instant::now() + WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Event(e))) => batch.push(e),
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
                Ok(Msg::Event(e)) => batch.push(e),
                Ok(Msg::Flush(w)) => waiters.push(w),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            if let Err(e) = store.append_audit_batch(std::mem::take(&mut batch)).await {
                tracing::error!(error = %e, events = n, "could not write a batch of the audit trail");
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
