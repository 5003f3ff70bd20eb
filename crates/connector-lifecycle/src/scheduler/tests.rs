//! Unit tests of the scheduler's timing: jitter and refresh due times.

use super::*;

#[test]
fn jitter_stays_within_ten_percent() {
    for _ in 0..1000 {
        let d = jitter(Duration::from_secs(100));
        assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
    }
}

#[test]
fn refresh_is_due_as_the_credentials_enter_the_margin() {
    let now = Utc::now();
    let margin = chrono(REFRESH_MARGIN);
    let e = now + chrono::Duration::hours(1);
    assert_eq!(
        refresh_due_at(Some(e), now),
        Some(e - margin + chrono::Duration::seconds(1))
    );
    assert_eq!(refresh_due_at(None, now), None);
    assert_eq!(
        refresh_due_at(Some(now + chrono::Duration::minutes(4)), now),
        None
    );
}
