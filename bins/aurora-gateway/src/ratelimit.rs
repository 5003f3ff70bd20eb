//! Per-user rate limits on the connect routes and on the credentials route: `429 rate_limited` with
//! `Retry-After` once a user has made the configured number of requests of one class in a minute.
//!
//! - **Classes.** `connect`: every route pattern a provider lists in `ProviderInfo::connect_paths`
//!   (connect, login, auth: the routes that take new credentials or start an authorization).
//!   `credentials`: `GET /api/connections/{id}/credentials`. Each class has its own budget per user.
//! - **Counting.** A fixed window of one minute per user and class, started by the user's first
//!   request ([`Cache::incr_window`]: `INCR` + `PEXPIRE` in Redis), so with Redis the limit holds
//!   across every replica sharing it. With the in-process cache it counts in this process. Every
//!   request of the class counts, whatever it answers.
//! - **Redis down.** The limiter fails open to a count in this process (each replica then allows the
//!   limit on its own), and logs that at most once a minute.
//! - **Settings.** `AURORA_RATE_LIMIT_CONNECT_PER_MIN` (default 20) and
//!   `AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN` (default 600); 0 turns a class's limit off.
//!
//! The middleware runs inside the §1 guard, so only identified callers reach it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use connector_cache::MemoryCache;
use connector_core::{ApiError, Cache, Caller, Settings, UserId};

use crate::app::AppState;
use crate::registry::Connectors;

pub const CONNECT_SETTING: &str = "AURORA_RATE_LIMIT_CONNECT_PER_MIN";
pub const CREDENTIALS_SETTING: &str = "AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN";
pub const DEFAULT_CONNECT_PER_MIN: u64 = 20;
pub const DEFAULT_CREDENTIALS_PER_MIN: u64 = 600;
/// The route pattern of §7's credentials route.
pub const CREDENTIALS_ROUTE: &str = "/api/connections/{id}/credentials";

const WINDOW: Duration = Duration::from_secs(60);
/// Bound of the in-process counters (fallback and embedded mode).
const LOCAL_COUNTERS: usize = 100_000;
/// At most one "counting in process" warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The configured budgets (requests per user per minute; 0 = unlimited): `AURORA_RATE_LIMIT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub connect_per_min: u64,
    pub credentials_per_min: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            connect_per_min: DEFAULT_CONNECT_PER_MIN,
            credentials_per_min: DEFAULT_CREDENTIALS_PER_MIN,
        }
    }
}

impl RateLimitConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        settings.extract("AURORA_RATE_LIMIT_")
    }
}

/// What a limited route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Connect,
    Credentials,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Connect => "connect",
            RouteClass::Credentials => "credentials",
        }
    }
}

/// The limiter shared by every HTTP worker (held in `AppState`).
pub struct RateLimiter {
    config: RateLimitConfig,
    connect_routes: HashSet<&'static str>,
    shared: Arc<dyn Cache>,
    local: MemoryCache,
    last_warning: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, connectors: &Connectors, shared: Arc<dyn Cache>) -> Self {
        let connect_routes = connectors
            .values()
            .flat_map(|c| c.info().connect_paths)
            .collect();
        Self {
            config,
            connect_routes,
            shared,
            local: MemoryCache::new(LOCAL_COUNTERS),
            last_warning: Mutex::new(None),
        }
    }

    /// The class and budget of a route pattern; `None` when the route is not limited.
    pub fn class_of(&self, pattern: &str) -> Option<(RouteClass, u64)> {
        let (class, limit) = if pattern == CREDENTIALS_ROUTE {
            (RouteClass::Credentials, self.config.credentials_per_min)
        } else if self.connect_routes.contains(pattern) {
            (RouteClass::Connect, self.config.connect_per_min)
        } else {
            return None;
        };
        (limit > 0).then_some((class, limit))
    }

    /// Count one request of `user` in `class`; `Err(429)` once over `limit`.
    pub async fn hit(&self, class: RouteClass, limit: u64, user: &UserId) -> Result<(), ApiError> {
        let key = format!("rl:{}:{}", class.as_str(), user.as_str());
        let (count, left) = match self.shared.incr_window(&key, WINDOW).await {
            Ok(v) => v,
            Err(e) => {
                self.warn_fallback(&e);
                // The in-process cache cannot fail.
                self.local
                    .incr_window(&key, WINDOW)
                    .await
                    .unwrap_or((0, WINDOW))
            }
        };
        if count <= limit {
            return Ok(());
        }
        let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        tracing::info!(class = class.as_str(), limit, "rate limit reached");
        Err(ApiError::rate_limited(
            format!(
                "too many {} requests: at most {limit} a minute; try again in {} s",
                class.as_str(),
                retry_after.max(1)
            ),
            retry_after,
        ))
    }

    fn warn_fallback(&self, e: &connector_core::CacheError) {
        let now = Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(
                error = %e,
                "rate limits cannot be counted in the shared cache; counting in this process only \
                 (each replica allows the full limit) until it is back"
            );
        }
    }
}

/// The middleware: limits the routes [`RateLimiter::class_of`] names, per caller.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let class = match (&state, crate::app::matched_route(&req)) {
        (Some(state), Some(pattern)) => state.rate_limits.class_of(&pattern),
        _ => None,
    };
    if let (Some(state), Some((class, limit))) = (state, class) {
        // The guard already refused callers without a valid identity.
        if let Ok(caller) = Caller::from_request_parts(req.request()) {
            if let Err(e) = state.rate_limits.hit(class, limit, &caller.user).await {
                let resp = e.error_response();
                return Ok(req.into_response(resp).map_into_right_body());
            }
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let c = RateLimitConfig::from_settings(&Settings::new()).unwrap();
        assert_eq!(
            c,
            RateLimitConfig {
                connect_per_min: 20,
                credentials_per_min: 600
            }
        );
        let c = RateLimitConfig::from_settings(
            &Settings::new()
                .with(CONNECT_SETTING, "0")
                .with(CREDENTIALS_SETTING, "5"),
        )
        .unwrap();
        assert_eq!((c.connect_per_min, c.credentials_per_min), (0, 5));
        let e = RateLimitConfig::from_settings(&Settings::new().with(CONNECT_SETTING, "-1"))
            .unwrap_err();
        assert!(e.contains(CONNECT_SETTING), "{e}");
    }

    #[tokio::test]
    async fn counts_per_user_and_class_and_fails_open_to_process() {
        // A cache without counters behaves like Redis down: counting falls back to this process.
        struct NoCounters;
        #[async_trait::async_trait]
        impl Cache for NoCounters {
            fn backend_name(&self) -> &'static str {
                "none"
            }
            fn is_shared(&self) -> bool {
                true
            }
            async fn ping(&self) -> Result<(), connector_core::CacheError> {
                Ok(())
            }
            async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, connector_core::CacheError> {
                Ok(None)
            }
            async fn set(
                &self,
                _: &str,
                _: &[u8],
                _: Duration,
            ) -> Result<(), connector_core::CacheError> {
                Ok(())
            }
            async fn delete(&self, _: &str) -> Result<(), connector_core::CacheError> {
                Ok(())
            }
            async fn delete_prefix(&self, _: &str) -> Result<u64, connector_core::CacheError> {
                Ok(0)
            }
        }
        let config = RateLimitConfig {
            connect_per_min: 2,
            credentials_per_min: 3,
        };
        let l = RateLimiter::new(config, &Connectors::new(), Arc::new(NoCounters));
        assert_eq!(
            l.class_of(CREDENTIALS_ROUTE),
            Some((RouteClass::Credentials, 3))
        );
        assert_eq!(l.class_of("/api/connections"), None);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        for _ in 0..2 {
            l.hit(RouteClass::Connect, 2, &alice).await.unwrap();
        }
        let e = l.hit(RouteClass::Connect, 2, &alice).await.unwrap_err();
        assert_eq!(e.code, "rate_limited");
        let retry = e.retry_after_secs.unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // Another user, and another class, have their own budgets.
        l.hit(RouteClass::Connect, 2, &bob).await.unwrap();
        l.hit(RouteClass::Credentials, 3, &alice).await.unwrap();
    }
}
