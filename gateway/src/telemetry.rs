//! Per-route HTTP metrics: a latency histogram and a status counter for every request.

use std::time::Instant;

use axum::{extract::MatchedPath, extract::Request, middleware::Next, response::Response};

/// Records `boxoffice_http_request_duration_seconds{route,method}` and
/// `boxoffice_http_requests_total{route,method,status}`. The route is the matched pattern
/// (`/api/v1/concerts/{concert_id}`), never the raw path, so label cardinality stays bounded.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
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
