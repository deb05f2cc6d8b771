//! Boxoffice gateway: the stateless HTTP front of the on-sale. See `startup.rs` for what it
//! builds and `router.rs` for what it serves.

use boxoffice_domain::{telemetry, Config};
use boxoffice_gateway::{shutdown, startup::Application};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    let app = Application::build(config).await?;
    app.run(shutdown::signal()).await
}
