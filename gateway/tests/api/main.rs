//! Integration tests against the real Redis, Postgres and nginx of the local stack
//! (`scripts/stack start`). One test binary, one link step.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot proceed should fail loudly"
)]

mod helpers;

mod audit;
mod concerts;
mod durability;
mod errors;
mod holds;
mod identity;
mod notifications;
mod payments;
mod points;
mod queue;
mod seats;
mod shutdown;
