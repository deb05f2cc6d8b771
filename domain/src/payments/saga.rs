//! The saga for one payment (steps 0 to 3 of [`super`]), and the steps a batch of payments
//! shares with it ([`super::batch`]).

use std::{collections::HashMap, time::Instant};

#[cfg(feature = "fault-injection")]
use super::fault;
use super::{payment::Paid, pg};
use crate::{
    holds::{claim, HoldRecord, Store},
    ids::{HoldId, UserId},
    points::IdempotencyKey,
    queue, Error, Result,
};

/// Counts a payment's outcome and time.
pub(super) fn observe(started: Instant, result: &Result<Paid>) {
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
pub(super) async fn saga(
    store: Store<'_>,
    user: UserId,
    hold: HoldId,
    key: &IdempotencyKey,
) -> Result<Paid> {
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
    let claim = claim::claim(store, user, hold).await?;
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
            // Put the hold back while the advisory lock is still ours, then roll back.
            put_back(store, std::iter::once(hold)).await;
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
    // The payment is committed: the client is answered 201 whatever Redis does now.
    finish(store, user, hold, &claim.record).await;
    Ok(Paid {
        payment,
        concert,
        footprint: Some(claim.record.footprint()),
    })
}

/// The refusal of a payment [`pg::record`] did not record: short of points, or (no balance
/// row) a user who does not exist.
pub(super) fn short_of_points(balances: &HashMap<UserId, i64>, user: UserId, needed: i64) -> Error {
    match balances.get(&user) {
        Some(balance) => Error::InsufficientPoints {
            balance: *balance,
            needed,
        },
        None => Error::Unauthorized,
    }
}

/// Step 3 for one committed payment: the hold's seats sold and the buyer's ACTIVE session
/// ended. A failed finalise leaves the hold PAYING and the reconciler finalises it.
pub(super) async fn finish(store: Store<'_>, user: UserId, hold: HoldId, record: &HoldRecord) {
    if let Err(e) = claim::finalise(store.hot, hold, record).await {
        tracing::warn!(hold = %hold, error = %e.report(), "finalise after commit failed; the reconciler will finish it");
    }
    if let Err(e) = queue::end_session(store.hot, hold.concert(), user).await {
        tracing::warn!(user = %user, error = %e.report(), "could not end the ACTIVE session after payment");
    }
}

/// Puts claimed holds back to HELD after a failed payment (while the transaction still holds
/// their locks). A hold that cannot be put back stays PAYING, and the reconciler restores it.
pub(super) async fn put_back(store: Store<'_>, holds: impl Iterator<Item = HoldId>) {
    futures::future::join_all(holds.map(|hold| async move {
        if let Err(e) = claim::unclaim(store.hot, hold).await {
            tracing::warn!(hold = %hold, error = %e.report(), "could not put a hold back after a failed payment");
        }
    }))
    .await;
}
