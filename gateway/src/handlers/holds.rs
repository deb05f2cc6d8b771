//! Placing and releasing holds.

use axum::{extract::State, Json};
use boxoffice_domain::{
    holds::{self, Hold, HoldRequest},
    ids::ScheduleId,
};
use http::StatusCode;
use serde::Deserialize;

use crate::{
    extract::{Admitted, AuthUser, HoldPath, JsonBody, PathId},
    problem::ApiResult,
    state::AppState,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldBody {
    seat_ids: Option<Vec<i64>>,
    section_id: Option<i64>,
    quantity: Option<i64>,
}

/// `POST /api/v1/schedules/{scheduleId}/holds` with `{seatIds}` or `{sectionId, quantity}`.
#[tracing::instrument(level = "debug", skip_all, fields(schedule = id.0, user = %admitted.user))]
pub async fn place(
    State(state): State<AppState>,
    admitted: Admitted,
    id: PathId,
    JsonBody(body): JsonBody<HoldBody>,
) -> ApiResult<(StatusCode, Json<Hold>)> {
    let request = HoldRequest::parse(body.seat_ids, body.section_id, body.quantity)?;
    let schedule = state
        .caches
        .schedule(&state.pg, ScheduleId::new(id.0))
        .await?;
    admitted.require(schedule.concert)?;
    let seats = state.caches.seats(&state.pg, schedule.id).await?;
    // Safe to drop midway (the client went away): every step is one atomic write, the hold
    // itself is placed by the batch's task once handed over, and a registration without a
    // hold is harmless (holds::place).
    let (hold, footprint) =
        holds::place(state.store(), &schedule, &seats, admitted.user, request).await?;
    state
        .caches
        .evict(schedule.concert, &footprint, false)
        .await;
    Ok((StatusCode::CREATED, Json(hold)))
}

/// `DELETE /api/v1/holds/{holdId}`: the owner's access token is enough (the hold proves
/// admission); another user's hold is 404.
#[tracing::instrument(skip_all, fields(hold = %hold, user = %user))]
pub async fn release(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    HoldPath(hold): HoldPath,
) -> ApiResult<StatusCode> {
    let footprint = holds::release(state.store(), user, hold).await?;
    state.caches.evict(hold.concert(), &footprint, false).await;
    Ok(StatusCode::NO_CONTENT)
}
