//! The payment saga (Redis claim, one Postgres transaction, Redis finalise) and its reconciler.
//!
//! Owns invariants 4 (money is exact) and 5 (nothing acknowledged is lost) for payments.
