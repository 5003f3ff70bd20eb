//! The scheduler: live status checks of `active` and `degraded` connections, and refresh of
//! credentials used lately ahead of their expiry, both claimed from the store under a row lease and
//! run with a bounded number of provider calls at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_core::broker::REFRESH_MARGIN;
use connector_core::store::{CheckClaim, RefreshClaim};
use connector_core::{Actor, ConnectionStatus, Platform, StoreError};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::LifecycleConfig;
use crate::Connectors;

mod work;

/// What one sweep of status checks did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Checks that ran (the sum of the four outcomes below).
    pub checked: usize,
    /// … and found the connection working.
    pub active: usize,
    /// … and met a passing failure (timeout, 5xx, throttling): retried after a back-off.
    pub degraded: usize,
    /// … and met a refusal: the connection leaves the schedule until the user reconnects.
    pub needs_reconnect: usize,
    /// … and could not run (secret store or database unavailable, timed out): retried after a
    /// back-off, the status unchanged.
    pub errors: usize,
    /// Claimed but not checked (no connector for the provider any more).
    pub skipped: usize,
    /// Checks whose lease was gone when they ended (taken over, or cleared by a reconnect).
    pub lost_leases: usize,
}

/// What one sweep of refreshes ahead of use did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    /// Credentials fetched through the broker (a provider call, or another replica's fresh result).
    pub refreshed: usize,
    /// Refreshes that failed: retried after the back-off base.
    pub failed: usize,
    /// Claimed but not refreshed (the connection is not usable, or has no connector).
    pub skipped: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckOutcome {
    Active,
    Degraded,
    NeedsReconnect,
    Error,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshOutcome {
    Refreshed,
    Failed,
    Skipped,
}

/// `d` scaled by a random factor in [0.9, 1.1].
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// When credentials expiring at `expires_at` should be refreshed ahead of use: one second after they
/// enter the broker's refresh margin (the broker hands out cached credentials until then). `None`
/// for credentials that do not expire, or that are already inside the margin (the broker does not
/// cache those, so there is nothing to do ahead).
pub fn refresh_due_at(
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    expires_at
        .map(|e| e - chrono(REFRESH_MARGIN) + chrono::Duration::seconds(1))
        .filter(|r| *r > now)
}

struct Inner {
    platform: Platform,
    connectors: Connectors,
    cfg: LifecycleConfig,
    worker: String,
    /// Provider calls at once, shared by checks and refreshes.
    permits: Arc<Semaphore>,
}

/// Status checks and refreshes ahead of use for one replica. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler(Arc<Inner>);

impl Scheduler {
    pub fn new(platform: Platform, connectors: Connectors, cfg: LifecycleConfig) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        Self(Arc::new(Inner {
            platform,
            connectors,
            cfg,
            worker: format!("lifecycle-{}", uuid::Uuid::new_v4().simple()),
            permits,
        }))
    }

    /// The name this scheduler's leases carry.
    pub fn worker(&self) -> &str {
        &self.0.worker
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.0.cfg
    }

    /// Give every new (or reconnected) `active`/`degraded` connection its first check, one interval
    /// from now (jittered); returns how many.
    pub async fn schedule_new(&self) -> Result<u64, StoreError> {
        let at = Utc::now() + chrono(jitter(self.0.cfg.check_interval));
        self.0
            .platform
            .store()
            .schedule_unscheduled_checks(at)
            .await
    }

    /// Check every connection due now, oldest due first, with at most `concurrency` provider calls
    /// at once; returns once none is left that was due when the sweep started and every claimed
    /// check has ended. A checked connection is next due an interval (or a back-off) later, so one
    /// sweep checks each due connection once.
    pub async fn sweep_checks(&self) -> SweepReport {
        let due_before = Utc::now();
        let inner = &self.0;
        let outcomes = self
            .drain(
                |limit| {
                    let now = Utc::now();
                    inner.platform.store().claim_due_checks(
                        &inner.worker,
                        due_before,
                        now,
                        now + chrono(inner.cfg.lease),
                        limit,
                    )
                },
                |claim: CheckClaim| {
                    let inner = self.0.clone();
                    async move { inner.check(claim).await }
                },
            )
            .await;
        let mut r = SweepReport::default();
        for o in outcomes {
            match o {
                Ok((outcome, held)) => {
                    match outcome {
                        CheckOutcome::Active => r.active += 1,
                        CheckOutcome::Degraded => r.degraded += 1,
                        CheckOutcome::NeedsReconnect => r.needs_reconnect += 1,
                        CheckOutcome::Error => r.errors += 1,
                        CheckOutcome::Skipped => r.skipped += 1,
                    }
                    if !held {
                        r.lost_leases += 1;
                    }
                }
                Err(()) => r.errors += 1,
            }
        }
        r.checked = r.active + r.degraded + r.needs_reconnect + r.errors;
        r
    }

    /// Refresh every credential due for a refresh ahead of use now (see [`refresh_due_at`]) that
    /// was handed out within `refresh_used_within`.
    pub async fn sweep_refreshes(&self) -> RefreshReport {
        let inner = &self.0;
        let outcomes = self
            .drain(
                |limit| {
                    let now = Utc::now();
                    inner.platform.store().claim_due_refreshes(
                        &inner.worker,
                        now,
                        now - chrono(inner.cfg.refresh_used_within),
                        now + chrono(inner.cfg.lease),
                        limit,
                    )
                },
                |claim: RefreshClaim| {
                    let inner = self.0.clone();
                    async move { inner.refresh(claim).await }
                },
            )
            .await;
        let mut r = RefreshReport::default();
        for o in outcomes {
            match o {
                Ok(RefreshOutcome::Refreshed) => r.refreshed += 1,
                Ok(RefreshOutcome::Failed) | Err(()) => r.failed += 1,
                Ok(RefreshOutcome::Skipped) => r.skipped += 1,
            }
        }
        r
    }

    /// The status-check loop of a replica: schedule new connections, sweep, wait a poll, again.
    pub async fn run_checks(self) {
        tokio::time::sleep(jitter(self.0.cfg.poll)).await;
        loop {
            if let Err(e) = self.schedule_new().await {
                tracing::warn!(error = %e, "could not schedule new connections' checks");
            }
            let started = std::time::Instant::now();
            let r = self.sweep_checks().await;
            if r.checked + r.skipped > 0 {
                tracing::info!(
                    checked = r.checked,
                    active = r.active,
                    degraded = r.degraded,
                    needs_reconnect = r.needs_reconnect,
                    errors = r.errors,
                    skipped = r.skipped,
                    lost_leases = r.lost_leases,
                    took_ms = started.elapsed().as_millis() as u64,
                    "status checks swept"
                );
            }
            tokio::time::sleep(jitter(self.0.cfg.poll)).await;
        }
    }

    /// The refresh loop of a replica: sweep, wait a poll, again.
    pub async fn run_refreshes(self) {
        tokio::time::sleep(jitter(self.0.cfg.poll)).await;
        loop {
            let r = self.sweep_refreshes().await;
            if r.refreshed + r.failed + r.skipped > 0 {
                tracing::info!(
                    refreshed = r.refreshed,
                    failed = r.failed,
                    skipped = r.skipped,
                    "credentials refreshed ahead of use"
                );
            }
            tokio::time::sleep(jitter(self.0.cfg.poll)).await;
        }
    }

    /// Claim (at most as many as there are free slots) and work until nothing more is due, with at
    /// most `concurrency` claims in hand and as many provider calls at once. A claim never waits
    /// long in hand, so its lease does not run out before its work starts. Claims are made once a
    /// quarter of the slots are free, not on every completion, to spare the database round trips.
    async fn drain<T, R, C, CF, W, WF>(&self, mut claim: C, work: W) -> Vec<Result<R, ()>>
    where
        C: FnMut(i64) -> CF,
        CF: Future<Output = Result<Vec<T>, StoreError>>,
        W: Fn(T) -> WF,
        WF: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        // Provider calls are bounded by the permits (taken by the work itself, around the call);
        // twice as many items are in hand, so that the store and secret-store work before and after
        // each call overlaps with other items' calls instead of leaving a permit idle.
        let bound = self.0.cfg.concurrency.max(1) * 2;
        let batch = (bound / 4).max(1);
        let mut set: JoinSet<R> = JoinSet::new();
        let mut out = Vec::new();
        let mut exhausted = false;
        let collect = |r: Result<R, tokio::task::JoinError>, out: &mut Vec<Result<R, ()>>| {
            out.push(r.map_err(|e| {
                tracing::error!(error = %e, "a lifecycle task failed");
            }));
        };
        loop {
            while let Some(r) = set.try_join_next() {
                collect(r, &mut out);
            }
            if !exhausted && (set.is_empty() || bound - set.len() >= batch) {
                let free = bound - set.len();
                match claim(free as i64).await {
                    Ok(items) => {
                        // A short claim (rows another replica took meanwhile) is no proof that
                        // nothing is left: only an empty one ends the sweep.
                        exhausted = items.is_empty();
                        for item in items {
                            set.spawn(work(item));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim lifecycle work");
                        exhausted = true;
                    }
                }
            }
            match set.join_next().await {
                Some(r) => collect(r, &mut out),
                None if exhausted => break,
                None => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
