//! The payment saga (Redis claim, one Postgres transaction, Redis finalise) and its reconciler.
//!
//! Owns invariants 4 (money is exact) and 5 (nothing acknowledged is lost) for payments, and
//! the Postgres side of invariant 1 (a seat is in one reservation; a section never sells past
//! its capacity).
//!
//! The saga, in [`saga`] (run for a batch of payments at once by [`batch`]):
//!
//! 0. Open a Postgres transaction: claim the `Idempotency-Key` (a retry with the same key gets
//!    the stored response) and take the hold's advisory lock.
//! 1. Claim the hold in Redis: HELD becomes PAYING, out of the expiry set, so it cannot expire
//!    while it is paid for.
//! 2. Record everything in that one transaction ([`pg::record`]) and commit.
//! 3. Finalise in Redis: seats `sold`, hold PAID, a `paid` event. End the ACTIVE session.
//!
//! A failure before the commit puts the hold back (PAYING becomes HELD with its original
//! expiry), so a payment refused for lack of points leaves the hold payable. A process that
//! dies between the steps leaves a PAYING hold; the worker's reconciler ([`reconcile`](mod@reconcile)) settles
//! it from what Postgres says: paid means step 3 (the buyer's session ended, the hold
//! finalised), not paid means put back. The notification is the outbox row written by step 2,
//! so there is one per payment whichever of the saga and the reconciler finishes it.

pub mod batch;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod payment;
pub mod pg;
pub mod reconcile;
pub mod saga;

pub use payment::{Paid, Payment, Reservation, Reservations};
pub use reconcile::{reconcile, Settlement};
