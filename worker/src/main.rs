//! Boxoffice worker.
//!
//! `boxoffice-worker` (or `boxoffice-worker run`) applies migrations and runs every background
//! loop until SIGTERM. `migrate` only applies migrations. `seed` writes the demo data of the
//! brief's §4. `audit` checks the sales and money invariants in Postgres (non-zero exit on a
//! violation). See `startup.rs` for the loops.
//!
//! The command line is parsed before the configuration is read, so `--help` works without any
//! `BOXOFFICE_*` variable set. A mistake on the command line is clap's one-line error and usage
//! (exit 2); a failure at run time is one `error:` line with its cause chain (exit 1), never a
//! backtrace: the operator needs the cause, and the chain names it.

use std::process::ExitCode;

use boxoffice_domain::{shutdown, telemetry, Config};
use boxoffice_worker::{audit, seed, startup};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Boxoffice background worker: admission, hold expiry, stream sink, reconciler and notifier
/// loops; also migrations, demo data and the integrity audit.
///
/// Configuration is read from `BOXOFFICE_*` environment variables (listed in
/// domain/src/config.rs); `source .stack/env` sets them for the local stack.
#[derive(Debug, Parser)]
#[command(name = "boxoffice-worker", version)]
struct Cli {
    /// What to do; `run` when none is given.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The worker's commands.
#[derive(Debug, PartialEq, Eq, Subcommand)]
enum Command {
    /// Apply migrations, then run every background loop until SIGTERM or SIGINT (the default).
    Run,
    /// Apply pending migrations and exit.
    Migrate,
    /// Write the demo data (users, concerts, sections, seats) in one transaction; a no-op when
    /// users already exist, unless --force.
    Seed(seed::Options),
    /// Check the sales and money invariants in Postgres and Redis; exit 1 on any violation.
    ///
    /// Prints one PASS/FAIL line per check on stdout (a FAIL names up to five offending rows
    /// by id) and each step's progress on stderr. Run it on a quiet system: checks that can
    /// catch a payment or an expiry mid-flight are retried for a few seconds.
    Audit,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Exits 0 after --help or --version, 2 with clap's usage on a command-line mistake.
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Run)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` is the cause chain on one line; `{:?}` would add a backtrace whenever
            // RUST_BACKTRACE is set, which tells an operator nothing.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    match command {
        Command::Run => {
            startup::Worker::build(config)
                .await?
                .run(shutdown::signal())
                .await
        }
        Command::Migrate => startup::migrate(&config).await,
        Command::Seed(options) => seed::run(&config, &options).await,
        Command::Audit => audit::run(&config).await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::{error::ErrorKind, CommandFactory};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("boxoffice-worker").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_run() {
        assert_eq!(parse(&[]).unwrap().command, None);
        assert_eq!(parse(&["run"]).unwrap().command, Some(Command::Run));
        assert_eq!(parse(&["migrate"]).unwrap().command, Some(Command::Migrate));
    }

    #[test]
    fn every_command_answers_help() {
        for command in ["run", "migrate", "seed", "audit"] {
            let error = parse(&[command, "--help"]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::DisplayHelp, "{command} --help");
        }
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
        assert_eq!(
            parse(&["--version"]).unwrap_err().kind(),
            ErrorKind::DisplayVersion
        );
    }

    #[test]
    fn unknown_options_and_commands_are_usage_errors() {
        assert_eq!(
            parse(&["audit", "--bogus"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["seed", "--frce"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["seed", "--tokens-csv"]).unwrap_err().kind(),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            parse(&["sede"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
        // Usage errors exit 2, as clap's do; run-time errors exit 1.
        assert_eq!(parse(&["audit", "--bogus"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn seed_accepts_force_and_a_token_path_in_both_spellings() {
        let seed = |args: &[&str]| match parse(args).unwrap().command {
            Some(Command::Seed(options)) => options,
            other => panic!("not seed: {other:?}"),
        };
        assert_eq!(seed(&["seed"]), seed::Options::default());
        let options = seed(&["seed", "--force", "--tokens-csv", "t.csv"]);
        assert!(options.force);
        assert_eq!(options.tokens_csv, Some(PathBuf::from("t.csv")));
        let options = seed(&["seed", "--tokens-csv=u.csv"]);
        assert!(!options.force);
        assert_eq!(options.tokens_csv, Some(PathBuf::from("u.csv")));
    }
}
