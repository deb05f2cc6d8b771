//! Liveness, readiness and metrics.

use axum::{extract::State, response::IntoResponse};
use http::StatusCode;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 while this replica wants traffic and reaches Redis and Postgres.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.is_accepting() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    let redis = async {
        use fred::interfaces::ClientLike;
        state.hot.pool.next().ping::<String>(None).await.is_ok()
    };
    let pg = async {
        match state.pg.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    let timeout = std::time::Duration::from_secs(1);
    match tokio::time::timeout(timeout, async { tokio::join!(redis, pg) }).await {
        Ok((true, true)) => (StatusCode::OK, "ready"),
        Ok((false, _)) => (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable"),
        Ok((_, false)) => (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency check timed out",
        ),
    }
}

/// `GET /hello`: the baseline route the benchmarks compare every path against. It does as
/// little as a route can (no auth, no I/O) so the ratio measures our work, not the stack's.
pub async fn hello() -> &'static str {
    "hello"
}
