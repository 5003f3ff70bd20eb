//! A gateway binary of a third party: Aurora's providers plus the Acme provider, without a fork.
use acme_provider as _; // links the Acme plugin (it registers itself)
use connectors_all as _; // links Aurora's providers (its Cargo features choose which)

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AURORA_LOG")
        .unwrap_or_else(|_| "info,vaultrs=off,rustify=off".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    aurora_gateway::run(aurora_gateway::GatewayConfig::load()?).await
}
