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
use http::{header, HeaderValue};

use crate::{cache::View, extract::AcceptsGzip};

/// A cached, already serialised JSON view: gzipped when the client accepts it and the view
/// has a gzip encoding, as is otherwise.
fn json(view: View, AcceptsGzip(gzip): AcceptsGzip) -> Response {
    let json = HeaderValue::from_static("application/json");
    let vary = HeaderValue::from_static("accept-encoding");
    match view.gzip.filter(|_| gzip) {
        Some(body) => (
            [
                (header::CONTENT_TYPE, json),
                (header::VARY, vary),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            ],
            body,
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, json), (header::VARY, vary)],
            view.json,
        )
            .into_response(),
    }
}
