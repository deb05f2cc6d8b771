//! The waiting room: join, poll, leave (contract §3). The poll is the dominant request of an
//! on-sale: it verifies two signatures and reads the replica's cached admission state, with no
//! Redis I/O unless the user's place just reached the front.
//!
//! The spans of join and poll are at DEBUG: at the default INFO filter an enabled span costs
//! the fmt layer an allocation and a formatting of its fields on every request, which at tens
//! of thousands of polls a second is a measurable share of the poll's own work. `RUST_LOG=
//! boxoffice_gateway=debug` brings them back.

use axum::{extract::State, Extension, Json};
use boxoffice_domain::{
    ids::ConcertId,
    queue::{QueueStatus, Standing},
    Error,
};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;

use crate::{
    extract::{AuthUser, PathId, QueueHolder, QueueTokenHeader},
    problem::ApiResult,
    state::AppState,
    telemetry::{Outcome, RequestStart},
};

/// The body of a join or poll.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReply {
    queue_token: String,
    status: QueueStatus,
    /// Places between the front of the line and this one (1 = next; 0 when ACTIVE).
    position: i64,
    eta_seconds: i64,
    poll_after_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_until: Option<DateTime<Utc>>,
}

impl From<Standing> for QueueReply {
    fn from(standing: Standing) -> Self {
        match standing {
            Standing::Waiting {
                token,
                position,
                eta_ms,
                poll_after_ms,
            } => Self {
                queue_token: token,
                status: QueueStatus::Waiting,
                position,
                eta_seconds: (eta_ms + 999) / 1000,
                poll_after_ms,
                active_until: None,
            },
            Standing::Active {
                token,
                until_ms,
                poll_after_ms,
            } => Self {
                queue_token: token,
                status: QueueStatus::Active,
                position: 0,
                eta_seconds: 0,
                poll_after_ms,
                active_until: DateTime::from_timestamp_millis(until_ms),
            },
        }
    }
}

fn outcome(standing: &Standing) -> Outcome {
    match standing {
        Standing::Waiting { .. } => Outcome::Waiting,
        Standing::Active { .. } => Outcome::Active,
    }
}

/// `POST /api/v1/concerts/{concertId}/queue`: 201 with a new place, 200 with the one the user
/// already has.
#[tracing::instrument(level = "debug", skip_all, fields(concert = id.0, user = %user.0))]
pub async fn join(
    State(state): State<AppState>,
    Extension(RequestStart(start)): Extension<RequestStart>,
    user: AuthUser,
    id: PathId,
) -> ApiResult<(StatusCode, Json<QueueReply>)> {
    let concert = ConcertId::new(id.0);
    let window = state.caches.concert_windows.get(&state.pg, concert).await?;
    let (watch, snapshot) = state.caches.queue.get(concert).await?;
    let joined = state
        .room
        .join(concert, window, user.0, &snapshot.view)
        .await;
    watch.metrics.join(
        start,
        joined.as_ref().map(|j| match (j.created, &j.standing) {
            (true, _) => Outcome::New,
            (false, Standing::Active { .. }) => Outcome::Active,
            (false, Standing::Waiting { .. }) => Outcome::Again,
        }),
    );
    let joined = joined?;
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(joined.standing.into())))
}

/// `GET /api/v1/concerts/{concertId}/queue` with `Queue-Token`: where the user stands. 410
/// QUEUE_PLACE_LOST when the place is gone (left, skipped as abandoned, session over).
#[tracing::instrument(level = "debug", skip_all, fields(concert = id.0, user = %holder.0.user))]
pub async fn poll(
    State(state): State<AppState>,
    Extension(RequestStart(start)): Extension<RequestStart>,
    holder: QueueHolder,
    QueueTokenHeader(token): QueueTokenHeader,
    id: PathId,
) -> ApiResult<Json<QueueReply>> {
    let (concert, pass) = (ConcertId::new(id.0), holder.0);
    pass.require_concert(concert)?;
    let (watch, snapshot) = state.caches.queue.get(concert).await?;
    let ended = state
        .caches
        .ended_sessions
        .has_ended(concert, pass.user, pass.since_ms);
    let standing = state
        .room
        .poll(concert, &pass, &token, &snapshot.view, ended)
        .await;
    watch
        .metrics
        .poll(start, standing.as_ref().map(outcome).map_err(|e: &Error| e));
    Ok(Json(standing?.into()))
}

/// `DELETE /api/v1/concerts/{concertId}/queue` with `Queue-Token`: gives the place up; an
/// ACTIVE session ends and frees its capacity. 204, also when there was nothing left to give.
#[tracing::instrument(skip_all, fields(concert = id.0, user = %holder.0.user))]
pub async fn leave(
    State(state): State<AppState>,
    holder: QueueHolder,
    id: PathId,
) -> ApiResult<StatusCode> {
    let (concert, pass) = (ConcertId::new(id.0), holder.0);
    let left = state.room.leave(concert, &pass).await?;
    // This replica refuses the user's older tokens at once; the others within a second.
    state
        .caches
        .ended_sessions
        .record(concert, pass.user, left.ended_at_ms);
    Ok(StatusCode::NO_CONTENT)
}
