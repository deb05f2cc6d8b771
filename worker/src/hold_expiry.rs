//! The hold-expiry loop: every tick, ends the holds whose five minutes are up and gives their
//! seats and places back, so they return on time whether or not anyone reads them (invariant
//! 3). Also takes idle concerts off the work list.

use std::{collections::HashMap, time::Duration};

use boxoffice_domain::{
    holds,
    ids::ConcertId,
    redis::{keys::Registry, registry},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::startup::Deps;

/// Holds ended per script call: one call stays well under a millisecond of Redis time.
const BATCH: i64 = 200;

/// A concert idle (no hold, claim or unwritten event) and not registered by any gateway for
/// this long leaves the work list, so the per-tick cost follows the concerts actually selling,
/// not every concert ever sold. Sixty times a gateway's refresh interval.
const RETIRE_AFTER: Duration = Duration::from_secs(60);

/// Runs until `cancel` fires; checks it only between sweeps.
pub async fn run(ctx: Deps, cancel: CancellationToken) {
    let mut every = tokio::time::interval(ctx.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_seen_busy: HashMap<ConcertId, Instant> = HashMap::new();
    // Exported at zero from the start, so the sales board shows 0/s, not "no data", until the
    // first hold expires.
    metrics::counter!("boxoffice_holds_expired_total").increment(0);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = sweep(&ctx, &mut last_seen_busy).await {
            tracing::warn!(error = %format_args!("{e:#}"), "hold expiry sweep failed; retrying next tick");
        }
    }
}

async fn sweep(
    ctx: &Deps,
    last_seen_busy: &mut HashMap<ConcertId, Instant>,
) -> boxoffice_domain::Result<()> {
    let hot = &ctx.hot;
    let concerts = registry::list(hot, Registry::Sales).await?;
    let now = Instant::now();
    for concert in &concerts {
        let sweep = holds::expire_due(hot, *concert, BATCH).await?;
        if sweep.expired > 0 {
            metrics::counter!("boxoffice_holds_expired_total").increment(sweep.expired as u64);
            tracing::debug!(concert = %concert, expired = sweep.expired, "holds expired");
        }
        let since = *last_seen_busy.entry(*concert).or_insert(now);
        if now.duration_since(since) >= RETIRE_AFTER {
            let cutoff = boxoffice_domain::now_ms() - RETIRE_AFTER.as_millis() as i64;
            if holds::retire_if_idle(hot, *concert, cutoff).await? {
                last_seen_busy.remove(concert);
                tracing::info!(concert = %concert, "concert idle; off the work list");
            } else {
                last_seen_busy.insert(*concert, now);
            }
        }
    }
    last_seen_busy.retain(|c, _| concerts.contains(c));
    Ok(())
}
