//! Integration tests against the real Redis, Postgres and nginx of the local stack
//! (`scripts/stack start`). One test binary, one link step.

mod helpers;

mod concerts;
mod errors;
mod identity;
mod points;
mod queue;
