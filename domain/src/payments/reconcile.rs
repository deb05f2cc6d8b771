//! The reconciler: settles payments a process left half-done (a PAYING hold whose saga died
//! between its steps) from what Postgres says.
//!
//! A paid claim gets all of the saga's step 3, not only its Redis half: the hold finalised
//! (seats sold, hold PAID, a `paid` event) and the buyer's ACTIVE session ended, so a buyer
//! whose payment was finished by the reconciler cannot go on holding with a session their
//! payment spent. The notification needs nothing here: its outbox row was written in the
//! payment's transaction, so it exists once whoever finishes the payment.

use std::time::Duration;

use super::pg::{self, Settle};
use crate::{
    holds::claim,
    ids::{ConcertId, HoldId, UserId},
    queue,
    redis::Hot,
    Result,
};

/// What the reconciler did with one stale claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Postgres has the payment: Redis now says sold, and the buyer's session is over.
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
            Settle::InFlight => Settlement::InFlight,
            Settle::Paid(user) => finish(hot, concert, hold, user).await?,
            Settle::Unpaid if claim::unclaim(hot, hold).await? => Settlement::Restored,
            Settle::Unpaid => Settlement::Nothing,
        };
        tx.commit().await?;
        settled.push((hold, settlement));
    }
    Ok(settled)
}

/// Step 3 of the saga for a claim Postgres has as paid by `user`: the session ended, then the
/// hold finalised.
///
/// In this order, unlike the saga (which answers the client and does both best effort): the
/// PAYING claim is the only record that step 3 is owed, and finalising removes it. Ending the
/// session first means an error on either leaves the claim for the next round, which does both
/// again (ending an ended session is harmless); the other order would lose the session's end
/// for good whenever the finalise succeeded and the end failed.
async fn finish(hot: &Hot, concert: ConcertId, hold: HoldId, user: UserId) -> Result<Settlement> {
    queue::end_session(hot, concert, user).await?;
    Ok(if claim::finalise_claimed(hot, hold).await? {
        Settlement::Finalised
    } else {
        Settlement::Nothing
    })
}
