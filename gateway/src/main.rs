//! Boxoffice gateway: the stateless HTTP front of the on-sale. See `startup.rs` for what it
//! builds and `router.rs` for what it serves.
//!
//! The command line has only `--help` and `--version`, parsed before the configuration is read
//! so they work without any `BOXOFFICE_*` variable. A failure to start is one `error:` line with
//! its cause chain (exit 1), never a backtrace.

use std::process::ExitCode;

use boxoffice_domain::{shutdown, telemetry, Config};
use boxoffice_gateway::startup::Application;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Boxoffice gateway: the stateless HTTP front of the on-sale (queue, seats, holds, payments).
///
/// It takes no arguments. Configuration is read from `BOXOFFICE_*` environment variables, each
/// with a default fit for the local stack; they are listed in domain/src/config.rs (addresses,
/// Postgres and Redis URLs, secrets, TTLs). `source .stack/env` sets them for the local stack.
#[derive(Debug, Parser)]
#[command(name = "boxoffice-gateway", version)]
struct Cli {}

fn main() -> ExitCode {
    // Exits 0 after --help or --version, 2 with clap's usage on any argument.
    Cli::parse();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` is the cause chain on one line; `{:?}` would add a backtrace whenever
            // RUST_BACKTRACE is set, which tells an operator nothing.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    let mut runtime = match config.gateway_threads.map(|n| n.get() as usize) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads);
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(async {
        let app = Application::build(config).await?;
        app.run(shutdown::signal()).await
    })
}

#[cfg(test)]
mod tests {
    use clap::{error::ErrorKind, CommandFactory};

    use super::*;

    #[test]
    fn the_command_line_is_help_and_version_only() {
        Cli::command().debug_assert();
        let parse = |arg: &str| Cli::try_parse_from(["boxoffice-gateway", arg]);
        assert_eq!(parse("--help").unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(
            parse("--version").unwrap_err().kind(),
            ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse("--bogus").unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert!(Cli::try_parse_from(["boxoffice-gateway"]).is_ok());
    }
}
