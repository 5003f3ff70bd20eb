//! The Aurora Connectors gateway as a library: configuration, backends, the plugin registry and the
//! actix-web application. `main.rs` is a thin shell over [`run`] and [`migrate`].

pub mod app;
pub mod backends;
pub mod config;
pub mod frontend;
pub mod jobs;
pub mod limits;
pub mod openapi;
pub mod ratelimit;
pub mod registry;
pub mod routes;
pub mod unlinked;
pub mod wire;

use std::net::TcpListener;

use anyhow::Context;

pub use config::GatewayConfig;

/// Serve until SIGINT/SIGTERM (graceful: in-flight requests finish, up to 30 s).
pub async fn run(cfg: GatewayConfig) -> anyhow::Result<()> {
    cfg.check_exposure()?;
    let started = std::time::Instant::now();
    let (platform, _store) = backends::build_platform(&cfg).await?;
    let connectors = registry::build_connectors(&platform)?;
    let providers: Vec<&str> = connectors.keys().map(|p| p.as_str()).collect();
    tracing::info!(?providers, "connectors built");
    let background = jobs::spawn(&platform, &connectors, &cfg);
    let audit = platform.audit_buffer().clone();
    let state = app::state(platform, connectors, &cfg);
    let mut listeners = Vec::new();
    for addr in cfg.bind_addrs()? {
        let l = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        listeners.push(l);
    }
    let budget = limits::apply(cfg.max_connections);
    let server = app::server_with(state, listeners, cfg.workers, Some(budget.max_connections))?;
    tracing::info!(
        bind = %cfg.bind,
        ready_ms = started.elapsed().as_millis() as u64,
        "aurora-gateway listening"
    );
    let served = server.await.context("serving");
    for task in background {
        task.abort();
    }
    audit.flush().await;
    served?;
    tracing::info!("aurora-gateway stopped");
    Ok(())
}

/// Apply the migrations and return their names.
pub async fn migrate(cfg: &GatewayConfig) -> anyhow::Result<Vec<String>> {
    let store = backends::open_store(cfg).await?;
    Ok(store.migrate().await?)
}
