//! Every route of the public API and of the admin port, in one place.

use axum::{
    extract::{DefaultBodyLimit, State},
    middleware,
    response::IntoResponse,
    routing::{delete, get, post},
    Router,
};
use boxoffice_domain::Error;
use http::header::HeaderName;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{handlers, problem::ApiError, state::AppState, telemetry};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The public API, served on `BOXOFFICE_HTTP_ADDR` behind nginx.
pub fn public(state: AppState) -> Router {
    let api = Router::new()
        .route("/users", post(handlers::users::sign_up))
        .route("/me/points", get(handlers::points::balance))
        .route("/me/points/charges", post(handlers::points::charge))
        .route("/concerts", get(handlers::concerts::list))
        .route("/concerts/{concert_id}", get(handlers::concerts::get))
        .route(
            "/concerts/{concert_id}/queue",
            post(handlers::queue::join)
                .get(handlers::queue::poll)
                .delete(handlers::queue::leave),
        )
        .route(
            "/concerts/{concert_id}/schedules",
            get(handlers::schedules::dates),
        )
        .route(
            "/schedules/{schedule_id}/sections",
            get(handlers::schedules::sections),
        )
        .route(
            "/schedules/{schedule_id}/seats",
            get(handlers::schedules::seats),
        )
        .route(
            "/schedules/{schedule_id}/holds",
            post(handlers::holds::place),
        )
        .route("/holds/{hold_id}", delete(handlers::holds::release))
        .route("/holds/{hold_id}/payment", post(handlers::payments::pay))
        .route("/me/reservations", get(handlers::payments::reservations));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .route("/hello", get(handlers::health::hello))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(middleware::from_fn(telemetry::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// The admin port: metrics and operations, never proxied by the public nginx server.
pub fn admin(state: AppState, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .route(
            "/admin/concerts/{concert_id}/queue-policy",
            get(handlers::admin::get_policy).put(handlers::admin::put_policy),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(middleware::from_fn(telemetry::track))
        .with_state(state)
}

async fn not_found(State(_): State<AppState>) -> impl IntoResponse {
    ApiError(Error::RouteNotFound)
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError(Error::MethodNotAllowed)
}
