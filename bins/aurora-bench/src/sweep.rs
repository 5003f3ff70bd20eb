//! Item 4 of the benchmark: one full status sweep of many connections against a provider stub that
//! answers in 50 ms, at the gateway's default check concurrency, beside the ideal
//! (connections × 50 ms ÷ concurrency).
//!
//! 1. A gateway with the lifecycle jobs off connects the connections (Scaleway keys, spread over
//!    users of 100 connections each) through the HTTP API, then stops.
//! 2. The harness opens the same database and makes every connection due now
//!    (`Store::schedule_unscheduled_checks`: the jobs never ran, so none is scheduled yet).
//! 3. A gateway with the lifecycle jobs on (defaults, except a 1 s poll so the sweep starts at once)
//!    sweeps them; the stub records each key lookup. The sweep's wall time runs from the first
//!    check's provider call to the last one's answer.

use connector_core::store::CheckStore;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use connector_store::{DbConfig, SqlStore};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::gateway::Gateway;
use crate::stub::StubState;
use crate::{backend_env, json_call, Args, SECRET};

/// The stub's answer time during the sweep.
const STUB_LATENCY: Duration = Duration::from_millis(50);
/// The gateway's default `AURORA_CHECK_CONCURRENCY`.
const DEFAULT_CONCURRENCY: usize = 32;
const PER_USER: usize = 100;

pub async fn run(
    args: &Args,
    backend: &str,
    stub: &Arc<StubState>,
    stub_url: &str,
) -> anyhow::Result<Value> {
    let n = args.sweep;
    eprintln!("   status sweep: seeding {n} connections");
    let env = backend_env(backend, stub_url).await?;
    stub.latency_ms.store(0, Ordering::SeqCst);

    // 1. Seed with the lifecycle jobs off.
    let mut seed_vars = env.vars.clone();
    seed_vars.push(("AURORA_LIFECYCLE_ENABLED".into(), "false".into()));
    let gw = Gateway::start(&args.gateway, &seed_vars).await?;
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let base = gw.base.clone();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let http = &http;
            let base = &base;
            async move {
                let user = format!("bench-sweep-{}", i / PER_USER);
                // Keys of their own (beyond the cold-cache run's), so each is its own account.
                let body = json!({"accessKey": format!("SCW{:017}", 50_000_000 + i), "secretKey": uuid::Uuid::new_v4().to_string()});
                json_call(
                    http,
                    http.post(format!("{base}/scaleway_api/scaleway/connect"))
                        .header("X-User-ID", user)
                        .header("X-Internal-Secret", SECRET)
                        .json(&body),
                )
                .await
                .map(drop)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.context("seeding the sweep's connections")?;
    }
    let seed_secs = t0.elapsed().as_secs_f64();
    gw.stop();

    // 2. Every connection due now.
    let url = env
        .vars
        .iter()
        .find(|(k, _)| k == "AURORA_DATABASE_URL")
        .map(|(_, u)| u.as_str());
    let db = DbConfig::from_url(url, env.data_dir())?;
    let store = SqlStore::connect(&db).await?;
    let due = store
        .schedule_unscheduled_checks(chrono::Utc::now() - chrono::Duration::seconds(1))
        .await?;
    drop(store);
    if due as usize != n {
        bail!("{due} connections were made due, expected {n}");
    }

    // 3. Sweep with the defaults.
    eprintln!("   status sweep: {n} connections, stub answering in 50 ms");
    stub.latency_ms
        .store(STUB_LATENCY.as_millis() as u64, Ordering::SeqCst);
    stub.record_sweep();
    let mut vars = env.vars.clone();
    vars.push(("AURORA_CHECK_POLL_SECS".into(), "1".into()));
    let gw = Gateway::start(&args.gateway, &vars).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_progress = (0usize, Instant::now());
    loop {
        let seen = stub.sweep.lock().unwrap().keys.len();
        if seen >= n {
            break;
        }
        if seen != last_progress.0 {
            last_progress = (seen, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(30) {
            bail!("the sweep stalled at {seen} of {n} connections");
        }
        if Instant::now() > deadline {
            bail!("the sweep did not finish within 10 minutes ({seen} of {n})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the last answers land, then a short look for checks made twice.
    tokio::time::sleep(STUB_LATENCY * 4).await;
    let (calls, distinct, wall) = {
        let mut log = stub.sweep.lock().unwrap();
        log.recording = false;
        let wall = match (log.first_call, log.last_answer) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        (log.calls, log.keys.len(), wall)
    };
    let max_in_flight = stub.max_in_flight.load(Ordering::SeqCst);
    stub.latency_ms.store(0, Ordering::SeqCst);
    gw.stop();
    let ideal = STUB_LATENCY.as_secs_f64() * n as f64 / DEFAULT_CONCURRENCY as f64;
    let secs = wall.as_secs_f64();
    Ok(json!({
        "connections": n,
        "concurrency": DEFAULT_CONCURRENCY,
        "stubLatencyMs": STUB_LATENCY.as_millis() as u64,
        "wallSeconds": secs,
        "idealSeconds": ideal,
        "overIdeal": secs / ideal,
        "providerCalls": calls,
        "distinctConnections": distinct,
        "maxConcurrentCalls": max_in_flight,
        "seedSeconds": seed_secs,
    }))
}
