//! Prometheus metrics shared by the gateway and the plugins. Labels never carry a secret or a user id.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub provider_calls: HistogramVec,
    pub cache_lookups: IntCounterVec,
    /// `cache_lookups_total{result="local"}`, resolved once: hits of the in-process tier (the
    /// hottest path, so no label lookup per request).
    pub cache_hits_local: IntCounter,
    pub credential_refreshes: IntCounterVec,
    /// `cache_undecryptable_total`: shared-cache entries that did not decrypt with this process's
    /// cache key (replicas holding different keys, or damaged entries). No labels.
    pub cache_undecryptable: IntCounter,
    /// `reconciler_repairs_total{kind}`: what the reconciler repaired (`orphaned_secret`: a secret
    /// no connection row references, deleted; `plugin`: a plugin's own repairs).
    pub reconciler_repairs: IntCounterVec,
    /// `cache_breaker_open`: 1 while the Redis circuit breaker is open (or probing), 0 while closed.
    pub cache_breaker_open: IntGauge,
    /// `cache_breaker_skipped_total`: Redis calls the open breaker answered at once, unsent.
    pub cache_breaker_skipped: IntCounter,
    /// `cache_breaker_probes_total`: calls let through to Redis to probe it after an open period.
    pub cache_breaker_probes: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("aurora".into()), None).expect("registry");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("metric");
        let provider_calls = HistogramVec::new(
            HistogramOpts::new(
                "provider_call_duration_seconds",
                "Latency of calls to provider APIs by provider, operation and outcome",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["provider", "operation", "outcome"],
        )
        .expect("metric");
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "cache_lookups_total",
                "Credential cache lookups by result (local: the in-process tier; hit, miss, error: \
                 the shared cache; pinned: after an error, a copy this process issued, its secret \
                 version confirmed)",
            ),
            &["result"],
        )
        .expect("metric");
        let credential_refreshes = IntCounterVec::new(
            Opts::new(
                "credential_refreshes_total",
                "Credentials produced through a connector by provider and outcome",
            ),
            &["provider", "outcome"],
        )
        .expect("metric");
        let reconciler_repairs = IntCounterVec::new(
            Opts::new(
                "reconciler_repairs_total",
                "What the reconciler repaired, by kind (orphaned_secret, plugin)",
            ),
            &["kind"],
        )
        .expect("metric");
        let cache_breaker_open = IntGauge::new(
            "cache_breaker_open",
            "1 while the Redis circuit breaker is open or probing (Redis calls answer unavailable at \
             once), 0 while closed",
        )
        .expect("metric");
        let cache_breaker_skipped = IntCounter::new(
            "cache_breaker_skipped_total",
            "Redis calls answered unavailable at once by the open circuit breaker, without being sent",
        )
        .expect("metric");
        let cache_breaker_probes = IntCounter::new(
            "cache_breaker_probes_total",
            "Calls let through to Redis to probe it at the end of an open period of the circuit breaker",
        )
        .expect("metric");
        let cache_undecryptable = IntCounter::new(
            "cache_undecryptable_total",
            "Credential cache entries that did not decrypt with this process's cache key (another \
             replica's key, or a damaged entry)",
        )
        .expect("metric");
        for c in [
            Box::new(reconciler_repairs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(provider_calls.clone()),
            Box::new(cache_lookups.clone()),
            Box::new(credential_refreshes.clone()),
            Box::new(cache_undecryptable.clone()),
            Box::new(cache_breaker_open.clone()),
            Box::new(cache_breaker_skipped.clone()),
            Box::new(cache_breaker_probes.clone()),
        ] {
            registry.register(c).expect("register metric");
        }
        let cache_hits_local = cache_lookups.with_label_values(&["local"]);
        Self {
            registry,
            cache_hits_local,
            http_requests,
            http_duration,
            provider_calls,
            cache_lookups,
            credential_refreshes,
            cache_undecryptable,
            reconciler_repairs,
            cache_breaker_open,
            cache_breaker_skipped,
            cache_breaker_probes,
        }
    }

    /// Record one provider API call.
    pub fn provider_call(&self, provider: &str, operation: &str, outcome: &str, took: Duration) {
        self.provider_calls
            .with_label_values(&[provider, operation, outcome])
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_series() {
        let m = Metrics::new();
        m.provider_call("scaleway", "get_api_key", "ok", Duration::from_millis(3));
        m.cache_lookups.with_label_values(&["hit"]).inc();
        m.cache_hits_local.inc();
        let text = m.render();
        assert!(text.contains("aurora_provider_call_duration_seconds_count{operation=\"get_api_key\",outcome=\"ok\",provider=\"scaleway\"} 1"));
        assert!(text.contains("aurora_cache_lookups_total{result=\"hit\"} 1"));
        assert!(text.contains("aurora_cache_lookups_total{result=\"local\"} 1"));
        // Rendered from the start (0), so a dashboard sees a split as soon as it happens.
        assert!(text.contains("aurora_cache_undecryptable_total 0"));
        m.cache_undecryptable.inc();
        assert!(m.render().contains("aurora_cache_undecryptable_total 1"));
        m.cache_breaker_open.set(1);
        m.cache_breaker_skipped.inc();
        let text = m.render();
        assert!(text.contains("aurora_cache_breaker_open 1"));
        assert!(text.contains("aurora_cache_breaker_skipped_total 1"));
        assert!(text.contains("aurora_cache_breaker_probes_total 0"));
    }
}
