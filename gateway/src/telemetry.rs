//! Per-route HTTP metrics (a latency histogram and a status counter for every request) and
//! the per-concert waiting-room metrics.

use std::time::Instant;

use axum::{extract::MatchedPath, extract::Request, middleware::Next, response::Response};
use boxoffice_domain::{concerts::ConcertId, Error};
use metrics::{Counter, Histogram};

/// When the request reached the gateway, so handlers can time their whole request (token
/// checks in the extractors included).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// Records `boxoffice_http_request_duration_seconds{route,method}` and
/// `boxoffice_http_requests_total{route,method,status}`. The route is the matched pattern
/// (`/api/v1/concerts/{concert_id}`), never the raw path, so label cardinality stays bounded.
pub async fn track(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    req.extensions_mut().insert(RequestStart(start));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("boxoffice_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!("boxoffice_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// The waiting-room metrics of one concert, registered once per concert and replica so the
/// poll path records with two atomic operations instead of a registry lookup per request:
/// `boxoffice_queue_{join,poll}_duration_seconds{concert}` and
/// `boxoffice_queue_{joins,polls}_total{concert,outcome}`.
pub struct ConcertMetrics {
    join_seconds: Histogram,
    poll_seconds: Histogram,
    joins: Outcomes,
    polls: Outcomes,
}

/// One counter per outcome.
struct Outcomes {
    new: Counter,
    again: Counter,
    waiting: Counter,
    active: Counter,
    lost: Counter,
    refused: Counter,
    not_on_sale: Counter,
    error: Counter,
}

impl Outcomes {
    fn new(name: &'static str, concert: &str) -> Self {
        let counter = |outcome: &'static str| metrics::counter!(name, "concert" => concert.to_owned(), "outcome" => outcome);
        Self {
            new: counter("new"),
            again: counter("again"),
            waiting: counter("waiting"),
            active: counter("active"),
            lost: counter("lost"),
            refused: counter("refused"),
            not_on_sale: counter("not_on_sale"),
            error: counter("error"),
        }
    }

    fn of(&self, outcome: Result<Outcome, &Error>) -> &Counter {
        match outcome {
            Ok(Outcome::New) => &self.new,
            Ok(Outcome::Again) => &self.again,
            Ok(Outcome::Waiting) => &self.waiting,
            Ok(Outcome::Active) => &self.active,
            Err(Error::QueuePlaceLost) => &self.lost,
            Err(Error::QueueTokenMismatch | Error::InvalidQueueToken) => &self.refused,
            Err(Error::ConcertNotOnSale) => &self.not_on_sale,
            Err(_) => &self.error,
        }
    }
}

/// How a join or poll that succeeded ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A join handed out a new place.
    New,
    /// A join returned the place the user had.
    Again,
    /// A poll answered WAITING.
    Waiting,
    /// A join or poll answered ACTIVE.
    Active,
}

impl ConcertMetrics {
    /// Registers the handles of `concert`.
    pub fn new(concert: ConcertId) -> Self {
        let id = concert.to_string();
        Self {
            join_seconds: metrics::histogram!("boxoffice_queue_join_duration_seconds", "concert" => id.clone()),
            poll_seconds: metrics::histogram!("boxoffice_queue_poll_duration_seconds", "concert" => id.clone()),
            joins: Outcomes::new("boxoffice_queue_joins_total", &id),
            polls: Outcomes::new("boxoffice_queue_polls_total", &id),
        }
    }

    /// Records a join that started at `start`.
    pub fn join(&self, start: Instant, outcome: Result<Outcome, &Error>) {
        self.join_seconds.record(start.elapsed().as_secs_f64());
        self.joins.of(outcome).increment(1);
    }

    /// Records a poll that started at `start`.
    pub fn poll(&self, start: Instant, outcome: Result<Outcome, &Error>) {
        self.poll_seconds.record(start.elapsed().as_secs_f64());
        self.polls.of(outcome).increment(1);
    }
}
