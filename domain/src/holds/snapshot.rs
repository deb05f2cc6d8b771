//! A schedule's inventory as Postgres has it ([`pg::snapshot`](super::pg::snapshot) reads it),
//! in the shape `load_inventory.lua` takes ([`redis::load_inventory`](super::redis::load_inventory)).

use crate::ids::{HoldId, SectionId};

/// A schedule's inventory. Every value is a string, so Lua never reformats a large number.
#[derive(Debug, Default, serde::Serialize)]
pub struct Snapshot {
    /// Seats sold.
    pub sold: Vec<String>,
    /// Places left in each GA section, in `ga_sections` order (capacity - sold - held).
    pub ga: Vec<String>,
    /// Live holds.
    pub holds: Vec<SnapshotHold>,
    /// Tickets held or bought per user: `[userId, n]`.
    pub tickets: Vec<(String, String)>,
    /// The GA sections, for the keys.
    #[serde(skip)]
    pub ga_sections: Vec<SectionId>,
}

/// A live hold to restore.
#[derive(Debug, serde::Serialize)]
pub struct SnapshotHold {
    #[serde(skip)]
    pub hold: HoldId,
    pub id: String,
    pub user: String,
    pub schedule: String,
    pub section: String,
    pub seats: String,
    pub qty: String,
    pub amount: String,
    pub expires: String,
}
