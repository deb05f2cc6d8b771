//! The payment saga (Redis claim, one Postgres transaction, Redis finalise) and its reconciler.
//!
//! Owns invariants 4 (money is exact) and 5 (nothing acknowledged is lost) for payments, and
//! the Postgres side of invariant 1 (a seat is in one reservation; a section never sells past
//! its capacity).
//!
//! The saga, in [`saga`] (run for a batch of payments at once by [`batch`]):
//!
//! 0. Open a Postgres transaction: claim the `Idempotency-Key` (a retry with the same key gets
//!    the stored response) and take the hold's advisory lock.
//! 1. Claim the hold in Redis: HELD becomes PAYING, out of the expiry set, so it cannot expire
//!    while it is paid for.
//! 2. Record everything in that one transaction ([`pg::record`]) and commit.
//! 3. Finalise in Redis: seats `sold`, hold PAID, a `paid` event. End the ACTIVE session.
//!
//! A failure before the commit puts the hold back (PAYING becomes HELD with its original
//! expiry), so a payment refused for lack of points leaves the hold payable. A process that
//! dies between the steps leaves a PAYING hold; the worker's reconciler ([`reconcile`]) settles
//! it from what Postgres says: paid means finalise, not paid means put back.

pub mod batch;
pub mod pg;
pub mod redis;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    concerts::{ConcertId, ScheduleId},
    holds::{self, redis::Hot, Footprint, HeldSeat, HoldId, Store},
    identity::UserId,
    points::IdempotencyKey,
    queue, Error, Result,
};

/// A reservation's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReservationId(pub Uuid);

/// A payment's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(pub Uuid);

/// A completed payment (`201` of `POST /holds/{id}/payment`); stored verbatim with its
/// idempotency key, so a retry gets the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub reservation_id: ReservationId,
    pub payment_id: PaymentId,
    pub amount: i64,
    /// The balance right after this payment.
    pub balance: i64,
}

/// What [`pay`] did.
#[derive(Debug, Clone)]
pub struct Paid {
    pub payment: Payment,
    /// The concert whose ACTIVE session the payment ended.
    pub concert: ConcertId,
    /// The inventory it changed (`None` for a replay, which changed nothing).
    pub footprint: Option<Footprint>,
}

/// One confirmed reservation of `GET /me/reservations`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub seats: Vec<HeldSeat>,
    pub quantity: i32,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
}

/// `GET /me/reservations`.
#[derive(Debug, Clone, Serialize)]
pub struct Reservations {
    pub items: Vec<Reservation>,
}

/// Counts a payment's outcome and time.
fn observe(started: Instant, result: &Result<Paid>) {
    let outcome = match result {
        Ok(paid) if paid.footprint.is_none() => "replayed",
        Ok(_) => "paid",
        Err(e) => e.code(),
    };
    metrics::counter!("boxoffice_payments_total", "outcome" => outcome).increment(1);
    metrics::histogram!("boxoffice_payments_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

/// The saga for one payment alone; what a batch falls back to ([`batch`]).
async fn saga(store: Store<'_>, user: UserId, hold: HoldId, key: &IdempotencyKey) -> Result<Paid> {
    let concert = hold.concert();
    let mut client = store.pg.get().await?;
    let tx = client.transaction().await?;
    let mut opened = pg::open(&tx, &[(user, hold, key)]).await?;
    match opened.pop().expect("open answers each payment")? {
        pg::Opened::New => {}
        pg::Opened::Replay(payment) => {
            return Ok(Paid {
                payment,
                concert,
                footprint: None,
            })
        }
    }
    let claim = claim(store, user, hold).await?;
    #[cfg(feature = "fault-injection")]
    if fault::hit(hold, fault::FaultPoint::BeforeCommit) {
        // A crash between the claim and the commit: nothing is put back; the transaction
        // rolls back when dropped and the reconciler must restore the hold.
        return Err(anyhow::anyhow!("fault injected before commit").into());
    }
    let recording = pg::Recording {
        user,
        hold,
        key,
        claim: &claim,
    };
    let recorded = async {
        match pg::record(&tx, std::slice::from_ref(&recording))
            .await?
            .remove(&hold)
        {
            Some(payment) => Ok(payment),
            // Short of points: nothing was written.
            None => {
                let balances = pg::balances(&tx, std::iter::once(user)).await?;
                Err(short_of_points(&balances, user, claim.amount))
            }
        }
    };
    let payment = match recorded.await {
        Ok(payment) => payment,
        Err(e) => {
            // Put the hold back while the advisory lock is still ours, then roll back. If the
            // put-back fails, the hold stays PAYING and the reconciler restores it.
            if let Err(put_back) = redis::unclaim(store.hot(), hold).await {
                tracing::warn!(hold = %hold, error = %put_back, "could not put a hold back after a failed payment");
            }
            drop(tx);
            return Err(e);
        }
    };
    // A commit that fails may or may not have happened: leave the hold PAYING for the
    // reconciler, which asks Postgres, rather than guess.
    tx.commit().await?;
    #[cfg(feature = "fault-injection")]
    if fault::hit(hold, fault::FaultPoint::AfterCommit) {
        return Err(anyhow::anyhow!("fault injected after commit").into());
    }
    // The payment is committed: the client is answered 201 whatever Redis does now; a failed
    // finalise leaves the hold PAYING and the reconciler finalises it.
    if let Err(e) = redis::finalise(store.hot(), hold, &claim.record).await {
        tracing::warn!(hold = %hold, error = %e, "finalise after commit failed; the reconciler will finish it");
    }
    if let Err(e) = queue::end_session(store.redis, store.keys, concert, user).await {
        tracing::warn!(user = %user, error = %e, "could not end the ACTIVE session after payment");
    }
    Ok(Paid {
        payment,
        concert,
        footprint: Some(claim.record.footprint()),
    })
}

/// The refusal of a payment [`pg::record`] did not record: short of points, or (no balance
/// row) a user who does not exist.
fn short_of_points(balances: &HashMap<UserId, i64>, user: UserId, needed: i64) -> Error {
    match balances.get(&user) {
        Some(balance) => Error::InsufficientPoints {
            balance: *balance,
            needed,
        },
        None => Error::Unauthorized,
    }
}

/// Step 1, with the answer for holds Redis does not have taken from Postgres.
async fn claim(store: Store<'_>, user: UserId, hold: HoldId) -> Result<redis::Claim> {
    match redis::claim(store.hot(), user, hold).await {
        Err(Error::HoldNotFound) => match holds::pg::settled(store.pg, user, hold).await? {
            holds::pg::Settled::Ended => Err(Error::HoldNotFound),
            holds::pg::Settled::Refused(e) => Err(e),
            holds::pg::Settled::Live(schedule) => {
                // Redis lost the hold (its data was wiped): rebuild the schedule, then retry.
                let schedule = crate::concerts::pg::schedule(store.pg, schedule).await?;
                holds::ensure_loaded(store, &schedule).await?;
                redis::claim(store.hot(), user, hold).await
            }
        },
        other => other,
    }
}

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
    hot: Hot<'_>,
    concert: ConcertId,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<(HoldId, Settlement)>> {
    let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let stale = redis::stale_claims(hot, concert, crate::now_ms() - age_ms, limit).await?;
    let mut settled = Vec::with_capacity(stale.len());
    for hold in stale {
        let mut tx = pg.begin().await?;
        let settlement = match pg::settle_check(&mut tx, hold).await? {
            None => Settlement::InFlight,
            Some(true) => match holds::redis::read_record(hot, hold).await? {
                Some(record) if redis::finalise(hot, hold, &record).await? => Settlement::Finalised,
                _ => Settlement::Nothing,
            },
            Some(false) if redis::unclaim(hot, hold).await? => Settlement::Restored,
            Some(false) => Settlement::Nothing,
        };
        tx.commit().await?;
        settled.push((hold, settlement));
    }
    Ok(settled)
}

/// Fault points of the saga, compiled only with the `fault-injection` feature (tests).
///
/// A test arms a point for one hold; the saga stops there as if the process died, and the
/// point disarms itself. Scoped to a hold so that tests running in parallel in one process
/// cannot trip each other's faults.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use std::sync::Mutex;

    use crate::holds::HoldId;

    /// Where the saga stops.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FaultPoint {
        /// After the Redis claim, before the Postgres commit.
        BeforeCommit,
        /// After the Postgres commit, before the Redis finalise.
        AfterCommit,
        /// The batch's recording statement fails as a whole (as a constraint that only a Redis
        /// data loss can trip would make it), so the batch falls back to single payments.
        BatchRefused,
    }

    // A std Mutex: held for a scan of a handful of entries, never across an await.
    static ARMED: Mutex<Vec<(HoldId, FaultPoint)>> = Mutex::new(Vec::new());

    /// Makes the next payment of `hold` stop at `point`.
    pub fn arm(hold: HoldId, point: FaultPoint) {
        ARMED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((hold, point));
    }

    /// Whether the saga must stop at `point` for `hold` (disarming it).
    pub(crate) fn hit(hold: HoldId, point: FaultPoint) -> bool {
        disarm(hold, point)
    }

    /// Disarms `point` for `hold`; `false` if it was not armed (a hit consumed it).
    pub fn disarm(hold: HoldId, point: FaultPoint) -> bool {
        let mut armed = ARMED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match armed.iter().position(|a| *a == (hold, point)) {
            Some(i) => {
                armed.swap_remove(i);
                true
            }
            None => false,
        }
    }
}
