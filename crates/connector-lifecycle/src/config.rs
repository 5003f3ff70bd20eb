//! The lifecycle settings (`AURORA_CHECK_*`, `AURORA_REFRESH_*`, `AURORA_EXPIRY_WARNING_DAYS`,
//! `AURORA_AUDIT_RETENTION_DAYS`, …), with their defaults.

use std::time::Duration;

use connector_core::settings::AtLeast;
use connector_core::Settings;

/// A lifecycle setting has a malformed or out-of-range value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

const DAY: u64 = 24 * 60 * 60;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

connector_core::settings_struct! {
    /// What the background jobs do and how often: `AURORA_` followed by each field's variable.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LifecycleConfig {
        /// `AURORA_LIFECYCLE_ENABLED` (true): start the jobs in this replica at all.
        pub enabled: bool = true, "lifecycle_enabled";
        /// `AURORA_CHECK_INTERVAL_SECS` (900): between two checks of a healthy connection, ±10 %.
        pub check_interval: Duration = secs(900), "check_interval_secs", "AtLeast::<1>::secs";
        /// `AURORA_CHECK_CONCURRENCY` (32): provider calls (checks and refreshes) at once, per replica.
        pub concurrency: usize = 32, "check_concurrency", "AtLeast::<1>::int";
        /// `AURORA_CHECK_POLL_SECS` (30): how often a replica looks for due checks and refreshes, ±10 %.
        pub poll: Duration = secs(30), "check_poll_secs", "AtLeast::<1>::secs";
        /// `AURORA_CHECK_LEASE_SECS` (300): how long a claimed check or refresh is reserved for its
        /// replica; a replica that dies leaves it to another after this. A check is cut at half of it.
        pub lease: Duration = secs(300), "check_lease_secs", "AtLeast::<2>::secs";
        /// `AURORA_CHECK_BACKOFF_SECS` (60): the retry after the first passing failure, doubled after
        /// each further one…
        pub backoff_base: Duration = secs(60), "check_backoff_secs", "AtLeast::<1>::secs";
        /// `AURORA_CHECK_BACKOFF_MAX_SECS` (3600): …up to this.
        pub backoff_max: Duration = secs(3600), "check_backoff_max_secs", "AtLeast::<1>::secs";
        /// `AURORA_REFRESH_USED_WITHIN_SECS` (3600): credentials handed out within this span are
        /// refreshed ahead of use; older ones are left to expire.
        pub refresh_used_within: Duration = secs(3600), "refresh_used_within_secs", "AtLeast::<1>::secs";
        /// `AURORA_EXPIRY_WARNING_DAYS` (14): warn this long before a long-lived secret ends; 0: never.
        pub expiry_warning: Duration = secs(14 * DAY), "expiry_warning_days", "AtLeast::<0>::days";
        /// `AURORA_AUDIT_RETENTION_DAYS` (90): audit lines (and finished setup tasks) older than this
        /// are deleted; 0: kept forever.
        pub audit_retention: Duration = secs(90 * DAY), "audit_retention_days", "AtLeast::<0>::days";
        /// `AURORA_HOUSEKEEPING_INTERVAL_SECS` (3600): how often expiry warnings and retention run, ±10 %.
        pub housekeeping_interval: Duration = secs(3600), "housekeeping_interval_secs", "AtLeast::<1>::secs";
        /// `AURORA_RECONCILE_INTERVAL_SECS` (600): one reconciler sweep per this, across replicas.
        pub reconcile_interval: Duration = secs(600), "reconcile_interval_secs", "AtLeast::<1>::secs";
        /// `AURORA_RECONCILE_GRACE_SECS` (600): a secret without a row is deleted only once it is this
        /// old (a connect writes its secret, then its row).
        pub reconcile_grace: Duration = secs(600), "reconcile_grace_secs", "AtLeast::<0>::secs";
    }
}

impl LifecycleConfig {
    /// Every setting, or the first bad one.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let (cfg, mut errors) = Self::read(settings);
        match errors.is_empty() {
            true => Ok(cfg),
            false => Err(errors.swap_remove(0)),
        }
    }

    /// Every setting, with the default in place of each bad one, and the errors.
    pub fn read(settings: &Settings) -> (Self, Vec<ConfigError>) {
        let (mut cfg, errors) = settings.extract_lenient::<Self>("AURORA_");
        cfg.backoff_max = cfg.backoff_max.max(cfg.backoff_base);
        (cfg, errors.into_iter().map(ConfigError).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            LifecycleConfig::from_settings(&Settings::new()).unwrap(),
            LifecycleConfig::default()
        );
        let s = Settings::new()
            .with("AURORA_CHECK_INTERVAL_SECS", "60")
            .with("AURORA_CHECK_CONCURRENCY", "4")
            .with("AURORA_EXPIRY_WARNING_DAYS", "3")
            .with("AURORA_AUDIT_RETENTION_DAYS", "0")
            .with("AURORA_LIFECYCLE_ENABLED", "false");
        let c = LifecycleConfig::from_settings(&s).unwrap();
        assert_eq!(c.check_interval, Duration::from_secs(60));
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.expiry_warning, Duration::from_secs(3 * DAY));
        assert_eq!(c.audit_retention, Duration::ZERO);
        assert!(!c.enabled);
    }

    #[test]
    fn a_bad_value_names_its_key_and_keeps_the_default() {
        let s = Settings::new()
            .with("AURORA_CHECK_CONCURRENCY", "0")
            .with("AURORA_CHECK_INTERVAL_SECS", "soon");
        let err = LifecycleConfig::from_settings(&s).unwrap_err();
        assert!(err.0.contains("AURORA_CHECK_"), "{err}");
        let (c, errors) = LifecycleConfig::read(&s);
        assert_eq!(errors.len(), 2);
        assert_eq!(c.concurrency, 32);
        assert_eq!(c.check_interval, Duration::from_secs(900));
    }
}
