//! Per-route HTTP metrics (a latency histogram and a status counter for every request) and
//! the per-concert waiting-room metrics.

use std::time::Instant;

use axum::{extract::MatchedPath, extract::Request, middleware::Next, response::Response};
use boxoffice_domain::{
    ids::ConcertId,
    telemetry::{ConcertLabel, ConcertLabels},
    Error,
};

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

/// The waiting-room metrics of one concert: `boxoffice_queue_{join,poll}_duration_seconds{concert}`
/// and `boxoffice_queue_{joins,polls}_total{concert,outcome}`.
///
/// Recorded through the registry on every event rather than through handles kept per concert:
/// a sale touches thousands of concerts, and the gateway's recorder drops series idle for
/// [`IDLE_METRICS`] so `/metrics` only carries the concerts in play; a kept handle would
/// outlive its series and record into nothing (metrics-rs issue #372). A lookup costs a
/// fraction of a microsecond, well under 1 % of a poll.
///
/// The label is the concert's id while it holds one of the limited label slots (see
/// [`ConcertLabels`]), `other` beyond them.
pub struct ConcertMetrics {
    concert: ConcertLabel,
}

/// How long a gateway series may go without an update before the recorder drops it. Long
/// enough to outlast any scrape interval and dashboard rate window.
pub const IDLE_METRICS: std::time::Duration = std::time::Duration::from_secs(600);

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

/// How a join or poll ended, as the `outcome` label.
fn outcome_label(outcome: Result<Outcome, &Error>) -> &'static str {
    match outcome {
        Ok(Outcome::New) => "new",
        Ok(Outcome::Again) => "again",
        Ok(Outcome::Waiting) => "waiting",
        Ok(Outcome::Active) => "active",
        Err(Error::QueuePlaceLost) => "lost",
        Err(Error::QueueTokenMismatch | Error::InvalidQueueToken) => "refused",
        Err(Error::ConcertNotOnSale) => "not_on_sale",
        Err(_) => "error",
    }
}

impl ConcertMetrics {
    /// The metrics of `concert`, labelled from `labels`.
    pub fn new(concert: ConcertId, labels: &ConcertLabels) -> Self {
        Self {
            concert: labels.label(concert),
        }
    }

    fn label(&self) -> String {
        self.concert.value().to_owned()
    }

    /// Records a join that started at `start`.
    pub fn join(&self, start: Instant, outcome: Result<Outcome, &Error>) {
        metrics::histogram!("boxoffice_queue_join_duration_seconds", "concert" => self.label())
            .record(start.elapsed().as_secs_f64());
        metrics::counter!("boxoffice_queue_joins_total", "concert" => self.label(), "outcome" => outcome_label(outcome))
            .increment(1);
    }

    /// Records a poll that started at `start`.
    pub fn poll(&self, start: Instant, outcome: Result<Outcome, &Error>) {
        metrics::histogram!("boxoffice_queue_poll_duration_seconds", "concert" => self.label())
            .record(start.elapsed().as_secs_f64());
        metrics::counter!("boxoffice_queue_polls_total", "concert" => self.label(), "outcome" => outcome_label(outcome))
            .increment(1);
    }
}
