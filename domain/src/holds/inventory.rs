//! Getting a schedule's inventory into Redis, and getting it back when Redis lost it.
//!
//! A schedule's seats, GA counters, ticket counts and live holds are loaded into Redis from
//! Postgres the first time the schedule is used ([`ensure_loaded`]); every selling script
//! refuses a schedule without its load marker, so a Redis that lost its data is rebuilt from
//! the truth before it sells again. The two helpers here are the only places that react to a
//! missing schedule (`loaded_then`) or a missing hold (`recovering`).

use std::future::Future;

use super::{
    pg::{self, Settled},
    redis,
    store::Store,
};
use crate::{
    concerts::Schedule,
    ids::{HoldId, UserId},
    Dependency, Error, Result,
};

/// Loads `schedule`'s inventory into Redis from Postgres unless it is there already.
///
/// Safe to call concurrently from every replica: within a replica the loads queue on one gate
/// per schedule; across replicas the load script runs once per schedule and the others find
/// the marker and do nothing. The snapshot is taken before the script runs;
/// nothing is sold from the schedule in between (every selling path requires the marker), so
/// it cannot go stale in that window.
pub async fn ensure_loaded(store: Store<'_>, schedule: &Schedule) -> Result<()> {
    if redis::is_loaded(store.hot, schedule).await? {
        return Ok(());
    }
    let gate = store.replica.load_gate(schedule.id);
    let _loading = gate.lock().await;
    // Whoever held the gate before us has probably loaded it.
    if redis::is_loaded(store.hot, schedule).await? {
        return Ok(());
    }
    let snapshot = pg::snapshot(store.pg, schedule).await?;
    if redis::load_inventory(store.hot, schedule, &snapshot).await? {
        tracing::info!(schedule = %schedule.id, sold = snapshot.sold.len(), holds = snapshot.holds.len(), "inventory loaded from postgres");
        metrics::counter!("boxoffice_holds_inventory_loads_total").increment(1);
    }
    Ok(())
}

/// Runs a Redis step that answers `None` when the schedule is not loaded; loads it and runs
/// the step once more in that case.
pub(super) async fn loaded_then<T, F, Fut>(
    store: Store<'_>,
    schedule: &Schedule,
    step: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    if let Some(value) = step().await? {
        return Ok(value);
    }
    ensure_loaded(store, schedule).await?;
    // Loaded a moment ago, so a second `None` means the data vanished again (Redis restarted
    // between the two calls): a dependency failure, safe to retry.
    step().await?.ok_or(Error::unavailable(
        Dependency::Redis,
        "the schedule's inventory vanished right after it was loaded",
    ))
}

/// Runs a step on `user`'s hold; when it answers [`Error::HoldNotFound`], asks Postgres what
/// became of the hold. A hold Postgres has as live (HELD, unexpired) was lost by Redis (its
/// data was wiped): the schedule is rebuilt from Postgres and the step runs once more.
/// Otherwise Postgres's answer stands (expired, paid, or no such hold of this user's).
pub(super) async fn recovering<T, F, Fut>(
    store: Store<'_>,
    user: UserId,
    hold: HoldId,
    step: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match step().await {
        Err(Error::HoldNotFound) => {}
        other => return other,
    }
    match pg::settled(store.pg, user, hold).await? {
        Settled::Ended => Err(Error::HoldNotFound),
        Settled::Refused(e) => Err(e),
        Settled::Live(schedule) => {
            let schedule = crate::concerts::pg::schedule(store.pg, schedule).await?;
            ensure_loaded(store, &schedule).await?;
            step().await
        }
    }
}
