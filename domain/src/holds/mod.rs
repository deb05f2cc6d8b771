//! Seat holds and general-admission counters, in Redis.
//!
//! Owns invariants 1 (no oversell) and 3 (holds expire).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A hold's id: a random UUID, so ids reveal nothing and cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldId(Uuid);

impl HoldId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
    /// Wraps a stored id.
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }
    /// The UUID.
    pub fn get(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
