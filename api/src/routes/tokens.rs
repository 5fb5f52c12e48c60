//! Long-lived API tokens (admin): create (the token is shown once), list, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_core::access::{Role, TokenRecord};
use weir_core::store::{AuditAction, AuditEntry};

use crate::AppState;
use crate::auth::{Admin, tokens};
use crate::error::{ApiError, ApiResult, Body, Path, ReadErrors, WriteErrors};

/// An API token, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenResponse {
    pub id: String,
    pub description: Option<String>,
    /// `viewer`, `operator`, `admin` or `worker`.
    pub role: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&TokenRecord> for TokenResponse {
    fn from(t: &TokenRecord) -> Self {
        TokenResponse {
            id: t.id.clone(),
            description: t.description.clone(),
            role: t.role.as_str().into(),
            created_by: t.created_by.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// API tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenCollection {
    pub tokens: Vec<TokenResponse>,
    pub total_entries: i64,
}

/// Every API token.
#[utoipa::path(get, path = "/api/v2/tokens", tag = "Token",
    responses((status = 200, body = TokenCollection), ReadErrors))]
pub async fn list_tokens(
    State(state): State<AppState>,
    _: Admin,
) -> ApiResult<Json<TokenCollection>> {
    let all = state.scheduler.store().list_tokens().await?;
    Ok(Json(TokenCollection {
        total_entries: i64::try_from(all.len()).unwrap_or(i64::MAX),
        tokens: all.iter().map(TokenResponse::from).collect(),
    }))
}

/// A token to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TokenBody {
    /// `viewer`, `operator`, `admin` or `worker`.
    pub role: String,
    /// What it is for.
    pub description: Option<String>,
    /// When it stops working (default: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token just created: `token` is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewTokenResponse {
    /// Use as `Authorization: Bearer <token>`.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenResponse,
}

/// Creates an API token (admin).
#[utoipa::path(post, path = "/api/v2/tokens", tag = "Token", request_body = TokenBody,
    responses((status = 201, body = NewTokenResponse), WriteErrors))]
pub async fn create_token(
    State(state): State<AppState>,
    Admin(who): Admin,
    Body(body): Body<TokenBody>,
) -> ApiResult<(StatusCode, Json<NewTokenResponse>)> {
    let role: Role = body
        .role
        .parse()
        .map_err(|e: String| ApiError::unprocessable(format!("role: {e}")))?;
    let now = state.scheduler.now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unprocessable("expires_at: must be in the future"));
    }
    let new = tokens::generate(role, body.description, &who.name, body.expires_at, now)
        .map_err(|e| ApiError::internal(&e))?;
    let store = state.scheduler.store();
    store.create_token(&new.record).await?;
    store
        .audit(&AuditEntry::about(
            &who.name,
            AuditAction::CreateToken,
            serde_json::json!({"token": new.record.id, "role": role.as_str()}),
            now,
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenResponse {
            token: new.token,
            info: TokenResponse::from(&new.record),
        }),
    ))
}

/// Revokes an API token (admin); it is refused from now on.
#[utoipa::path(delete, path = "/api/v2/tokens/{token_id}", tag = "Token",
    params(("token_id" = String, Path, description = "The token's id")),
    responses((status = 204), WriteErrors))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let store = state.scheduler.store();
    let now = state.scheduler.now();
    store.revoke_token(&id, now).await?;
    store
        .audit(&AuditEntry::about(
            &who.name,
            AuditAction::RevokeToken,
            serde_json::json!({"token": id}),
            now,
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
