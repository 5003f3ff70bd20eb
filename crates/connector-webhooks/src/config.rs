//! Webhook settings (`AURORA_WEBHOOK_*`): the receiver, the signing secret, retries and the worker.
//!
//! `AURORA_WEBHOOK_URL` and `AURORA_WEBHOOK_SECRET` go together: both or neither. The URL may carry
//! a token of the receiver, so neither value is ever logged or printed (`Debug` shows the host only).

use std::fmt;
use std::time::Duration;

use connector_core::outbox::WEBHOOK_URL_SETTING;
use connector_core::settings::Range;
use connector_core::Settings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const WEBHOOK_SECRET_SETTING: &str = "AURORA_WEBHOOK_SECRET";
/// The shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// The webhook configuration, validated.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: url::Url,
    /// The HMAC-SHA256 key.
    pub secret: SecretString,
    /// Attempts per event before it is dead-lettered (`failed`).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubles with each further failure.
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// One attempt's timeout (connect and answer).
    pub timeout: Duration,
    /// How often an idle worker looks for due events.
    pub poll: Duration,
    /// Events one worker delivers at once.
    pub concurrency: usize,
    /// How long delivered events are kept; `None` keeps them.
    pub retention: Option<Duration>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("host", &self.url.host_str())
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("concurrency", &self.concurrency)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The numbers of `AURORA_WEBHOOK_*`, with their ranges and defaults.
#[derive(Deserialize)]
#[serde(default)]
struct Tuning {
    #[serde(deserialize_with = "Range::<1, 100>::int")]
    max_attempts: u32,
    #[serde(deserialize_with = "Range::<1, 86_400_000>::millis")]
    backoff_base_ms: Duration,
    #[serde(deserialize_with = "Range::<1, 604_800_000>::millis")]
    backoff_max_ms: Duration,
    #[serde(deserialize_with = "Range::<1, 300>::secs")]
    timeout_secs: Duration,
    #[serde(deserialize_with = "Range::<10, 600_000>::millis")]
    poll_ms: Duration,
    #[serde(deserialize_with = "Range::<1, 256>::int")]
    concurrency: usize,
    #[serde(deserialize_with = "Range::<0, 36_500>::days")]
    retention_days: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            backoff_base_ms: Duration::from_secs(60),
            backoff_max_ms: Duration::from_secs(6 * 3600),
            timeout_secs: Duration::from_secs(10),
            poll_ms: Duration::from_secs(1),
            concurrency: 8,
            retention_days: Duration::from_secs(7 * 86_400),
        }
    }
}

impl WebhookConfig {
    /// `Ok(None)` when webhooks are off (neither value set); `Err` with a message naming the
    /// setting when the configuration is incomplete or malformed (the gateway refuses to start).
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, String> {
        let (url, secret) = match (
            settings.get(WEBHOOK_URL_SETTING),
            settings.get(WEBHOOK_SECRET_SETTING),
        ) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(format!(
                    "{WEBHOOK_URL_SETTING} is set but {WEBHOOK_SECRET_SETTING} is not: webhooks are \
                     always signed. Set {WEBHOOK_SECRET_SETTING} (at least {MIN_SECRET_LEN} \
                     characters, e.g. `openssl rand -hex 32`), or unset {WEBHOOK_URL_SETTING}"
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{WEBHOOK_SECRET_SETTING} is set but {WEBHOOK_URL_SETTING} is not: set both or neither"
                ))
            }
            (Some(u), Some(s)) => (u, s),
        };
        // The URL is not echoed: it may hold a token of the receiver.
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("{WEBHOOK_URL_SETTING} is not an http(s) URL"))?;
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(format!(
                "{WEBHOOK_SECRET_SETTING} is shorter than {MIN_SECRET_LEN} characters"
            ));
        }
        let t: Tuning = settings.extract("AURORA_WEBHOOK_")?;
        Ok(Some(Self {
            url,
            secret: SecretString::from(secret.to_owned()),
            max_attempts: t.max_attempts,
            backoff_base: t.backoff_base_ms,
            backoff_max: t.backoff_max_ms.max(t.backoff_base_ms),
            timeout: t.timeout_secs,
            poll: t.poll_ms,
            concurrency: t.concurrency,
            retention: (!t.retention_days.is_zero()).then_some(t.retention_days),
        }))
    }

    /// How long a claim holds an event: longer than one attempt can take, so a live worker never
    /// loses it; a worker that died mid-attempt gives it up after this.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }

    pub(crate) fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-secret";

    #[test]
    fn off_when_neither_is_set() {
        assert!(WebhookConfig::from_settings(&Settings::new())
            .unwrap()
            .is_none());
    }

    #[test]
    fn url_without_secret_refuses_with_a_clear_error() {
        let s = Settings::new().with("AURORA_WEBHOOK_URL", "https://hooks.example/x?token=tok-42");
        let e = WebhookConfig::from_settings(&s).unwrap_err();
        assert!(e.contains("AURORA_WEBHOOK_SECRET is not"), "{e}");
        assert!(!e.contains("tok-42"), "{e}");
        let s = Settings::new().with("AURORA_WEBHOOK_SECRET", SECRET);
        let e = WebhookConfig::from_settings(&s).unwrap_err();
        assert!(e.contains("AURORA_WEBHOOK_URL is not"), "{e}");
    }

    #[test]
    fn malformed_values_refuse() {
        let base = Settings::new().with("AURORA_WEBHOOK_SECRET", SECRET);
        for url in ["ftp://x.example/", "not a url", "https://"] {
            let s = base.clone().with("AURORA_WEBHOOK_URL", url);
            assert!(WebhookConfig::from_settings(&s).is_err(), "{url}");
        }
        let s = Settings::new()
            .with("AURORA_WEBHOOK_URL", "https://hooks.example/")
            .with("AURORA_WEBHOOK_SECRET", "short");
        assert!(WebhookConfig::from_settings(&s)
            .unwrap_err()
            .contains("shorter"));
        let s = base
            .clone()
            .with("AURORA_WEBHOOK_URL", "https://hooks.example/")
            .with("AURORA_WEBHOOK_MAX_ATTEMPTS", "0");
        assert!(WebhookConfig::from_settings(&s)
            .unwrap_err()
            .contains("AURORA_WEBHOOK_MAX_ATTEMPTS"));
    }

    #[test]
    fn defaults_and_debug_hides_url_and_secret() {
        let s = Settings::new()
            .with(
                "AURORA_WEBHOOK_URL",
                "https://hooks.example/in?token=tok-42",
            )
            .with("AURORA_WEBHOOK_SECRET", SECRET);
        let c = WebhookConfig::from_settings(&s).unwrap().unwrap();
        assert_eq!(c.max_attempts, 12);
        assert_eq!(c.backoff_base, Duration::from_secs(60));
        assert_eq!(c.backoff_max, Duration::from_secs(6 * 3600));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(c.lease() > c.timeout);
        assert_eq!(c.retention, Some(Duration::from_secs(7 * 86_400)));
        let d = format!("{c:?}");
        assert!(d.contains("hooks.example"), "{d}");
        assert!(!d.contains("tok-42") && !d.contains(SECRET), "{d}");
    }
}
