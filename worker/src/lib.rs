//! The worker as a library, so integration tests can run its loops in-process.

pub mod admission;
pub mod audit;
pub mod hold_expiry;
pub mod notifier;
pub mod progress;
pub mod reconciler;
pub mod seed;
pub mod startup;
pub mod stream_sink;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Spawns every background loop. Each returns when `cancel` fires, at a safe point.
pub fn loops(ctx: &startup::Deps, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        admission::spawn(ctx.clone(), cancel.clone()),
        tokio::spawn(hold_expiry::run(ctx.clone(), cancel.clone())),
        tokio::spawn(stream_sink::run(ctx.clone(), cancel.clone())),
        tokio::spawn(reconciler::run(ctx.clone(), cancel.clone())),
        tokio::spawn(notifier::run(ctx.clone(), cancel.clone())),
    ]
}
