//! DAGs: list, get, pause/unpause, details and tasks.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::store::DagRecord;

use super::{Page, order_by};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{
    DagCollection, DagDetailsResponse, DagResponse, DagVersionResponse, TaskCollection,
    TaskResponse,
};

/// Filters of the DAG list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagListParams {
    /// Sort by `dag_id`, `fileloc`, `is_paused` or `last_parsed_time` (`-` for descending).
    pub order_by: Option<String>,
    /// Only DAGs with every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only DAGs of these owners.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Only DAG ids containing this text (case-insensitive; `%` matches anything).
    pub dag_id_pattern: Option<String>,
    /// Only paused (true) or unpaused (false) DAGs.
    pub paused: Option<bool>,
    /// Leave out DAGs whose file is gone (default true).
    pub exclude_stale: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
enum DagOrder {
    DagId,
    Fileloc,
    IsPaused,
    LastParsed,
}

/// The DAGs.
#[utoipa::path(get, path = "/api/v2/dags", tag = "DAG", params(Page, DagListParams),
    responses((status = 200, body = DagCollection), ReadErrors))]
pub async fn list_dags(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<DagListParams>,
) -> ApiResult<Json<DagCollection>> {
    page.bounds()?;
    let order = order_by(
        p.order_by.as_deref(),
        &[
            ("dag_id", DagOrder::DagId),
            ("fileloc", DagOrder::Fileloc),
            ("is_paused", DagOrder::IsPaused),
            ("last_parsed_time", DagOrder::LastParsed),
        ],
    )?;
    let pattern = p
        .dag_id_pattern
        .as_deref()
        .map(|s| s.replace('%', "").to_lowercase());
    let mut dags: Vec<DagRecord> = state
        .scheduler
        .store()
        .list_dags()
        .await?
        .into_iter()
        .filter(|d| !(p.exclude_stale.unwrap_or(true) && d.is_stale))
        .filter(|d| p.paused.is_none_or(|paused| d.is_paused == paused))
        .filter(|d| {
            let tags = d.tag_list();
            p.tags.iter().all(|t| tags.contains(t))
        })
        .filter(|d| p.owners.is_empty() || d.owner.as_ref().is_some_and(|o| p.owners.contains(o)))
        .filter(|d| {
            pattern
                .as_ref()
                .is_none_or(|pat| d.dag_id.to_lowercase().contains(pat.as_str()))
        })
        .collect();
    if let Some((key, desc)) = order {
        dags.sort_by(|a, b| {
            let o = match key {
                DagOrder::DagId => a.dag_id.cmp(&b.dag_id),
                DagOrder::Fileloc => a.fileloc.cmp(&b.fileloc),
                DagOrder::IsPaused => a.is_paused.cmp(&b.is_paused),
                DagOrder::LastParsed => a.last_parsed_at.cmp(&b.last_parsed_at),
            };
            if desc { o.reverse() } else { o }
        });
    }
    let total = i64::try_from(dags.len()).unwrap_or(i64::MAX);
    let errors = error_files(&state).await?;
    let mut out = Vec::new();
    for d in page.slice(dags)? {
        out.push(dag_response(&state, &d, &errors).await?);
    }
    Ok(Json(DagCollection {
        dags: out,
        total_entries: total,
    }))
}

/// The files with import errors.
async fn error_files(state: &AppState) -> ApiResult<HashSet<String>> {
    Ok(state
        .scheduler
        .store()
        .list_import_errors()
        .await?
        .into_iter()
        .map(|e| e.filename)
        .collect())
}

async fn dag_response(
    state: &AppState,
    d: &DagRecord,
    errors: &HashSet<String>,
) -> ApiResult<DagResponse> {
    let def = state.scheduler.dag_version(d.latest_version_id).await?;
    Ok(DagResponse::new(
        d,
        &def,
        errors.contains(&d.fileloc),
        state.scheduler.now(),
    ))
}

/// One DAG.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}", tag = "DAG",
    params(("dag_id" = String, Path, description = "The DAG id")),
    responses((status = 200, body = DagResponse), ReadErrors))]
pub async fn get_dag(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<DagResponse>> {
    let d = state.scheduler.store().get_dag(&dag_id).await?;
    Ok(Json(
        dag_response(&state, &d, &error_files(&state).await?).await?,
    ))
}

/// What can be changed on a DAG.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DagPatchBody {
    /// Pause (true) or unpause (false).
    pub is_paused: bool,
}

/// Pauses or unpauses a DAG (operator).
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}", tag = "DAG",
    params(("dag_id" = String, Path, description = "The DAG id")),
    request_body = DagPatchBody,
    responses((status = 200, body = DagResponse), WriteErrors))]
pub async fn patch_dag(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(dag_id): Path<String>,
    Body(body): Body<DagPatchBody>,
) -> ApiResult<Json<DagResponse>> {
    let store = state.scheduler.store();
    if body.is_paused {
        state.scheduler.pause(&dag_id, &who.name).await?;
    } else {
        state.scheduler.unpause(&dag_id, &who.name).await?;
    }
    let d = store.get_dag(&dag_id).await?;
    Ok(Json(
        dag_response(&state, &d, &error_files(&state).await?).await?,
    ))
}

/// A DAG with its schedule, dates, params and latest version.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/details", tag = "DAG",
    params(("dag_id" = String, Path, description = "The DAG id")),
    responses((status = 200, body = DagDetailsResponse), ReadErrors))]
pub async fn dag_details(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<DagDetailsResponse>> {
    let store = state.scheduler.store();
    let d = store.get_dag(&dag_id).await?;
    let def = state.scheduler.dag_version(d.latest_version_id).await?;
    let version = store.get_version(d.latest_version_id).await?;
    let dag = dag_response(&state, &d, &error_files(&state).await?).await?;
    Ok(Json(DagDetailsResponse::new(
        dag,
        &def,
        Some(DagVersionResponse::from(&version)),
    )))
}

/// The tasks of a DAG's latest version, in dependency order.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/tasks", tag = "Task",
    params(("dag_id" = String, Path, description = "The DAG id")),
    responses((status = 200, body = TaskCollection), ReadErrors))]
pub async fn list_tasks(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<TaskCollection>> {
    let (_, def) = state.scheduler.latest_dag(&dag_id).await?;
    let tasks: Vec<TaskResponse> = def
        .graph
        .topological_order()
        .iter()
        .filter_map(|&i| TaskResponse::new(&def, i))
        .collect();
    Ok(Json(TaskCollection {
        total_entries: i64::try_from(tasks.len()).unwrap_or(i64::MAX),
        tasks,
    }))
}

/// One task of a DAG's latest version.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/tasks/{task_id}", tag = "Task",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("task_id" = String, Path, description = "The task id")),
    responses((status = 200, body = TaskResponse), ReadErrors))]
pub async fn get_task(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, task_id)): Path<(String, String)>,
) -> ApiResult<Json<TaskResponse>> {
    let (_, def) = state.scheduler.latest_dag(&dag_id).await?;
    def.tasks
        .get_index_of(task_id.as_str())
        .and_then(|i| TaskResponse::new(&def, i))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("task `{task_id}` of DAG `{dag_id}` not found")))
}
