//! `aurora-bench`: measures the gateway's hot paths (issue 7) against real PostgreSQL, Redis and OpenBao
//! and against the embedded default, with in-process stub providers. Run through `cargo xtask bench`.

mod gateway;
mod load;
mod report;
mod setup;
mod stub;
mod sweep;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use self::report::*;
use self::setup::*;
use gateway::Gateway;
use load::{LoadResult, Stop, Target};
use stub::StubState;

const SECRET: &str = "bench-internal-secret";
const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

struct Args {
    gateway: PathBuf,
    out: PathBuf,
    repeats: usize,
    seconds: f64,
    connections: usize,
    /// Connections of the status sweep (item 4); 0 skips it.
    sweep: usize,
    /// Client counts of the warm runs.
    clients: Vec<usize>,
    /// Only the warm runs (for profiling the hot path).
    warm_only: bool,
    backends: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        gateway: PathBuf::from("target/release/aurora-gateway"),
        out: PathBuf::from("target/bench/latest.json"),
        repeats: 3,
        seconds: 3.0,
        connections: 1000,
        sweep: 10_000,
        clients: CONCURRENCY.to_vec(),
        warm_only: false,
        backends: vec!["servers".into(), "embedded".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().context("a value is missing");
        match arg.as_str() {
            "--gateway" => a.gateway = PathBuf::from(val()?),
            "--out" => a.out = PathBuf::from(val()?),
            "--repeats" => a.repeats = val()?.parse()?,
            "--seconds" => a.seconds = val()?.parse()?,
            "--connections" => a.connections = val()?.parse()?,
            "--sweep" => a.sweep = val()?.parse()?,
            "--clients" => {
                a.clients = val()?
                    .split(',')
                    .map(|c| c.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--warm-only" => a.warm_only = true,
            "--backend" => a.backends = vec![val()?],
            "--quick" => {
                a.repeats = 1;
                a.seconds = 1.0;
                a.connections = 200;
                a.sweep = 1000;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// The median run (by throughput) of several, with the spread.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    median: LoadResult,
    min_rps: f64,
    max_rps: f64,
    runs: usize,
}

async fn repeat(n: usize, target: &Target, clients: usize, secs: f64) -> anyhow::Result<Summary> {
    let mut runs = Vec::new();
    for _ in 0..n.max(1) {
        runs.push(load::run(target, clients, Stop::After(Duration::from_secs_f64(secs))).await?);
    }
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    Ok(Summary {
        min_rps: runs[0].rps,
        max_rps: runs[runs.len() - 1].rps,
        median: runs[runs.len() / 2].clone(),
        runs: runs.len(),
    })
}

async fn run_backend(
    args: &Args,
    backend: &str,
    stub: &Arc<StubState>,
    stub_url: &str,
) -> anyhow::Result<Value> {
    eprintln!("== {backend}");
    let env = backend_env(backend, stub_url).await?;
    let gw = Gateway::start(&args.gateway, &env.vars).await?;
    let ready_ms = gw.ready_after.as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle_kib = gw.rss_kib();
    let http = reqwest::Client::new();
    stub.expiry_secs.store(3600, Ordering::SeqCst);
    stub.latency_ms.store(0, Ordering::SeqCst);

    // 1. Warm credentials beside /healthz and a direct OpenBao read.
    let aws_user = "bench-aws";
    let aws_id = connect_aws(&http, &gw.base, aws_user).await?;
    let warm = creds_target(&gw, aws_user, &aws_id);
    load::run(&warm, 1, Stop::Requests(10)).await?;
    let health = Target::new(gw.addr, "/healthz");
    let bao_target = match &env.vault {
        Some((addr, token)) => {
            http.post(format!("{addr}/v1/secret/data/aurora-bench/kv"))
                .header("X-Vault-Token", token)
                .json(&json!({"data": {"v": "x".repeat(64)}}))
                .send()
                .await?
                .error_for_status()?;
            let a: std::net::SocketAddr = addr.trim_start_matches("http://").parse()?;
            Some(Target::new(a, "/v1/secret/data/aurora-bench/kv").header("X-Vault-Token", token))
        }
        None => None,
    };
    let mut warm_rows = Vec::new();
    for &c in &args.clients {
        eprintln!("   warm, {c} clients");
        let h = repeat(args.repeats, &health, c, args.seconds).await?;
        let w = repeat(args.repeats, &warm, c, args.seconds).await?;
        let b = match &bao_target {
            Some(t) => Some(repeat(args.repeats, t, c, args.seconds).await?),
            None => None,
        };
        warm_rows.push(json!({
            "clients": c,
            "healthz": h,
            "credentials": w,
            "openbao": b,
            "credentialsOverHealthzRps": w.median.rps / h.median.rps,
            "credentialsOverHealthzP99": w.median.p99_us as f64 / h.median.p99_us.max(1) as f64,
            "credentialsOverOpenbaoRps": b.as_ref().map(|b| w.median.rps / b.median.rps),
        }));
    }
    let rss_after_load_kib = gw.rss_kib();
    if args.warm_only {
        gw.stop();
        return Ok(json!({
            "backend": backend,
            "readyMs": ready_ms,
            "rssIdleMiB": rss_idle_kib as f64 / 1024.0,
            "rssAfterWarmLoadMiB": rss_after_load_kib as f64 / 1024.0,
            "warm": warm_rows,
        }));
    }

    // 3. Refresh storm: credentials that expire in 301 s are cached for ~1 s; then 1,000 callers at once.
    // Repeated; the run with the median slowest request is shown, and every run's provider calls.
    let mut storms = Vec::new();
    for _ in 0..args.repeats.max(1) {
        stub.expiry_secs.store(301, Ordering::SeqCst);
        connect_aws(&http, &gw.base, aws_user).await?; // reconnect evicts the cache
        load::run(&warm, 1, Stop::Requests(1)).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stub.expiry_secs.store(3600, Ordering::SeqCst);
        let before = stub.assume_role_calls.load(Ordering::SeqCst);
        let run = load::run(&warm, 1000, Stop::Requests(1000)).await?;
        storms.push((run, stub.assume_role_calls.load(Ordering::SeqCst) - before));
    }
    let storm_calls_each: Vec<usize> = storms.iter().map(|(_, c)| *c).collect();
    storms.sort_by_key(|(r, _)| r.max_us);
    let (storm, storm_calls) = storms[storms.len() / 2].clone();

    // 2. Cold cache (every request reads the secret store) and 5. listing, on Scaleway connections.
    let scw_user = "bench-scw";
    let t0 = Instant::now();
    let ids = connect_scaleway(&http, &gw.base, scw_user, args.connections).await?;
    let connect_secs = t0.elapsed().as_secs_f64();
    // Each repeat reads a share of the connections of its own, so every read is cold.
    let shares = args.repeats.max(1);
    let per = ids.len() / shares;
    let mut cold_runs = Vec::new();
    for share in ids.chunks(per.max(1)).take(shares) {
        let paths: Vec<String> = share
            .iter()
            .map(|id| format!("/api/connections/{id}/credentials?mode=full"))
            .collect();
        let target = Target::new(gw.addr, "/")
            .paths(paths)
            .header("X-User-ID", scw_user)
            .header("X-Internal-Secret", SECRET);
        cold_runs.push(load::run(&target, 16, Stop::Requests(share.len())).await?);
    }
    cold_runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let cold = Summary {
        min_rps: cold_runs[0].rps,
        max_rps: cold_runs[cold_runs.len() - 1].rps,
        median: cold_runs[cold_runs.len() / 2].clone(),
        runs: cold_runs.len(),
    };
    let listing_target = Target::new(gw.addr, "/api/connections")
        .header("X-User-ID", scw_user)
        .header("X-Internal-Secret", SECRET);
    let listing = repeat(args.repeats, &listing_target, 16, args.seconds).await?;

    gw.stop();

    // 4. Status sweep, on a data set of its own.
    // Each repeat on a data set of its own; the median run by wall time, with the spread.
    let sweep = if args.sweep > 0 {
        let mut runs = Vec::new();
        for _ in 0..args.repeats.max(1) {
            runs.push(sweep::run(args, backend, stub, stub_url).await?);
        }
        let wall = |v: &Value| v["wallSeconds"].as_f64().unwrap_or(f64::MAX);
        runs.sort_by(|a, b| wall(a).total_cmp(&wall(b)));
        let mut median = runs[runs.len() / 2].clone();
        median["minWallSeconds"] = json!(wall(&runs[0]));
        median["maxWallSeconds"] = json!(wall(&runs[runs.len() - 1]));
        median["runs"] = json!(runs.len());
        Some(median)
    } else {
        None
    };
    Ok(json!({
        "backend": backend,
        "sweep": sweep,
        "readyMs": ready_ms,
        "rssIdleMiB": rss_idle_kib as f64 / 1024.0,
        "rssAfterWarmLoadMiB": rss_after_load_kib as f64 / 1024.0,
        "warm": warm_rows,
        "cold": {"connections": per, "clients": 16, "result": cold},
        "refreshStorm": {"requests": 1000, "providerCalls": storm_calls, "providerCallsEachRun": storm_calls_each, "result": storm},
        "listing": {"connections": ids.len(), "clients": 16, "result": listing, "connectSeconds": connect_secs},
    }))
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !args.gateway.is_file() {
        bail!(
            "{} is not built: run `cargo xtask bench`",
            args.gateway.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let state = Arc::new(StubState::default());
        let stub_url = stub::start(state.clone())?;
        let mut backends = Vec::new();
        for b in &args.backends {
            backends.push(run_backend(&args, b, &state, &stub_url).await?);
        }
        let report = json!({
            "date": chrono::Utc::now().to_rfc3339(),
            "machine": machine(),
            "binaryMiB": std::fs::metadata(&args.gateway).map(|m| m.len() as f64 / 1024.0 / 1024.0).unwrap_or(0.0),
            "repeats": args.repeats,
            "secondsPerRun": args.seconds,
            "backends": backends,
        });
        if let Some(dir) = args.out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
        print_table(&report);
        println!("\nwritten: {}", args.out.display());
        anyhow::Ok(())
    })
}
