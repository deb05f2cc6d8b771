//! Operations on the admin port (never proxied by nginx): the waiting-room policy of a
//! concert. Gateways and the worker pick a change up within `BOXOFFICE_QUEUE_POLICY_REFRESH_MS`
//! plus one tick (the worker re-reads policies and publishes them in each concert's admission
//! state, which the gateways cache).

use axum::{extract::State, Json};
use boxoffice_domain::{
    ids::ConcertId,
    queue::{pg, QueuePolicy},
};
use serde::Serialize;

use crate::{
    extract::{AdminAuth, JsonBody, PathId},
    problem::ApiResult,
    state::AppState,
};

/// A concert's policy as the admin endpoint shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReply {
    concert_id: ConcertId,
    #[serde(flatten)]
    policy: QueuePolicy,
    /// No row: the built-in default applies.
    is_default: bool,
}

/// `GET /admin/concerts/{concertId}/queue-policy`
#[tracing::instrument(skip_all, fields(concert = id.0))]
pub async fn get_policy(
    State(state): State<AppState>,
    _admin: AdminAuth,
    id: PathId,
) -> ApiResult<Json<PolicyReply>> {
    let concert_id = ConcertId::new(id.0);
    let (policy, is_default) = pg::policy(&state.pg, concert_id).await?;
    Ok(Json(PolicyReply {
        concert_id,
        policy,
        is_default,
    }))
}

/// `PUT /admin/concerts/{concertId}/queue-policy` with
/// `{admitPerSecond, maxActive, sessionSeconds, graceSeconds, shuffleAtOpen}`.
#[tracing::instrument(skip_all, fields(concert = id.0))]
pub async fn put_policy(
    State(state): State<AppState>,
    _admin: AdminAuth,
    id: PathId,
    JsonBody(policy): JsonBody<QueuePolicy>,
) -> ApiResult<Json<PolicyReply>> {
    let concert_id = ConcertId::new(id.0);
    let policy = policy.validate()?;
    pg::put_policy(&state.pg, concert_id, &policy).await?;
    Ok(Json(PolicyReply {
        concert_id,
        policy,
        is_default: false,
    }))
}
