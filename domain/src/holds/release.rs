//! Releasing a hold early (`DELETE /holds/{id}`).

use super::{
    hold::Footprint,
    inventory,
    redis::{self, EndMode, Ended},
    store::Store,
};
use crate::{
    ids::{HoldId, UserId},
    Error, Result,
};

/// Releases `user`'s hold early.
///
/// Idempotent: releasing a hold that already ended (released or expired) succeeds. A paid or
/// being-paid hold cannot be released (409); another user's hold does not exist for this one
/// (404), whatever its state. A hold Redis lost is restored from Postgres first.
pub async fn release(store: Store<'_>, user: UserId, hold: HoldId) -> Result<Footprint> {
    inventory::recovering(store, user, hold, || release_once(store, user, hold)).await
}

async fn release_once(store: Store<'_>, user: UserId, hold: HoldId) -> Result<Footprint> {
    let record = redis::read_record(store.hot, hold)
        .await?
        .filter(|record| record.user == user)
        .ok_or(Error::HoldNotFound)?;
    let outcome = redis::end(store.hot, EndMode::Release(user), &[(hold, &record)])
        .await?
        .pop()
        .unwrap_or(Ended::Missing);
    match outcome {
        Ended::Released | Ended::Expired => {
            let reason = if outcome == Ended::Released {
                "released"
            } else {
                "expired"
            };
            metrics::counter!("boxoffice_holds_ended_total", "reason" => reason).increment(1);
            Ok(record.footprint())
        }
        Ended::AlreadyEnded | Ended::NotDue => Ok(record.footprint()),
        Ended::Paid => Err(Error::HoldAlreadyPaid),
        Ended::Missing => Err(Error::HoldNotFound),
    }
}
