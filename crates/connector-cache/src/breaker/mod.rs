//! The circuit breaker of the Redis cache: after a run of timeouts or connection errors, Redis calls
//! answer `Unavailable` at once for a back-off period instead of each waiting for its timeout.
//!
//! - **Closed**: calls go through. Timeouts and connection errors in a row are counted; any answer
//!   from Redis (an error reply included) resets the count. [`BreakerConfig::failures`] of them in a
//!   row open the breaker.
//! - **Open** for [`BreakerConfig::open_for`]: every call is skipped (answered at once, nothing sent).
//! - **Half-open** when the period is over: the next call is the one probe, the others are still
//!   skipped. An answer closes the breaker; a failure opens it again for twice the last period, at
//!   most [`BreakerConfig::open_max`]. A probe that is dropped before it ends lets the next call
//!   probe instead. (The Redis cache does not make its caller wait for the probe: it sends a `PING`
//!   in the background and answers the caller at once, see [`crate::RedisCache`].)
//!
//! Calls admitted while closed that end after the breaker opened do not change it. The state machine
//! takes the time as an argument ([`Breaker::admit_at`], [`Breaker::finish_at`]), so its tests run
//! on a made-up clock.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use connector_core::settings::AtLeast;
use connector_core::{Metrics, Settings};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::watch;

/// Consecutive timeouts or connection errors that open the breaker (`0`: it never opens).
pub const FAILURES_SETTING: &str = "AURORA_REDIS_BREAKER_FAILURES";
/// The first open period, in milliseconds.
pub const OPEN_MS_SETTING: &str = "AURORA_REDIS_BREAKER_OPEN_MS";
/// The longest open period, in milliseconds (each failed probe doubles the period up to this).
pub const OPEN_MAX_MS_SETTING: &str = "AURORA_REDIS_BREAKER_OPEN_MAX_MS";

/// When the breaker opens and for how long (`AURORA_REDIS_BREAKER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Timeouts or connection errors in a row that open the breaker; `0` = it never opens.
    pub failures: u32,
    /// The first open period.
    #[serde(rename = "open_ms", deserialize_with = "AtLeast::<1>::millis")]
    pub open_for: Duration,
    /// The longest open period: each failed probe doubles the period, up to this.
    #[serde(rename = "open_max_ms", deserialize_with = "AtLeast::<0>::millis")]
    pub open_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            open_for: Duration::from_secs(5),
            open_max: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// Read [`FAILURES_SETTING`], [`OPEN_MS_SETTING`] and [`OPEN_MAX_MS_SETTING`] (defaults: 3,
    /// 5000, 30000).
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let c: Self = settings.extract("AURORA_REDIS_BREAKER_")?;
        if c.open_max < c.open_for {
            return Err(format!(
                "{OPEN_MAX_MS_SETTING} must be at least {OPEN_MS_SETTING}"
            ));
        }
        Ok(c)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `failures`: timeouts or connection errors in a row so far.
    Closed { failures: u32 },
    /// Calls are skipped until `until`; `period` is how long this open period is.
    Open { until: Instant, period: Duration },
    /// The open period is over and one probe is under way.
    Probing { period: Duration },
}

/// What the breaker lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Call,
    /// Half-open: go ahead; this call decides whether the breaker closes.
    Probe,
    /// Open: do not call Redis.
    Skip,
}

/// How an admitted call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Redis answered (an error reply counts: the server is there).
    Answered,
    /// A timeout or a connection error.
    Failed,
}

/// A change of state that the caller reports (log, metrics, subscriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Closed → open, for this long.
    Opened(Duration),
    /// A probe failed: open again, for this long.
    Reopened(Duration),
    /// A probe was answered.
    Closed,
}

/// The breaker of one Redis client (shared by its clones).
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    /// Counts the times the breaker opened; subscriptions watch it and end when it moves.
    trips: watch::Sender<u64>,
    metrics: OnceLock<Arc<Metrics>>,
}

/// Leave to make one admitted call; hand it back with [`Permit::finish`]. A probe permit dropped
/// unfinished (the caller was cancelled) lets the next call probe.
#[must_use]
pub struct Permit {
    breaker: Arc<Breaker>,
    admission: Admission,
    finished: bool,
}

impl Permit {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.breaker.finish(self.admission, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished && self.admission == Admission::Probe {
            self.breaker.abandon_probe_at(Instant::now());
        }
    }
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            trips: watch::Sender::new(0),
            metrics: OnceLock::new(),
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Report to these metrics from now on (the gauge is set to the current state at once).
    /// Only the first call counts.
    pub fn report_to(&self, metrics: Arc<Metrics>) {
        let open = self.is_open();
        let m = self.metrics.get_or_init(|| metrics);
        m.cache_breaker_open.set(i64::from(open));
    }

    /// Whether calls are being skipped or probed (open or half-open).
    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock(), State::Closed { .. })
    }

    /// A receiver that sees a change each time the breaker opens.
    pub fn trips(&self) -> watch::Receiver<u64> {
        self.trips.subscribe()
    }

    /// Ask to make one call now: a permit, or `None` when the call must be skipped.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        match self.admit_at(Instant::now()) {
            Admission::Skip => {
                if let Some(m) = self.metrics.get() {
                    m.cache_breaker_skipped.inc();
                }
                None
            }
            admission => {
                if admission == Admission::Probe {
                    tracing::debug!("redis circuit breaker half-open: probing");
                    if let Some(m) = self.metrics.get() {
                        m.cache_breaker_probes.inc();
                    }
                }
                Some(Permit {
                    breaker: Arc::clone(self),
                    admission,
                    finished: false,
                })
            }
        }
    }

    fn finish(&self, admission: Admission, outcome: Outcome) {
        if let Some(change) = self.finish_at(admission, outcome, Instant::now()) {
            self.report(change);
        }
    }

    /// The state machine's admission at `now`.
    pub fn admit_at(&self, now: Instant) -> Admission {
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until, period } if now >= until => {
                *state = State::Probing { period };
                Admission::Probe
            }
            State::Open { .. } | State::Probing { .. } => Admission::Skip,
        }
    }

    /// The state machine's step when a call admitted as `admission` ended with `outcome` at `now`.
    pub fn finish_at(
        &self,
        admission: Admission,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Change> {
        let mut state = self.state.lock();
        match (*state, admission, outcome) {
            (State::Closed { .. }, Admission::Call, Outcome::Answered) => {
                *state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, Admission::Call, Outcome::Failed) => {
                let failures = failures.saturating_add(1);
                if self.config.failures > 0 && failures >= self.config.failures {
                    let period = self.config.open_for;
                    *state = State::Open {
                        until: now + period,
                        period,
                    };
                    Some(Change::Opened(period))
                } else {
                    *state = State::Closed { failures };
                    None
                }
            }
            (State::Probing { .. }, Admission::Probe, Outcome::Answered) => {
                *state = State::Closed { failures: 0 };
                Some(Change::Closed)
            }
            (State::Probing { period }, Admission::Probe, Outcome::Failed) => {
                let period = period.saturating_mul(2).min(self.config.open_max);
                *state = State::Open {
                    until: now + period,
                    period,
                };
                Some(Change::Reopened(period))
            }
            // A call admitted before the breaker opened, ending late: the open period stands.
            _ => None,
        }
    }

    /// The probe under way at `now` was dropped unfinished: the next call probes.
    pub fn abandon_probe_at(&self, now: Instant) {
        let mut state = self.state.lock();
        if let State::Probing { period } = *state {
            *state = State::Open { until: now, period };
        }
    }

    fn report(&self, change: Change) {
        let metrics = self.metrics.get();
        match change {
            Change::Opened(period) => {
                tracing::warn!(
                    failures = self.config.failures,
                    open_ms = millis(period),
                    "redis circuit breaker open: Redis calls answer unavailable at once until a \
                     probe gets an answer"
                );
            }
            Change::Reopened(period) => {
                tracing::info!(
                    open_ms = millis(period),
                    "redis still not answering; circuit breaker open again"
                );
            }
            Change::Closed => {
                tracing::info!("redis answers again; circuit breaker closed");
            }
        }
        // Read back rather than taken from `change`, so reports that cross leave the current state.
        if let Some(m) = metrics {
            m.cache_breaker_open.set(i64::from(self.is_open()));
        }
        if !matches!(change, Change::Closed) {
            self.trips.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests;
