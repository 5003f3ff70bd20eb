//! `aurora-gateway`: serve (no arguments, or `serve`) or apply the migrations (`migrate`).

use anyhow::Context;
use aurora_gateway::GatewayConfig;
use tracing_subscriber::EnvFilter;

/// Targets off unless the log filter names them: vaultrs and rustify (under it) log every error
/// answer of Vault/OpenBao at ERROR level, a 404 for a secret that does not exist yet (every first
/// start) and a lost check-and-set race included. The secret store maps each answer to a typed
/// error, which the gateway logs where it matters.
const QUIET_TARGETS: &[&str] = &["vaultrs", "rustify"];

/// `AURORA_LOG`, else `RUST_LOG`, else `info`; plus `<target>=off` for each quiet target the filter
/// does not name.
fn log_filter() -> EnvFilter {
    let (filter, spec) = ["AURORA_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find_map(|spec| EnvFilter::try_new(&spec).ok().map(|f| (f, spec)))
        .unwrap_or_else(|| (EnvFilter::new("info"), String::new()));
    QUIET_TARGETS
        .iter()
        .filter(|t| !spec.contains(*t))
        .filter_map(|t| format!("{t}=off").parse().ok())
        .fold(filter, EnvFilter::add_directive)
}

fn init_tracing() {
    let filter = log_filter();
    let json = std::env::var("AURORA_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colours only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
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
