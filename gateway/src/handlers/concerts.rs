//! Concert listing and detail.

use axum::{
    extract::{Query, State},
    response::Response,
    Json,
};
use boxoffice_domain::{
    concerts::{pg, ConcertPage, PageRequest},
    ids::ConcertId,
};
use serde::Deserialize;

use super::json;
use crate::{
    extract::{AcceptsGzip, PathId},
    problem::ApiResult,
    state::AppState,
};

#[derive(Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/concerts`
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<ConcertPage>> {
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit.as_deref())?;
    Ok(Json(pg::list(&state.pg, page).await?))
}

/// `GET /api/v1/concerts/{concertId}`
#[tracing::instrument(skip_all, fields(concert = id.0))]
pub async fn get(
    State(state): State<AppState>,
    id: PathId,
    gzip: AcceptsGzip,
) -> ApiResult<Response> {
    let view = state
        .caches
        .concert(&state.pg, ConcertId::new(id.0))
        .await?;
    Ok(json(view, gzip))
}
