//! Holds: seats and general-admission places set aside for one user for a few minutes.
//!
//! Owns invariants 1 (no oversell, no double sale) and 3 (holds expire) on the Redis side:
//!
//! - A numbered seat is taken by one Lua script that checks every seat before writing any
//!   ([`redis::hold_seats`]); a general-admission place is taken from a counter with
//!   `DECRBY` and given back when the counter went below zero, both in one script
//!   ([`redis::hold_general`]). A replica sends its concurrent holds of a schedule together
//!   ([`batch`]).
//! - Every hold expires after the configured TTL. The worker's sweep ends due holds whether or
//!   not anyone reads them ([`expire`]); until it runs, an expired hold already counts as free.
//! - Each change appends an event to the concert's stream ([`events`]); the worker mirrors it
//!   into Postgres ([`pg::write_events`]).
//!
//! Postgres stays the last line: a seat is in at most one reservation (UNIQUE) and a section
//! never sells past its capacity (CHECK). A schedule's inventory is loaded into Redis from
//! Postgres the first time it is used ([`inventory`]), so a Redis that lost its data is
//! rebuilt from the truth before it sells again.
//!
//! One file per action, as crates.io's `controllers/<resource>/<action>.rs`:
//! [`place`](mod@place), [`release`](mod@release), [`expire`], [`claim`] (a hold's side of its payment) and [`views`] (the seat
//! map and the sections). Under them: the types ([`hold`], [`snapshot`]), the storage
//! ([`redis`], [`pg`], [`events`]) and what a replica keeps ([`store`], [`batch`]). This file
//! only declares them.

pub mod batch;
pub mod claim;
pub mod events;
pub mod expire;
pub mod hold;
pub mod inventory;
pub mod pg;
pub mod place;
pub mod redis;
pub mod release;
pub mod snapshot;
pub mod store;
pub mod views;

pub use claim::Claim;
pub use events::{HoldEvent, HoldEventKind};
pub use expire::{expire_due, retire_if_idle, Sweep};
pub use hold::{Footprint, HeldSeat, Hold, HoldRecord, HoldRequest, ENDED_HOLD_RETENTION_MS};
pub use inventory::ensure_loaded;
pub use place::place;
pub use release::release;
pub use store::{Replica, Store};
pub use views::{seat_map, sections, SeatMap, SeatStatus, SeatView, SectionView, Sections};
