//! Unit tests of the circuit breaker: opening, half-open probes, back-off and recovery.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn breaker() -> Arc<Breaker> {
    Arc::new(Breaker::new(BreakerConfig::default()))
}

/// `n` admitted calls that fail at `now`; the last change.
fn fail(b: &Breaker, n: u32, now: Instant) -> Option<Change> {
    let mut last = None;
    for _ in 0..n {
        let a = b.admit_at(now);
        assert_ne!(a, Admission::Skip);
        last = b.finish_at(a, Outcome::Failed, now);
    }
    last
}

#[test]
fn opens_after_consecutive_failures_only() {
    let b = breaker();
    let t0 = Instant::now();
    assert_eq!(fail(&b, 2, t0), None);
    // An answer resets the run.
    let a = b.admit_at(t0);
    assert_eq!(b.finish_at(a, Outcome::Answered, t0), None);
    assert_eq!(fail(&b, 2, t0), None);
    assert!(!b.is_open());
    assert_eq!(fail(&b, 1, t0), Some(Change::Opened(5 * SEC)));
    assert!(b.is_open());
}

#[test]
fn open_skips_until_the_period_ends_then_one_probe() {
    let b = breaker();
    let t0 = Instant::now();
    fail(&b, 3, t0);
    assert_eq!(b.admit_at(t0), Admission::Skip);
    assert_eq!(b.admit_at(t0 + 4 * SEC), Admission::Skip);
    assert_eq!(b.admit_at(t0 + 5 * SEC), Admission::Probe);
    // Only one probe at a time; the others are still skipped.
    assert_eq!(b.admit_at(t0 + 5 * SEC), Admission::Skip);
    assert_eq!(b.admit_at(t0 + 60 * SEC), Admission::Skip);
    assert!(b.is_open());
    assert_eq!(
        b.finish_at(Admission::Probe, Outcome::Answered, t0 + 6 * SEC),
        Some(Change::Closed)
    );
    assert!(!b.is_open());
    assert_eq!(b.admit_at(t0 + 6 * SEC), Admission::Call);
    // Closed again from zero: it takes the full run to open it again.
    assert_eq!(fail(&b, 2, t0 + 7 * SEC), None);
}

#[test]
fn failed_probes_double_the_period_up_to_the_max() {
    let b = breaker();
    let mut now = Instant::now();
    fail(&b, 3, now);
    let mut periods = Vec::new();
    let mut period = 5 * SEC;
    for _ in 0..5 {
        now += period;
        assert_eq!(b.admit_at(now - Duration::from_millis(1)), Admission::Skip);
        assert_eq!(b.admit_at(now), Admission::Probe);
        match b.finish_at(Admission::Probe, Outcome::Failed, now) {
            Some(Change::Reopened(p)) => period = p,
            other => panic!("{other:?}"),
        }
        periods.push(period.as_secs());
    }
    assert_eq!(periods, [10, 20, 30, 30, 30]);
    // A success closes it and the next opening starts from the first period again.
    now += period;
    assert_eq!(b.admit_at(now), Admission::Probe);
    b.finish_at(Admission::Probe, Outcome::Answered, now);
    assert_eq!(fail(&b, 3, now), Some(Change::Opened(5 * SEC)));
}

#[test]
fn late_calls_do_not_move_an_open_breaker() {
    let b = breaker();
    let t0 = Instant::now();
    // Five calls admitted while closed; three fail and open it; the two others end later.
    let admitted: Vec<_> = (0..5).map(|_| b.admit_at(t0)).collect();
    for a in &admitted[..3] {
        b.finish_at(*a, Outcome::Failed, t0 + SEC);
    }
    assert!(b.is_open());
    assert_eq!(b.finish_at(admitted[3], Outcome::Answered, t0 + SEC), None);
    assert_eq!(b.finish_at(admitted[4], Outcome::Failed, t0 + SEC), None);
    // Still open until the period (from the opening) ends.
    assert_eq!(b.admit_at(t0 + 5 * SEC), Admission::Skip);
    assert_eq!(b.admit_at(t0 + 6 * SEC), Admission::Probe);
}

#[test]
fn an_abandoned_probe_lets_the_next_call_probe() {
    let b = breaker();
    let t0 = Instant::now();
    fail(&b, 3, t0);
    assert_eq!(b.admit_at(t0 + 5 * SEC), Admission::Probe);
    b.abandon_probe_at(t0 + 5 * SEC);
    assert_eq!(b.admit_at(t0 + 5 * SEC), Admission::Probe);
    // Through the permit: dropped unfinished.
    b.abandon_probe_at(t0);
    {
        let permit = b.admit().expect("the period is over: a probe");
        assert!(permit.is_probe());
    }
    let permit = b
        .admit()
        .expect("the dropped probe left the place to the next call");
    permit.finish(Outcome::Answered);
    assert!(!b.is_open());
}

#[test]
fn zero_failures_never_opens() {
    let b = Breaker::new(BreakerConfig {
        failures: 0,
        ..BreakerConfig::default()
    });
    assert_eq!(fail(&b, 100, Instant::now()), None);
    assert!(!b.is_open());
}

#[test]
fn metrics_and_trips_follow_the_state() {
    let b = breaker();
    let m = Arc::new(Metrics::new());
    b.report_to(m.clone());
    let mut trips = b.trips();
    for _ in 0..3 {
        b.admit().unwrap().finish(Outcome::Failed);
    }
    assert_eq!(m.cache_breaker_open.get(), 1);
    assert!(
        trips.has_changed().unwrap(),
        "opening is signalled to subscriptions"
    );
    trips.mark_unchanged();
    assert!(b.admit().is_none());
    assert!(b.admit().is_none());
    assert_eq!(m.cache_breaker_skipped.get(), 2);
    assert_eq!(m.cache_breaker_probes.get(), 0);
    // End the open period early (as the clock would) and probe.
    *b.state.lock() = State::Open {
        until: Instant::now(),
        period: 5 * SEC,
    };
    b.admit().unwrap().finish(Outcome::Answered);
    assert_eq!(m.cache_breaker_probes.get(), 1);
    assert_eq!(m.cache_breaker_open.get(), 0);
    assert!(!trips.has_changed().unwrap(), "closing is not a trip");
}

#[test]
fn settings_are_read_and_checked() {
    let d = BreakerConfig::from_settings(&Settings::new()).unwrap();
    assert_eq!(d, BreakerConfig::default());
    let s = Settings::new()
        .with(FAILURES_SETTING, "5")
        .with(OPEN_MS_SETTING, "200")
        .with(OPEN_MAX_MS_SETTING, "1000");
    assert_eq!(
        BreakerConfig::from_settings(&s).unwrap(),
        BreakerConfig {
            failures: 5,
            open_for: Duration::from_millis(200),
            open_max: SEC,
        }
    );
    for (k, v) in [
        (OPEN_MS_SETTING, "0"),
        (OPEN_MAX_MS_SETTING, "10"),
        (FAILURES_SETTING, "many"),
    ] {
        assert!(BreakerConfig::from_settings(&Settings::new().with(k, v)).is_err());
    }
}
