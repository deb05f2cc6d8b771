//! The waiting room: join, poll, leave, and the admission that turns WAITING users ACTIVE.
//!
//! Owns invariant 2 (FIFO admission; joining twice returns the same place) and the queue side
//! of invariant 6 (a place is a signed token bound to user and concert).

pub mod token;

pub use token::{QueuePass, QueueStatus, QueueTokens};
pub mod session;

pub use session::end_session;
