//! Logging in: a user name and password for a short-lived access token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Body, ErrorBody};

/// Credentials.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// An access token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Use as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Exchanges a user name and password for an access token (a JWT).
#[utoipa::path(post, path = "/auth/token", tag = "Auth", security(()), request_body = LoginBody,
    responses((status = 201, body = LoginResponse),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Body(body): Body<LoginBody>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    let Some((_, token)) = crate::auth::log_in(&state, &body.username, body.password).await? else {
        return Err(ApiError::unauthorized("invalid username or password"));
    };
    let ttl = state.auth.ttl();
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            access_token: token,
            token_type: "bearer".into(),
            expires_in: ttl.num_seconds(),
        }),
    ))
}
