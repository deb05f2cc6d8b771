//! Paying for a hold, and the caller's reservations.

use axum::{extract::State, Json};
use boxoffice_domain::payments::{self, Payment, Reservations};
use http::StatusCode;

use crate::{
    extract::{AuthUser, HoldPath, RequiredIdempotencyKey},
    problem::ApiResult,
    state::AppState,
};

/// `POST /api/v1/holds/{holdId}/payment` (Idempotency-Key required). A retry with the same
/// key answers the same body. The payment joins this replica's next batch, which runs to the
/// end even if the client goes away.
#[tracing::instrument(skip_all, fields(hold = %hold, user = %user))]
pub async fn pay(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    RequiredIdempotencyKey(key): RequiredIdempotencyKey,
    HoldPath(hold): HoldPath,
) -> ApiResult<(StatusCode, Json<Payment>)> {
    let paid = state.payments.pay(user, hold, key).await?;
    state.caches.after_payment(user, &paid).await;
    Ok((StatusCode::CREATED, Json(paid.payment)))
}

/// `GET /api/v1/me/reservations`: the caller's confirmed reservations only.
#[tracing::instrument(skip_all, fields(user = %user))]
pub async fn reservations(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> ApiResult<Json<Reservations>> {
    Ok(Json(payments::pg::reservations(&state.pg, user).await?))
}
