//! The gateway as a library, so that integration tests start it in-process on port 0.

pub mod cache;
pub mod extract;
pub mod handlers;
pub mod problem;
pub mod router;
pub mod startup;
pub mod state;
pub mod telemetry;
