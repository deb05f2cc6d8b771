//! Thin handlers, one module per concept: extract, call one domain function, render.

pub mod admin;
pub mod concerts;
pub mod health;
pub mod holds;
pub mod payments;
pub mod points;
pub mod queue;
pub mod schedules;
pub mod users;
