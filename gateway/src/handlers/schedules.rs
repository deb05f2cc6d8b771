//! Dates, sections and seat maps (ACTIVE): served from the replica's caches.

use axum::{
    extract::{Query, State},
    response::Response,
};
use boxoffice_domain::{
    ids::{ConcertId, ScheduleId, SectionId},
    Error,
};
use serde::Deserialize;

use super::json;
use crate::{
    extract::{AcceptsGzip, Admitted, PathId},
    problem::ApiResult,
    state::AppState,
};

/// `GET /api/v1/concerts/{concertId}/schedules`
#[tracing::instrument(level = "debug", skip_all, fields(concert = id.0, user = %admitted.user))]
pub async fn dates(
    State(state): State<AppState>,
    admitted: Admitted,
    id: PathId,
    gzip: AcceptsGzip,
) -> ApiResult<Response> {
    let concert = ConcertId::new(id.0);
    admitted.require(concert)?;
    Ok(json(state.caches.dates(&state.pg, concert).await?, gzip))
}

/// `GET /api/v1/schedules/{scheduleId}/sections`
#[tracing::instrument(level = "debug", skip_all, fields(schedule = id.0, user = %admitted.user))]
pub async fn sections(
    State(state): State<AppState>,
    admitted: Admitted,
    id: PathId,
    gzip: AcceptsGzip,
) -> ApiResult<Response> {
    let schedule = state
        .caches
        .schedule(&state.pg, ScheduleId::new(id.0))
        .await?;
    admitted.require(schedule.concert)?;
    Ok(json(
        state.caches.sections(state.store(), &schedule).await?,
        gzip,
    ))
}

#[derive(Deserialize)]
pub struct SeatParams {
    section: Option<String>,
}

/// `GET /api/v1/schedules/{scheduleId}/seats?section=ID`
#[tracing::instrument(level = "debug", skip_all, fields(schedule = id.0, user = %admitted.user))]
pub async fn seats(
    State(state): State<AppState>,
    admitted: Admitted,
    id: PathId,
    gzip: AcceptsGzip,
    Query(params): Query<SeatParams>,
) -> ApiResult<Response> {
    let section = params
        .section
        .and_then(|raw| raw.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(SectionId::new)
        .ok_or_else(|| Error::InvalidInput("section must be a section id".into()))?;
    let schedule = state
        .caches
        .schedule(&state.pg, ScheduleId::new(id.0))
        .await?;
    admitted.require(schedule.concert)?;
    let body = state
        .caches
        .seat_map(state.store(), &schedule, section)
        .await?;
    Ok(json(body, gzip))
}
