//! Fault points of the saga, compiled only with the `fault-injection` feature (tests).
//!
//! A test arms a point for one hold; the saga stops there as if the process died, and the
//! point disarms itself. Scoped to a hold so that tests running in parallel in one process
//! cannot trip each other's faults.

use std::sync::Mutex;

use crate::ids::HoldId;

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
