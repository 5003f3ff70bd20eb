//! `aurora-gateway`: serve (no arguments, or `serve`) or apply the migrations (`migrate`).

use anyhow::Context;
use aurora_gateway::GatewayConfig;
use tracing_subscriber::EnvFilter;

fn init_tracing() {
    let filter = EnvFilter::try_from_env("AURORA_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AURORA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    init_tracing();
    let command = std::env::args().nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command.as_deref() {
        None | Some("serve") => {
            let cfg = GatewayConfig::load()?;
            runtime.block_on(aurora_gateway::run(cfg))
        }
        Some("migrate") => {
            let cfg = GatewayConfig::load()?;
            let applied = runtime.block_on(aurora_gateway::migrate(&cfg))?;
            if applied.is_empty() {
                println!("the database is up to date");
            } else {
                for m in applied {
                    println!("applied {m}");
                }
            }
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!(
                "aurora-gateway [serve|migrate]\n\n  serve    serve HTTP (the default)\n  migrate  apply the database migrations and exit\n\nConfiguration: AURORA_* environment variables (docs/configuration.md)."
            );
            Ok(())
        }
        Some("--version" | "version") => {
            println!("aurora-gateway {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command `{other}`; try `aurora-gateway --help`"),
    }
}
