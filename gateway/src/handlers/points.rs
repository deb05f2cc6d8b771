//! Balance and charges.

use axum::{extract::State, Json};
use boxoffice_domain::points::{pg, Balance, Points};
use serde::Deserialize;

use crate::{
    extract::{AuthUser, JsonBody, OptionalIdempotencyKey},
    problem::ApiResult,
    state::AppState,
};

/// `GET /api/v1/me/points`
#[tracing::instrument(skip_all, fields(user = %user.0))]
pub async fn balance(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Balance>> {
    Ok(Json(pg::balance(&state.pg, user.0).await?))
}

#[derive(Deserialize)]
pub struct Charge {
    /// Kept as raw JSON so that `1.5` or `"10"` is an INVALID_AMOUNT, not a parse error.
    #[serde(default)]
    amount: serde_json::Value,
}

/// `POST /api/v1/me/points/charges`
#[tracing::instrument(skip_all, fields(user = %user.0))]
pub async fn charge(
    State(state): State<AppState>,
    user: AuthUser,
    OptionalIdempotencyKey(key): OptionalIdempotencyKey,
    JsonBody(body): JsonBody<Charge>,
) -> ApiResult<Json<Balance>> {
    let amount = Points::parse_charge(&body.amount)?;
    Ok(Json(
        pg::charge(&state.pg, user.0, amount, key.as_ref()).await?,
    ))
}
