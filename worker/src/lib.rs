//! The worker as a library, so integration tests can run its loops in-process.

pub mod audit;
pub mod seed;
pub mod shutdown;
pub mod startup;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Spawns every background loop. Each returns when `cancel` fires, at a safe point.
pub fn loops(ctx: &startup::Deps, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
    let _ = (ctx, cancel);
    Vec::new()
}
