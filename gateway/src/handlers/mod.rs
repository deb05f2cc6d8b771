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

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue};

/// A cached, already serialised JSON body.
fn json(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
