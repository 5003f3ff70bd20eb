//! A closed-loop HTTP/1.1 load generator: N clients, one keep-alive connection each, every client sends
//! its next request when the previous answer is read. Latencies go into an HDR histogram (microseconds).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// What to request: a host, headers, and one path or a list of paths taken in turn.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub paths: Arc<Vec<String>>,
    pub headers: Vec<(String, String)>,
}

impl Target {
    pub fn new(addr: SocketAddr, path: impl Into<String>) -> Self {
        Self {
            addr,
            paths: Arc::new(vec![path.into()]),
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn paths(mut self, paths: Vec<String>) -> Self {
        self.paths = Arc::new(paths);
        self
    }
}

/// One load run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// How long a run lasts: for a time, or until a number of requests has been sent.
#[derive(Clone, Copy)]
pub enum Stop {
    After(Duration),
    Requests(usize),
}

async fn client(
    target: Target,
    stop: Stop,
    started: Instant,
    sent: Arc<AtomicUsize>,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let stream = TcpStream::connect(target.addr)
        .await
        .context("connecting to the target")?;
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    let host = target.addr.to_string();
    loop {
        let n = sent.fetch_add(1, Ordering::Relaxed);
        match stop {
            Stop::After(d) if started.elapsed() >= d => break,
            Stop::Requests(max) if n >= max => break,
            _ => {}
        }
        let path = &target.paths[n % target.paths.len()];
        let mut req = Request::get(path.as_str()).header("host", host.as_str());
        for (k, v) in &target.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).expect("request");
        let t0 = Instant::now();
        sender.ready().await.context("connection closed")?;
        let resp = sender.send_request(req).await.context("request failed")?;
        let ok = resp.status().is_success();
        let _ = resp.into_body().collect().await;
        let us = t0.elapsed().as_micros().max(1) as u64;
        hist.record(us.min(60_000_000)).ok();
        if !ok {
            errors += 1;
        }
    }
    Ok((hist, errors))
}

/// Run `clients` concurrent clients against `target` until `stop`.
pub async fn run(target: &Target, clients: usize, stop: Stop) -> anyhow::Result<LoadResult> {
    let started = Instant::now();
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(target.clone(), stop, started, sent.clone())))
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("client task")??;
        hist.add(&h).ok();
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = hist.len();
    Ok(LoadResult {
        clients,
        requests,
        errors,
        seconds,
        rps: requests as f64 / seconds,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    })
}
