//! The delivery worker: every replica runs one. It claims due outbox events under a lease (so two
//! replicas never deliver one event at the same time), POSTs each, signed, and records the outcome:
//! 2xx → `delivered`; anything else → another attempt after an exponential, jittered back-off, or
//! `failed` after the last attempt. Events stay in the outbox until then, across restarts.
//!
//! Delivery is at least once: a worker that dies after the receiver answered but before the outcome
//! is written leaves the event to be sent again when its lease lapses. Receivers deduplicate on the
//! event id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use connector_core::outbox::{DeliveryOutcome, OutboxRecord};
use connector_core::Platform;
use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use crate::config::WebhookConfig;
use crate::signature::{
    sign, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

/// How often a worker prunes delivered events past the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The wait before attempt `attempt + 1` after `attempt` failed (1-based): `base · 2^(attempt-1)`,
/// capped at `max`, then "equal jitter" (a uniform pick in its upper half), so replicas retrying
/// together spread out without the wait collapsing to zero.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    let full = base.saturating_mul(1u32 << exp).min(max);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// One attempt's result: delivered, or why not (a short status line) and the receiver's
/// `Retry-After`, if any.
#[derive(Debug)]
enum Attempt {
    Delivered,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Sends events to the configured receiver.
pub struct Deliverer {
    cfg: Arc<WebhookConfig>,
    http: reqwest::Client,
    worker_id: String,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("cfg", &self.cfg)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    pub fn new(cfg: Arc<WebhookConfig>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .timeout(cfg.timeout)
            // A redirect is a failed attempt: the signed body goes to the configured URL only.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "aurora-connectors-webhooks/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            cfg,
            http,
            worker_id: format!("webhooks-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// This worker's lease owner name.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// POST one event, signed with a fresh timestamp. Never reads the receiver's body.
    async fn attempt(&self, event: &OutboxRecord) -> Attempt {
        let ts = Utc::now().timestamp();
        let signature = sign(self.cfg.secret_bytes(), ts, event.payload.as_bytes());
        let res = self
            .http
            .post(self.cfg.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(EVENT_ID_HEADER, event.id.to_string())
            .header(EVENT_TYPE_HEADER, event.event_type.as_str())
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(event.payload.clone())
            .send()
            .await;
        match res {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered,
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Attempt::Failed {
                    error: format!("HTTP {}", resp.status()),
                    retry_after,
                }
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("timed out after {} s", self.cfg.timeout.as_secs())
                } else if e.is_connect() {
                    "could not connect to the receiver".to_owned()
                } else {
                    // Without the URL: it may carry a token of the receiver.
                    format!("request failed: {}", e.without_url())
                };
                Attempt::Failed {
                    error,
                    retry_after: None,
                }
            }
        }
    }

    /// What to record after an attempt. `event.attempts` already counts this attempt.
    fn outcome(&self, event: &OutboxRecord, attempt: Attempt) -> DeliveryOutcome {
        match attempt {
            Attempt::Delivered => DeliveryOutcome::Delivered { at: Utc::now() },
            Attempt::Failed { error, .. }
                if event.attempts.max(0) as u32 >= self.cfg.max_attempts =>
            {
                DeliveryOutcome::Failed {
                    error: format!("{error} (attempt {}, giving up)", event.attempts),
                }
            }
            Attempt::Failed { error, retry_after } => {
                let wait = backoff(
                    event.attempts.max(1) as u32,
                    self.cfg.backoff_base,
                    self.cfg.backoff_max,
                )
                .max(retry_after.unwrap_or_default().min(self.cfg.backoff_max));
                DeliveryOutcome::Retry {
                    not_before: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    error,
                }
            }
        }
    }

    /// Deliver one claimed event and record the outcome under this worker's lease.
    pub async fn deliver(&self, platform: &Platform, event: OutboxRecord) {
        let started = Instant::now();
        let attempt = self.attempt(&event).await;
        let outcome = self.outcome(&event, attempt);
        match &outcome {
            DeliveryOutcome::Delivered { .. } => tracing::info!(
                event = %event.id,
                event_type = %event.event_type,
                attempt = event.attempts,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "webhook delivered"
            ),
            DeliveryOutcome::Retry { not_before, error } => tracing::warn!(
                event = %event.id,
                event_type = %event.event_type,
                attempt = event.attempts,
                error = %error,
                retry_at = %not_before,
                "webhook delivery failed; will retry"
            ),
            DeliveryOutcome::Failed { error } => tracing::error!(
                event = %event.id,
                event_type = %event.event_type,
                attempt = event.attempts,
                error = %error,
                "webhook delivery failed for the last time; the event is kept as failed"
            ),
        }
        match platform
            .store()
            .finish_webhook_attempt(event.id, &self.worker_id, outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                event = %event.id,
                "the webhook's lease was lost before its outcome was recorded"
            ),
            // The lease lapses and the event is attempted again: at least once.
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "could not record a webhook attempt")
            }
        }
    }
}

/// The worker loop of one replica: claim up to `concurrency` due events, deliver them together,
/// record each; sleep `poll` when nothing is due. Aborting the future (shutdown) drops in-flight
/// attempts: their leases lapse and another worker (or this one, restarted) sends them again.
pub async fn run(platform: Platform, cfg: Arc<WebhookConfig>) {
    let deliverer = match Deliverer::new(cfg.clone()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e.without_url(), "cannot build the webhook HTTP client; no delivery worker");
            return;
        }
    };
    tracing::info!(worker = %deliverer.worker_id, "webhook delivery worker started");
    let lease =
        chrono::Duration::from_std(cfg.lease()).unwrap_or_else(|_| chrono::Duration::seconds(60));
    let mut last_prune: Option<Instant> = None;
    loop {
        let now = Utc::now();
        match platform
            .store()
            .claim_webhooks(
                &deliverer.worker_id,
                now,
                now + lease,
                cfg.concurrency as i64,
            )
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                let full = batch.len() >= cfg.concurrency;
                futures::future::join_all(
                    batch.into_iter().map(|e| deliverer.deliver(&platform, e)),
                )
                .await;
                if full {
                    // More may be due: claim again at once.
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the webhook worker could not claim events"),
        }
        if let Some(retention) = cfg.retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(Instant::now());
                let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
                match platform.store().prune_webhooks(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "pruned delivered webhook events"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prune delivered webhook events")
                    }
                }
            }
        }
        tokio::time::sleep(cfg.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_in_the_upper_half() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(6 * 3600);
        for attempt in 1..=20u32 {
            let full = base.saturating_mul(1 << (attempt - 1).min(31)).min(max);
            for _ in 0..20 {
                let d = backoff(attempt, base, max);
                assert!(d <= full && d >= full / 2, "{attempt}: {d:?} vs {full:?}");
            }
        }
        assert!(backoff(1000, base, max) <= max);
        // The default schedule: 12 attempts span roughly half a day to a day.
        let total: Duration = (1..12u32)
            .map(|a| base.saturating_mul(1 << (a - 1)).min(max))
            .sum();
        assert!(total > Duration::from_secs(18 * 3600) && total < Duration::from_secs(24 * 3600));
    }
}
