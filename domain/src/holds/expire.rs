//! The worker's side of hold lifetimes: ending holds whose time is up, and retiring concerts
//! that have nothing left to expire from its work list.

use super::{
    hold::HoldRecord,
    redis::{self, EndMode, Ended},
};
use crate::{
    ids::{ConcertId, HoldId, ScheduleId, UserId},
    redis::{keys::Registry, registry, Hot},
    Result,
};

/// What one sweep of a concert did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Holds ended as expired.
    pub expired: usize,
}

/// Ends every hold of `concert` whose expiry has passed, `batch` at a time, giving their seats
/// and places back. Run by the worker on every tick, so seats come back on time whether or not
/// anyone reads them.
pub async fn expire_due(hot: &Hot, concert: ConcertId, batch: i64) -> Result<Sweep> {
    let mut sweep = Sweep::default();
    loop {
        let due = redis::due(hot, concert, crate::now_ms(), batch).await?;
        if due.is_empty() {
            return Ok(sweep);
        }
        let records =
            futures::future::try_join_all(due.iter().map(|id| redis::read_record(hot, *id)))
                .await?;
        // A due id without a record is dropped from the set by the script; it needs no keys
        // beyond the set, so a placeholder record names them.
        let placeholder = HoldRecord {
            user: UserId::new(0),
            schedule: ScheduleId::new(0),
            section: None,
            seats: Vec::new(),
        };
        let pairs: Vec<(HoldId, &HoldRecord)> = due
            .iter()
            .zip(&records)
            .map(|(id, record)| (*id, record.as_ref().unwrap_or(&placeholder)))
            .collect();
        let ended = redis::end(hot, EndMode::Expire, &pairs).await?;
        let expired = ended.iter().filter(|e| **e == Ended::Expired).count();
        sweep.expired += expired;
        // Stop at a short batch, or when nothing moved: holds that are due by this worker's
        // clock but not yet by Redis's (the scripts' clock) wait for the next tick.
        let dropped = ended.iter().filter(|e| **e == Ended::Missing).count();
        if (due.len() as i64) < batch || expired + dropped == 0 {
            return Ok(sweep);
        }
    }
}

/// Takes `concert` off the sales work list when it has no live hold, no claim and no unwritten
/// event, and no gateway registered it since `cutoff_ms`.
///
/// Why no hold can be left unlisted: every hold is preceded by a registration or comes within
/// a replica's refresh interval of one, so a hold placed after the idle check either
/// registers the concert after the removal (listed again) or finds a registration younger
/// than the cutoff (not removed). A last look after the removal puts it back regardless.
pub async fn retire_if_idle(hot: &Hot, concert: ConcertId, cutoff_ms: i64) -> Result<bool> {
    if !redis::is_idle(hot, concert).await? {
        return Ok(false);
    }
    if !registry::retire(hot, Registry::Sales, concert, cutoff_ms).await? {
        return Ok(false);
    }
    if redis::is_idle(hot, concert).await? {
        return Ok(true);
    }
    registry::register(hot, Registry::Sales, concert).await?;
    Ok(false)
}
