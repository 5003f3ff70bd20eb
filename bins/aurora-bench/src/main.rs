//! `aurora-bench`: measures the gateway's hot paths (issue 7) against real PostgreSQL, Redis and OpenBao
//! and against the embedded default, with in-process stub providers. Run through `cargo xtask bench`.

mod gateway;
mod load;
mod stub;
mod sweep;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

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

struct Env {
    vars: Vec<(String, String)>,
    vault: Option<(String, String)>,
    _bao: Option<aurora_testkit::OpenBao>,
    dir: tempfile::TempDir,
}

impl Env {
    /// The gateway's `AURORA_DATA_DIR` (the embedded database lives there).
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

async fn backend_env(backend: &str, stub_url: &str) -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let mut vars: Vec<(String, String)> = vec![
        ("AURORA_DATA_DIR".into(), dir.path().display().to_string()),
        ("AURORA_INTERNAL_SECRET".into(), SECRET.into()),
        ("AWS_ENDPOINT_URL_STS".into(), format!("{stub_url}/sts")),
        ("AWS_ACCESS_KEY_ID".into(), "AKIABENCHGATEWAY0000".into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "bench-gateway-secret".into(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AURORA_AWS_EXTERNAL_ID_CHECK".into(), "false".into()),
        ("AURORA_SCALEWAY_API_URL".into(), format!("{stub_url}/scw")),
        ("AURORA_RATE_LIMIT_CONNECT_PER_MIN".into(), "0".into()),
        ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN".into(), "0".into()),
    ];
    let mut vault = None;
    let mut bao = None;
    if backend == "servers" {
        let pg = aurora_testkit::postgres_schema_url().await?;
        let b = aurora_testkit::OpenBao::start()?;
        vars.push(("AURORA_DATABASE_URL".into(), pg.url.clone()));
        vars.push(("AURORA_REDIS_URL".into(), aurora_testkit::redis_url()));
        vars.push((
            "AURORA_REDIS_PREFIX".into(),
            aurora_testkit::unique_prefix("bench"),
        ));
        vars.push(("AURORA_VAULT_ADDR".into(), b.addr.clone()));
        vars.push(("AURORA_VAULT_TOKEN".into(), b.token.clone()));
        vault = Some((b.addr.clone(), b.token.clone()));
        bao = Some(b);
    }
    Ok(Env {
        vars,
        vault,
        _bao: bao,
        dir,
    })
}

async fn json_call(http: &reqwest::Client, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let _ = http;
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// Connect the benchmark's AWS account; returns the connection id.
async fn connect_aws(http: &reqwest::Client, base: &str, user: &str) -> anyhow::Result<String> {
    let setup = json_call(
        http,
        http.get(format!("{base}/aws/setup"))
            .header("X-User-ID", user)
            .header("X-Internal-Secret", SECRET),
    )
    .await?;
    let ext = setup["externalId"].as_str().context("externalId")?;
    let auth = json_call(
        http,
        http.post(format!("{base}/aws/auth"))
            .header("X-User-ID", user)
            .header("X-Internal-Secret", SECRET)
            .json(&json!({"roleArn": format!("arn:aws:iam::{}:role/bench", stub::ACCOUNT), "externalId": ext})),
    )
    .await?;
    Ok(auth["connectionId"]
        .as_str()
        .context("connectionId")?
        .to_owned())
}

/// Connect `n` Scaleway organizations for one user; returns their connection ids.
async fn connect_scaleway(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"accessKey": format!("SCW{:017}", i + 1), "secretKey": uuid::Uuid::new_v4().to_string()});
            let v = json_call(
                http,
                http.post(format!("{base}/scaleway_api/scaleway/connect"))
                    .header("X-User-ID", user)
                    .header("X-Internal-Secret", SECRET)
                    .json(&body),
            )
            .await?;
            Ok(v["connectionId"].as_str().context("connectionId")?.to_owned())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ids.into_iter().collect()
}

fn creds_target(gw: &Gateway, user: &str, id: &str) -> Target {
    Target::new(
        gw.addr,
        format!("/api/connections/{id}/credentials?mode=full"),
    )
    .header("X-User-ID", user)
    .header("X-Internal-Secret", SECRET)
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

fn print_table(report: &Value) {
    println!(
        "\nAurora Connectors benchmark ({} cores, {})",
        report["machine"]["cores"], report["machine"]["memory"]
    );
    println!(
        "release binary: {:.1} MiB",
        report["binaryMiB"].as_f64().unwrap_or(0.0)
    );
    for b in report["backends"].as_array().into_iter().flatten() {
        println!(
            "\n[{}] ready {:.0} ms, RSS idle {:.1} MiB, after warm load {:.1} MiB",
            b["backend"].as_str().unwrap_or("?"),
            b["readyMs"].as_f64().unwrap_or(0.0),
            b["rssIdleMiB"].as_f64().unwrap_or(0.0),
            b["rssAfterWarmLoadMiB"].as_f64().unwrap_or(0.0)
        );
        println!(
            "{:>7} | {:>22} | {:>22} | {:>16} | {:>6} {:>6} {:>6}",
            "clients",
            "healthz rps p50/p99 µs",
            "creds rps p50/p99 µs",
            "openbao rps",
            "c/h",
            "p99×",
            "c/bao"
        );
        for r in b["warm"].as_array().into_iter().flatten() {
            let f = |k: &str, f: &str| r[k]["median"][f].as_f64().unwrap_or(0.0);
            println!(
                "{:>7} | {:>8.0} {:>6.0}/{:<6.0} | {:>8.0} {:>6.0}/{:<6.0} | {:>16.0} | {:>6.2} {:>6.2} {:>6}",
                r["clients"],
                f("healthz", "rps"), f("healthz", "p50_us"), f("healthz", "p99_us"),
                f("credentials", "rps"), f("credentials", "p50_us"), f("credentials", "p99_us"),
                f("openbao", "rps"),
                r["credentialsOverHealthzRps"].as_f64().unwrap_or(0.0),
                r["credentialsOverHealthzP99"].as_f64().unwrap_or(0.0),
                r["credentialsOverOpenbaoRps"].as_f64().map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
            );
        }
        if b.get("cold").is_none() {
            continue; // --warm-only
        }
        let c = &b["cold"]["result"];
        println!(
            "cold cache: {} connections each read once, 16 clients: {:.0} rps ({:.0}–{:.0}), p50 {} µs, p99 {} µs",
            b["cold"]["connections"],
            c["median"]["rps"].as_f64().unwrap_or(0.0),
            c["min_rps"].as_f64().unwrap_or(0.0),
            c["max_rps"].as_f64().unwrap_or(0.0),
            c["median"]["p50_us"],
            c["median"]["p99_us"]
        );
        let s = &b["refreshStorm"];
        println!(
            "refresh storm: 1000 concurrent requests, provider calls per run {}, slowest {:.1} ms (median run), errors {}",
            s["providerCallsEachRun"], s["result"]["max_us"].as_f64().unwrap_or(0.0) / 1000.0, s["result"]["errors"]
        );
        let sw = &b["sweep"];
        if !sw.is_null() {
            println!(
                "status sweep: {} connections, stub 50 ms, concurrency {}: {:.1} s ({:.1}–{:.1}; ideal {:.1} s, {:.2}×), {} provider calls, {} distinct, at most {} at once",
                sw["connections"], sw["concurrency"],
                sw["wallSeconds"].as_f64().unwrap_or(0.0),
                sw["minWallSeconds"].as_f64().unwrap_or(0.0),
                sw["maxWallSeconds"].as_f64().unwrap_or(0.0),
                sw["idealSeconds"].as_f64().unwrap_or(0.0),
                sw["overIdeal"].as_f64().unwrap_or(0.0),
                sw["providerCalls"], sw["distinctConnections"], sw["maxConcurrentCalls"]
            );
        }
        let l = &b["listing"]["result"]["median"];
        println!(
            "listing {} connections: {:.0} rps, p50 {:.1} ms, p99 {:.1} ms",
            b["listing"]["connections"],
            l["rps"].as_f64().unwrap_or(0.0),
            l["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
            l["p99_us"].as_f64().unwrap_or(0.0) / 1000.0
        );
    }
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    json!({"cores": cores, "memory": mem})
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
