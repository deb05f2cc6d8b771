//! Boxoffice gateway: the stateless HTTP front of the on-sale. See `startup.rs` for what it
//! builds and `router.rs` for what it serves.

use boxoffice_domain::{shutdown, telemetry, Config};
use boxoffice_gateway::startup::Application;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
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
