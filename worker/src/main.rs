//! Boxoffice worker.
//!
//! `boxoffice-worker` (or `boxoffice-worker run`) applies migrations and runs every background
//! loop until SIGTERM. `migrate` only applies migrations. `seed` writes the demo data of the
//! brief's §4. `audit` checks the sales and money invariants in Postgres (non-zero exit on a
//! violation). See `startup.rs` for the loops.

use boxoffice_domain::{shutdown, telemetry, Config};
use boxoffice_worker::{audit, seed, startup};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("run") => {
            startup::Worker::build(config)
                .await?
                .run(shutdown::signal())
                .await
        }
        Some("migrate") => startup::migrate(&config).await,
        Some("seed") => seed::run(&config, &args[1..]).await,
        Some("audit") => audit::run(&config, &args[1..]).await,
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; expected run, migrate, seed or audit")
        }
    }
}
