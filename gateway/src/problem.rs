//! The only place a domain [`Error`] becomes an HTTP response: RFC 9457
//! `application/problem+json` with `{type, title, status, detail, code}`.
//!
//! The match below is exhaustive, so a new error variant does not compile until it has a
//! status. Dependency failures become 503 with `Retry-After`; 5xx bodies never carry the
//! cause, which is logged here once with its whole chain.

use axum::response::{IntoResponse, Response};
use boxoffice_domain::{error::Origin, Error};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// The problem document.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'a str,
}

/// Status and title of each error.
fn status_of(error: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        Error::InvalidInput(_) => (S::BAD_REQUEST, "Invalid input"),
        Error::InvalidAmount { .. } => (S::BAD_REQUEST, "Invalid amount"),
        Error::IdempotencyKeyRequired => (S::BAD_REQUEST, "Idempotency key required"),
        Error::Unauthorized => (S::UNAUTHORIZED, "Unauthorized"),
        Error::InvalidQueueToken => (S::UNAUTHORIZED, "Invalid queue token"),
        Error::InsufficientPoints { .. } => (S::PAYMENT_REQUIRED, "Insufficient points"),
        Error::QueueTokenMismatch => (S::FORBIDDEN, "Queue token mismatch"),
        Error::QueueNotActive => (S::FORBIDDEN, "Queue not active"),
        Error::SaleNotOpen => (S::FORBIDDEN, "Sale not open"),
        Error::AdminOnly => (S::FORBIDDEN, "Admin only"),
        Error::RouteNotFound => (S::NOT_FOUND, "Not found"),
        Error::ConcertNotFound => (S::NOT_FOUND, "Concert not found"),
        Error::ScheduleNotFound => (S::NOT_FOUND, "Schedule not found"),
        Error::SectionNotFound => (S::NOT_FOUND, "Section not found"),
        Error::HoldNotFound => (S::NOT_FOUND, "Hold not found"),
        Error::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "Method not allowed"),
        Error::ConcertNotOnSale => (S::CONFLICT, "Concert not on sale"),
        Error::SeatUnavailable => (S::CONFLICT, "Seat unavailable"),
        Error::SoldOut => (S::CONFLICT, "Sold out"),
        Error::HoldAlreadyPaid => (S::CONFLICT, "Hold already paid"),
        Error::HoldExpired => (S::GONE, "Hold expired"),
        Error::QueuePlaceLost => (S::GONE, "Queue place lost"),
        Error::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "Payload too large"),
        Error::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
        Error::HoldLimitExceeded { .. } => (S::UNPROCESSABLE_ENTITY, "Hold limit exceeded"),
        Error::IdempotencyKeyReused => (S::UNPROCESSABLE_ENTITY, "Idempotency key reused"),
        Error::RateLimited => (S::TOO_MANY_REQUESTS, "Too many requests"),
        Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, "Internal error"),
        Error::Unavailable { .. } => (S::SERVICE_UNAVAILABLE, "Service unavailable"),
    }
}

/// Renders `error` as problem+json.
pub fn render(error: &Error) -> Response {
    let (status, title) = status_of(error);
    let detail = match error.origin() {
        Origin::Client => error.to_string(),
        Origin::Dependency => {
            tracing::warn!(code = error.code(), error = %error.report(), "dependency unavailable");
            "a dependency is briefly unavailable; retry shortly".to_owned()
        }
        Origin::Internal => {
            tracing::error!(code = error.code(), error = %error.report(), "internal error");
            "internal error".to_owned()
        }
    };
    let code = error.code();
    let body = Problem {
        kind: format!(
            "https://boxoffice.dev/problems/{}",
            code.to_ascii_lowercase().replace('_', "-")
        ),
        title,
        status: status.as_u16(),
        detail,
        code,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    match error {
        Error::Unavailable { .. } | Error::RateLimited => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Error::Unauthorized => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        render(&self.0)
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
