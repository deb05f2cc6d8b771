//! The reconciler: settles payments a process left half-done (a PAYING hold whose saga died
//! between its steps) from what Postgres says.

use std::time::Duration;

use super::pg;
use crate::{
    holds::claim,
    ids::{ConcertId, HoldId},
    redis::Hot,
    Result,
};

/// What the reconciler did with one stale claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Postgres has the payment: Redis now says sold.
    Finalised,
    /// Postgres has no payment: the hold is HELD again (and expires on its original time).
    Restored,
    /// The saga still holds the hold's lock: the payment is in flight; look again later.
    InFlight,
    /// Nothing left to do (settled meanwhile, or the hold is gone).
    Nothing,
}

/// Settles claims of `concert` older than `older_than`, at most `limit` of them, one
/// transaction each (the hold's advisory lock keeps in-flight payments out of reach).
pub async fn reconcile(
    pg: &sqlx::PgPool,
    hot: &Hot,
    concert: ConcertId,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<(HoldId, Settlement)>> {
    let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let stale = claim::stale_claims(hot, concert, crate::now_ms() - age_ms, limit).await?;
    let mut settled = Vec::with_capacity(stale.len());
    for hold in stale {
        let mut tx = pg.begin().await?;
        let settlement = match pg::settle_check(&mut tx, hold).await? {
            None => Settlement::InFlight,
            Some(true) if claim::finalise_claimed(hot, hold).await? => Settlement::Finalised,
            Some(true) => Settlement::Nothing,
            Some(false) if claim::unclaim(hot, hold).await? => Settlement::Restored,
            Some(false) => Settlement::Nothing,
        };
        tx.commit().await?;
        settled.push((hold, settlement));
    }
    Ok(settled)
}
