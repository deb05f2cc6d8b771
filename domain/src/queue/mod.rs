//! The waiting room: join, poll, leave, and the admission that turns WAITING users ACTIVE.
//!
//! Owns invariant 2 (FIFO admission; joining twice returns the same place) and the queue side
//! of invariant 6 (a place is a signed token bound to user and concert).
//!
//! How it fits together (the model of AWS's Virtual Waiting Room and Queue-it: counters plus
//! signed tokens):
//!
//! - **Join** is one Lua script: a per-concert `INCR` hands out places 1, 2, 3, ... and a
//!   hash makes joining again return the same place. The answer is a signed token naming
//!   user, concert and place ([`token`]). Joining works before the sale opens (pre-queue).
//! - **Admission** runs in the worker, one admitter per concert under a lease. Each tick it
//!   admits up to the policy rate (a token bucket kept in Redis, so no second worker can
//!   double it), never beyond `maxActive`, in place order, skipping users who left or went
//!   silent for longer than the grace period. It publishes the concert's admission state:
//!   the `front` (every place at or below it has been admitted, has left or was skipped), the
//!   observed rate and the policy in force ([`AdmissionView`]).
//! - **Poll** is answered from that state as a replica cached it (at most a few hundred ms
//!   old): position = place − front. Only when a token's place reaches the front does a poll
//!   read Redis once, to learn whether the user was admitted (then it gets an ACTIVE token) or
//!   lost the place (`QUEUE_PLACE_LOST`, 410: join again, at the back). Polls are the
//!   heartbeat; replicas batch them ([`heartbeat`]).
//! - **Leave** and payment ([`end_session`]) end a place or a session and log the end; every
//!   replica tails that log and refuses the user's older tokens within a second.

pub mod heartbeat;
pub mod line;
pub mod pg;
pub mod redis;
pub mod room;
pub mod session;
pub mod token;

pub use line::{
    active_poll_after_ms, eta_ms, poll_after_ms, AdmissionView, Joined, QueuePolicy, SaleWindow,
    Standing, ENDED_RETENTION, MAX_ETA_MS, MAX_POLL_MS, MIN_POLL_MS,
};
pub use room::Room;
pub use session::end_session;
pub use token::{QueuePass, QueueStatus, QueueTokens};
