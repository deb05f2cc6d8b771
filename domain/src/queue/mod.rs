//! The waiting room: join, poll, leave, and the admission that turns WAITING users ACTIVE.
//!
//! Owns invariant 2 (FIFO admission; joining twice returns the same place).
