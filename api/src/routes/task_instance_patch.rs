//! Setting task instances' state by hand in Airflow's shape (`PATCH` a task
//! instance, and its dry run): the task, optionally what is upstream or
//! downstream of it, optionally in earlier or later runs.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::state::TaskState;
use weir_core::store::RunRecord;

use crate::AppState;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult, Body, Path, Query, WriteErrors};
use crate::models::TaskInstanceCollection;

use super::task_instances::{instances_of, runs_between};

/// What to set (Airflow's `PatchTaskInstanceBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskInstanceBody {
    /// `success` or `failed`.
    pub new_state: Option<String>,
    /// Refused when given: weir keeps notes on runs, not task instances.
    pub note: Option<String>,
    /// Also every task upstream.
    #[serde(default)]
    pub include_upstream: bool,
    /// Also every task downstream.
    #[serde(default)]
    pub include_downstream: bool,
    /// Also the same tasks in every earlier run (by logical date).
    #[serde(default)]
    pub include_past: bool,
    /// Also the same tasks in every later run (by logical date).
    #[serde(default)]
    pub include_future: bool,
}

/// Query parameters of the patch.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatchParams {
    /// One mapped instance of the task (default -1: the task, all its
    /// mapped instances when it expanded).
    pub map_index: Option<i64>,
    /// The fields to apply; only `new_state` is accepted.
    #[serde(default)]
    pub update_mask: Vec<String>,
}

type TaskPath = (String, String, String);

/// Marks the task instance (and what the body includes) success or failed;
/// answers the task instances that changed (operator, audited).
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"), PatchParams),
    request_body = PatchTaskInstanceBody,
    responses((status = 200, body = TaskInstanceCollection), WriteErrors))]
pub async fn patch_task_instance(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(path): Path<TaskPath>,
    Query(q): Query<PatchParams>,
    Body(body): Body<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    patch(&state, &path, &q, &body, Some(&who.name)).await
}

/// What [`patch_task_instance`] would change, changing nothing (operator).
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"), PatchParams),
    request_body = PatchTaskInstanceBody,
    responses((status = 200, body = TaskInstanceCollection), WriteErrors))]
pub async fn patch_task_instance_dry_run(
    State(state): State<AppState>,
    _: Operator,
    Path(path): Path<TaskPath>,
    Query(q): Query<PatchParams>,
    Body(body): Body<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    patch(&state, &path, &q, &body, None).await
}

/// Sets the state (as `actor`), or only says what would change (`None`).
async fn patch(
    state: &AppState,
    (dag_id, run_id, task_id): &TaskPath,
    q: &PatchParams,
    body: &PatchTaskInstanceBody,
    actor: Option<&str>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    if let Some(field) = q.update_mask.iter().find(|f| f.as_str() != "new_state") {
        return Err(ApiError::unprocessable(format!(
            "update_mask: `{field}` cannot be set; weir sets new_state only"
        )));
    }
    if body.note.is_some() {
        return Err(ApiError::unprocessable(
            "note: weir keeps notes on runs, not on task instances; PATCH the run's note instead",
        ));
    }
    let to = match body.new_state.as_deref() {
        Some("success") => TaskState::Success,
        Some("failed") => TaskState::Failed,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "new_state: a task instance can be set to success or failed, not `{other}`"
            )));
        }
        None => return Err(ApiError::unprocessable("new_state: give success or failed")),
    };
    let store = state.scheduler.store();
    if let Some(map_index) = q.map_index.filter(|i| *i >= 0) {
        return patch_mapped(state, (dag_id, run_id, task_id), map_index, to, body, actor).await;
    }
    let run = store.get_run(dag_id, run_id).await?;
    let dag = state.scheduler.dag_version(run.version_id).await?;
    let Some(i) = dag.tasks.get_index_of(task_id.as_str()) else {
        return Err(ApiError::not_found(format!(
            "task `{task_id}` not found in DAG `{dag_id}`"
        )));
    };
    let mut targets =
        dag.graph
            .with_relatives(&[i], body.include_upstream, body.include_downstream);
    // In dependency order, so a downstream task is set after what it waits for.
    targets.sort_unstable_by_key(|&t| dag.graph.position(t));
    let names: Vec<String> = targets
        .iter()
        .filter_map(|&t| dag.task_at(t).map(|t| t.id.to_string()))
        .collect();
    let mut out = Vec::new();
    for r in runs_reached(state, dag_id, run, body).await? {
        let current = store.list_task_instances(r.id).await?;
        // Tasks the run's version does not have, or already in the state, do not change.
        let changing: Vec<String> = names
            .iter()
            .filter(|n| current.iter().any(|t| &&t.task_id == n && t.state != to))
            .cloned()
            .collect();
        if let Some(actor) = actor {
            for name in &changing {
                state
                    .scheduler
                    .mark(dag_id, &r.run_id, name, to, actor)
                    .await?;
            }
        }
        out.extend(instances_of(state, &r, &changing).await?);
    }
    Ok(Json(TaskInstanceCollection {
        total_entries: i64::try_from(out.len()).unwrap_or(i64::MAX),
        task_instances: out,
    }))
}

/// Sets one mapped instance's state (as `actor`), or only says whether it
/// would change (`None`).
async fn patch_mapped(
    state: &AppState,
    (dag_id, run_id, task_id): (&str, &str, &str),
    map_index: i64,
    to: TaskState,
    body: &PatchTaskInstanceBody,
    actor: Option<&str>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    if body.include_upstream || body.include_downstream || body.include_past || body.include_future
    {
        return Err(ApiError::unprocessable(
            "include_upstream/include_downstream/include_past/include_future set whole tasks: leave out map_index to use them",
        ));
    }
    let store = state.scheduler.store();
    let ti = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    if ti.state == to {
        return Ok(Json(TaskInstanceCollection {
            task_instances: Vec::new(),
            total_entries: 0,
        }));
    }
    if let Some(actor) = actor {
        state
            .scheduler
            .mark_instance(dag_id, run_id, task_id, map_index, to, actor)
            .await?;
    }
    let ti = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    let run = store.get_run_by_pk(ti.run_pk).await?;
    let dag = state.scheduler.dag_version(run.version_id).await?;
    Ok(Json(TaskInstanceCollection {
        task_instances: vec![crate::models::TaskInstanceResponse::new(
            &ti,
            Some(&run),
            Some(&dag),
            None,
        )],
        total_entries: 1,
    }))
}

/// [`patch_task_instance`] for one mapped instance, named in the path (operator, audited).
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("map_index" = i64, Path, description = "The mapped instance (-1: the task)"),
           PatchParams),
    request_body = PatchTaskInstanceBody,
    responses((status = 200, body = TaskInstanceCollection), WriteErrors))]
pub async fn patch_mapped_instance(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path((dag_id, run_id, task_id, map_index)): Path<(String, String, String, i64)>,
    Query(q): Query<PatchParams>,
    Body(body): Body<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let q = PatchParams {
        map_index: Some(map_index),
        ..q
    };
    patch(
        &state,
        &(dag_id, run_id, task_id),
        &q,
        &body,
        Some(&who.name),
    )
    .await
}

/// The run, and every earlier (`include_past`) or later (`include_future`)
/// run of the DAG by logical date.
async fn runs_reached(
    state: &AppState,
    dag_id: &str,
    run: RunRecord,
    body: &PatchTaskInstanceBody,
) -> ApiResult<Vec<RunRecord>> {
    if !body.include_past && !body.include_future {
        return Ok(vec![run]);
    }
    let at = run.logical_date.ok_or_else(|| {
        ApiError::unprocessable(format!(
            "include_past/include_future: run `{}` has no logical date to compare others with",
            run.run_id
        ))
    })?;
    runs_between(
        state,
        dag_id,
        (!body.include_past).then_some(at),
        (!body.include_future).then_some(at),
    )
    .await
}
