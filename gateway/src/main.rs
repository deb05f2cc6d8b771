//! Boxoffice gateway: the stateless HTTP front of the on-sale. See `startup.rs` for what it
//! builds and `router.rs` for what it serves.

use boxoffice_domain::{telemetry, Config};
use boxoffice_gateway::{shutdown, startup::Application};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.gateway_threads {
        runtime.worker_threads(threads.get() as usize);
    }
    runtime.enable_all().build()?.block_on(async {
        let app = Application::build(config).await?;
        app.run(shutdown::signal()).await
    })
}
