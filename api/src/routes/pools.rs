//! Pools: named slot limits shared by task instances.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use weir_core::store::{AuditAction, AuditEntry};

use super::Page;
use crate::AppState;
use crate::auth::{Admin, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{PoolCollection, PoolResponse};

/// Every pool with its occupancy.
#[utoipa::path(get, path = "/api/v2/pools", tag = "Pool", params(Page),
    responses((status = 200, body = PoolCollection), ReadErrors))]
pub async fn list_pools(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
) -> ApiResult<Json<PoolCollection>> {
    let all = state.scheduler.store().list_pools().await?;
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    Ok(Json(PoolCollection {
        pools: page.slice(all)?.iter().map(PoolResponse::from).collect(),
        total_entries: total,
    }))
}

async fn find(state: &AppState, name: &str) -> ApiResult<PoolResponse> {
    state
        .scheduler
        .store()
        .list_pools()
        .await?
        .iter()
        .find(|p| p.name == name)
        .map(PoolResponse::from)
        .ok_or_else(|| ApiError::not_found(format!("pool `{name}` not found")))
}

/// One pool.
#[utoipa::path(get, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path, description = "The pool")),
    responses((status = 200, body = PoolResponse), ReadErrors))]
pub async fn get_pool(
    State(state): State<AppState>,
    _: Viewer,
    Path(name): Path<String>,
) -> ApiResult<Json<PoolResponse>> {
    Ok(Json(find(&state, &name).await?))
}

/// A new pool.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PoolBody {
    /// Letters, digits, `_`, `-` and `.`; at most 256 characters.
    pub name: String,
    /// Slots (0 or more).
    pub slots: i64,
    /// What it is for.
    pub description: Option<String>,
    /// Must be false: weir has no deferred tasks.
    #[serde(default)]
    pub include_deferred: bool,
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "pool name `{name}`: use 1 to 256 letters, digits, `_`, `-` or `.`"
        )))
    }
}

fn check_slots(slots: i64) -> ApiResult<()> {
    if (0..=1_000_000).contains(&slots) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "slots {slots}: must be between 0 and 1000000"
        )))
    }
}

async fn audit(
    state: &AppState,
    who: &str,
    action: AuditAction,
    detail: serde_json::Value,
) -> ApiResult<()> {
    state
        .scheduler
        .store()
        .audit(&AuditEntry {
            at: state.scheduler.now(),
            actor: who.to_owned(),
            action,
            dag_id: None,
            run_id: None,
            task_id: None,
            detail: Some(detail.to_string()),
        })
        .await?;
    Ok(())
}

/// Creates a pool (admin).
#[utoipa::path(post, path = "/api/v2/pools", tag = "Pool", request_body = PoolBody,
    responses((status = 201, body = PoolResponse), WriteErrors))]
pub async fn create_pool(
    State(state): State<AppState>,
    Admin(who): Admin,
    Body(body): Body<PoolBody>,
) -> ApiResult<(StatusCode, Json<PoolResponse>)> {
    check_name(&body.name)?;
    check_slots(body.slots)?;
    if body.include_deferred {
        return Err(ApiError::unprocessable(
            "include_deferred: weir has no deferred tasks",
        ));
    }
    let store = state.scheduler.store();
    if store
        .list_pools()
        .await?
        .iter()
        .any(|p| p.name == body.name)
    {
        return Err(ApiError::conflict(format!(
            "pool `{}` already exists",
            body.name
        )));
    }
    store
        .upsert_pool(&body.name, body.slots, body.description.as_deref())
        .await?;
    audit(
        &state,
        &who.name,
        AuditAction::CreatePool,
        serde_json::json!({"pool": body.name, "slots": body.slots}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(find(&state, &body.name).await?)))
}

/// Changes to a pool.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PoolPatchBody {
    /// New slots.
    pub slots: Option<i64>,
    /// New description.
    pub description: Option<String>,
    /// Must be false or absent.
    pub include_deferred: Option<bool>,
}

/// Changes a pool's slots or description (admin).
#[utoipa::path(patch, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path, description = "The pool")),
    request_body = PoolPatchBody,
    responses((status = 200, body = PoolResponse), WriteErrors))]
pub async fn patch_pool(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    Body(body): Body<PoolPatchBody>,
) -> ApiResult<Json<PoolResponse>> {
    let current = find(&state, &name).await?;
    if body.include_deferred == Some(true) {
        return Err(ApiError::unprocessable(
            "include_deferred: weir has no deferred tasks",
        ));
    }
    let slots = body.slots.unwrap_or(current.slots);
    check_slots(slots)?;
    state
        .scheduler
        .store()
        .upsert_pool(&name, slots, body.description.as_deref())
        .await?;
    audit(
        &state,
        &who.name,
        AuditAction::UpdatePool,
        serde_json::json!({"pool": name, "slots": slots}),
    )
    .await?;
    Ok(Json(find(&state, &name).await?))
}

/// Deletes a pool (admin; not `default`).
#[utoipa::path(delete, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path, description = "The pool")),
    responses((status = 204), WriteErrors))]
pub async fn delete_pool(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.scheduler.store().delete_pool(&name).await?;
    audit(
        &state,
        &who.name,
        AuditAction::DeletePool,
        serde_json::json!({"pool": name}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates pool `name` or changes its slots and description (admin; the
/// UI's pool form).
pub(crate) async fn save(
    state: &AppState,
    actor: &str,
    name: &str,
    slots: i64,
    description: Option<&str>,
) -> ApiResult<()> {
    check_name(name)?;
    check_slots(slots)?;
    let store = state.scheduler.store();
    let exists = store.list_pools().await?.iter().any(|p| p.name == name);
    store.upsert_pool(name, slots, description).await?;
    let action = if exists {
        AuditAction::UpdatePool
    } else {
        AuditAction::CreatePool
    };
    audit(
        state,
        actor,
        action,
        serde_json::json!({"pool": name, "slots": slots}),
    )
    .await
}

/// Deletes pool `name` (admin; the UI's delete button).
pub(crate) async fn remove(state: &AppState, actor: &str, name: &str) -> ApiResult<()> {
    state.scheduler.store().delete_pool(name).await?;
    audit(
        state,
        actor,
        AuditAction::DeletePool,
        serde_json::json!({"pool": name}),
    )
    .await
}
