//! Sign-up.

use axum::{extract::State, Json};
use boxoffice_domain::identity::{pg, UserName};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::{extract::JsonBody, problem::ApiResult, state::AppState};

#[derive(Deserialize)]
pub struct SignUp {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedUp {
    user_id: i64,
    access_token: String,
}

/// `POST /api/v1/users`
#[tracing::instrument(skip_all)]
pub async fn sign_up(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SignUp>,
) -> ApiResult<(StatusCode, Json<SignedUp>)> {
    let name = UserName::parse(&body.name)?;
    let user = pg::create_user(&state.pg, &name).await?;
    let access_token = state.access.issue(user);
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            user_id: user.get(),
            access_token,
        }),
    ))
}
