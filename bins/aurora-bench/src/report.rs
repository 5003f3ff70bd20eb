//! The benchmark report: the table printed to the terminal and the machine it ran on.

use super::*;

pub(super) fn print_table(report: &Value) {
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

pub(super) fn machine() -> Value {
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
