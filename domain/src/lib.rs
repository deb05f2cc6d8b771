//! # boxoffice-domain
//!
//! The rules of a concert on-sale, and the storage that enforces them. This crate knows
//! nothing about HTTP: the gateway parses requests into the types defined here, calls one
//! function, and renders its `Result`.
//!
//! One module per domain concept:
//!
//! - [`identity`]: users and the signed access tokens that identify them (invariant 6).
//! - [`points`]: balances and the ledger; charges are idempotent (invariant 4).
//! - [`concerts`]: concerts, schedules, sections and seats as Postgres holds them.
//! - [`queue`]: the waiting room: join, poll, leave, admission (invariant 2).
//! - [`holds`]: seat holds and general-admission counters in Redis (invariants 1 and 3).
//! - [`payments`]: the payment saga and its reconciler (invariants 1, 4 and 5).
//! - [`notifications`]: the outbox of confirmed reservations.
//!
//! At the bottom, [`ids`]: every id type, importing nothing of the crate. Shared plumbing:
//! [`redis`] (the keyspace, the Lua scripts, the work lists and [`redis::Hot`], the one handle
//! every Redis-touching function takes), [`error`] (the one error enum), [`config`] (typed
//! environment configuration), [`tokens`] (HS256 signing), [`telemetry`] and [`shutdown`] (the
//! signal both binaries stop on). `docs/architecture.md` draws the parts and walks a hold and
//! a payment through the files.
//!
//! Storage access follows the design card: the gateway talks to Postgres through
//! `deadpool-postgres` (its hot reads and short transactions), the worker through `sqlx`.

mod batching;
pub mod concerts;
pub mod config;
pub mod error;
pub mod holds;
pub mod identity;
pub mod ids;
pub mod notifications;
pub mod payments;
pub mod points;
pub mod queue;
pub mod redis;
pub mod shutdown;
pub mod telemetry;
pub mod tokens;

pub use config::Config;
pub use error::{Dependency, Error, Result};

/// Milliseconds since the Unix epoch, the clock every Redis score and token uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
