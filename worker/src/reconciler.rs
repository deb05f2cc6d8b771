//! The payment reconciler: settles payments interrupted between their Redis and Postgres
//! steps (invariant 5). A claim older than `BOXOFFICE_RECONCILE_AFTER_MS` is finalised in
//! Redis, and its buyer's ACTIVE session ended, when Postgres has its payment, and put back to
//! HELD (expiring on its original time) when it has not. A claim whose payment is still in flight is left alone: the saga holds
//! the hold's advisory lock until it commits or rolls back.

use boxoffice_domain::{
    payments,
    redis::{keys::Registry, registry},
};
use tokio_util::sync::CancellationToken;

use crate::startup::Deps;

/// Claims settled per concert per tick.
const BATCH: i64 = 100;

/// Runs until `cancel` fires; checks it only between rounds (each claim is settled in one
/// transaction, never left half done by a shutdown).
pub async fn run(ctx: Deps, cancel: CancellationToken) {
    // Exported at zero from the start, so the sales board shows 0/s, not "no data", until the
    // first stale claim needs settling.
    use payments::Settlement::*;
    for settlement in [Finalised, Restored, InFlight, Nothing] {
        actions(settlement).increment(0);
    }
    let mut every = tokio::time::interval(ctx.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = round(&ctx).await {
            tracing::warn!(error = %format_args!("{e:#}"), "reconciler round failed; retrying next tick");
        }
    }
}

async fn round(ctx: &Deps) -> boxoffice_domain::Result<()> {
    let hot = &ctx.hot;
    for concert in registry::list(hot, Registry::Sales).await? {
        let settled =
            payments::reconcile(&ctx.pg, hot, concert, ctx.config.reconcile_after, BATCH).await?;
        for (hold, settlement) in settled {
            actions(settlement).increment(1);
            tracing::info!(hold = %hold, ?settlement, "reconciled a stale payment claim");
        }
    }
    Ok(())
}

/// The counter of one kind of settlement.
fn actions(settlement: payments::Settlement) -> metrics::Counter {
    let action = match settlement {
        payments::Settlement::Finalised => "finalised",
        payments::Settlement::Restored => "restored",
        payments::Settlement::InFlight => "in_flight",
        payments::Settlement::Nothing => "nothing",
    };
    metrics::counter!("boxoffice_reconciler_actions_total", "action" => action)
}
