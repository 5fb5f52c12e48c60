//! Task instances: list (per run, or `~` across runs and DAGs), get, the
//! history of tries, and clearing tasks so they run again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::dag::Dag;
use weir_core::scheduler::ClearSpec;
use weir_core::state::TaskState;
use weir_core::store::{
    RunFilter, RunRecord, RunTime, TaskFilter, TaskInstanceRecord, TaskOrder, TaskTime, TimeRange,
};

use super::{Page, date_bounds, durations, every, order_by};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{TaskInstanceCollection, TaskInstanceResponse, TryCollection, TryResponse};

/// Filters of the task-instance list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// Sort by `task_id`, `dag_id`, `run_id`, `state`, `try_number`, `pool`,
    /// `priority_weight`, `start_date`, `end_date` or `updated_at` (`-` for descending).
    pub order_by: Option<String>,
    /// Only these tasks.
    #[serde(default)]
    pub task_id: Vec<String>,
    /// Only these states (`none` for not yet scheduled).
    #[serde(default)]
    pub state: Vec<String>,
    /// Only these pools.
    #[serde(default)]
    pub pool: Vec<String>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub updated_at_gte: Option<DateTime<Utc>>,
    pub updated_at_lte: Option<DateTime<Utc>>,
    /// Only ended task instances whose last try took at least this many seconds.
    pub duration_gte: Option<f64>,
    /// … more than this many seconds.
    pub duration_gt: Option<f64>,
    /// … at most this many seconds.
    pub duration_lte: Option<f64>,
    /// … less than this many seconds.
    pub duration_lt: Option<f64>,
}

/// Task states as Airflow names them (`none` and an empty value mean "not yet scheduled").
fn task_state(name: &str) -> Result<TaskState, String> {
    match name {
        "" | "null" => Ok(TaskState::None),
        other => other.parse(),
    }
}

/// The task instances of a run (`~` for every run, and for every DAG).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id, or `~` for every DAG"),
           ("dag_run_id" = String, Path, description = "The run id, or `~` for every run"),
           Page, TaskListParams),
    responses((status = 200, body = TaskInstanceCollection), ReadErrors))]
pub async fn list_task_instances(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
    Query(page): Query<Page>,
    Query(p): Query<TaskListParams>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let (limit, offset) = page.bounds()?;
    let (dag_id, run_id) = path_scope(&state, &dag_id, &run_id).await?;
    let order = task_order(p.order_by.as_deref())?;
    let states = task_states(p.state.iter().flat_map(|v| v.split(',')))?;
    let range = |column, from, to| TimeRange { column, from, to };
    let filter = TaskFilter {
        dag_id,
        run_id,
        task_ids: p.task_id.clone(),
        states,
        pools: p.pool.clone(),
        ranges: vec![
            range(TaskTime::StartDate, p.start_date_gte, p.start_date_lte),
            range(TaskTime::EndDate, p.end_date_gte, p.end_date_lte),
            range(TaskTime::UpdatedAt, p.updated_at_gte, p.updated_at_lte),
        ],
        duration: durations([p.duration_gte, p.duration_gt, p.duration_lte, p.duration_lt])?,
        order,
        limit: Some(limit),
        offset: Some(offset),
        ..TaskFilter::default()
    };
    page_of_task_instances(&state, &filter).await
}

/// The DAG and run a task-instance list's path names (`~`: every one),
/// checked to exist.
pub(crate) async fn path_scope(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
) -> ApiResult<(Option<String>, Option<String>)> {
    let store = state.scheduler.store();
    let (dag_id, run_id) = (every(dag_id), every(run_id));
    match (&dag_id, &run_id) {
        (Some(d), Some(r)) => {
            store.get_run(d, r).await?;
        }
        (Some(d), None) => {
            store.get_dag(d).await?;
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "a run id needs its DAG id: use `~` for both to list every run's task instances",
            ));
        }
        (None, None) => {}
    }
    Ok((dag_id, run_id))
}

/// The task-instance list's sort keys (`-` for descending).
fn task_order(value: Option<&str>) -> ApiResult<Option<(TaskOrder, bool)>> {
    order_by(
        value,
        &[
            ("task_id", TaskOrder::TaskId),
            ("dag_id", TaskOrder::DagId),
            ("run_id", TaskOrder::RunId),
            ("dag_run_id", TaskOrder::RunId),
            ("state", TaskOrder::State),
            ("try_number", TaskOrder::TryNumber),
            ("pool", TaskOrder::Pool),
            ("priority_weight", TaskOrder::Priority),
            ("start_date", TaskOrder::StartDate),
            ("end_date", TaskOrder::EndDate),
            ("updated_at", TaskOrder::UpdatedAt),
            ("map_index", TaskOrder::MapIndex),
        ],
    )
}

/// Task states by Airflow's names.
fn task_states<'a>(names: impl Iterator<Item = &'a str>) -> ApiResult<Vec<TaskState>> {
    names
        .map(|v| task_state(v).map_err(|e| ApiError::unprocessable(format!("state: {e}"))))
        .collect()
}

/// One page of the task instances a filter finds, with the total.
async fn page_of_task_instances(
    state: &AppState,
    filter: &TaskFilter,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let (tis, total) = state.scheduler.store().find_task_instances(filter).await?;
    Ok(Json(TaskInstanceCollection {
        task_instances: responses(state, &tis).await?,
        total_entries: total,
    }))
}

/// The task-instance list's filters in a body (Airflow's
/// `TaskInstancesBatchBody`). Fields weir cannot filter on are refused,
/// never ignored.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInstancesBatchBody {
    /// A sort key as in the task-instance list (`-` for descending).
    pub order_by: Option<String>,
    /// Skip this many.
    pub page_offset: Option<u32>,
    /// At most this many (default 100, at most 1000).
    pub page_limit: Option<u32>,
    /// Only these DAGs.
    pub dag_ids: Option<Vec<String>>,
    /// Only these run ids.
    pub dag_run_ids: Option<Vec<String>>,
    /// Only these tasks.
    pub task_ids: Option<Vec<String>>,
    /// Only these states (null for not yet scheduled).
    pub state: Option<Vec<Option<String>>>,
    /// Only these pools.
    pub pool: Option<Vec<String>>,
    /// Only these queues.
    pub queue: Option<Vec<String>>,
    pub run_after_gte: Option<DateTime<Utc>>,
    pub run_after_gt: Option<DateTime<Utc>>,
    pub run_after_lte: Option<DateTime<Utc>>,
    pub run_after_lt: Option<DateTime<Utc>>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_gt: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub logical_date_lt: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_gt: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub start_date_lt: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_gt: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub end_date_lt: Option<DateTime<Utc>>,
    /// Only ended task instances whose last try took at least this many seconds.
    pub duration_gte: Option<f64>,
    /// … more than this many seconds.
    pub duration_gt: Option<f64>,
    /// … at most this many seconds.
    pub duration_lte: Option<f64>,
    /// … less than this many seconds.
    pub duration_lt: Option<f64>,
    /// Refused: weir has one executor.
    pub executor: Option<Vec<String>>,
}

/// Task instances of one run, of one DAG's runs or (with `~`) of every
/// run, filtered by a body; a viewer may call it.
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id, or `~` for every DAG"),
           ("dag_run_id" = String, Path, description = "The run id, or `~` for every run")),
    request_body = TaskInstancesBatchBody,
    responses((status = 200, body = TaskInstanceCollection), WriteErrors))]
pub async fn list_task_instances_batch(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
    Body(b): Body<TaskInstancesBatchBody>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let unsupported = [
        ("duration_gte", b.duration_gte.is_some()),
        ("duration_gt", b.duration_gt.is_some()),
        ("duration_lte", b.duration_lte.is_some()),
        ("duration_lt", b.duration_lt.is_some()),
        (
            "executor",
            b.executor.as_ref().is_some_and(|e| !e.is_empty()),
        ),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, given)| *given) {
        return Err(ApiError::unprocessable(format!(
            "{name}: weir cannot filter task instances on it"
        )));
    }
    let (dag_id, run_id) = path_scope(&state, &dag_id, &run_id).await?;
    let (limit, offset) = Page::of_body(b.page_limit, b.page_offset).bounds()?;
    let states = b.state.unwrap_or_default();
    let states = task_states(states.iter().map(|s| s.as_deref().unwrap_or("")))?;
    let (ranges, strict_ranges) = date_bounds([
        (
            TaskTime::StartDate,
            [
                b.start_date_gte,
                b.start_date_lte,
                b.start_date_gt,
                b.start_date_lt,
            ],
        ),
        (
            TaskTime::EndDate,
            [b.end_date_gte, b.end_date_lte, b.end_date_gt, b.end_date_lt],
        ),
    ]);
    let (run_ranges, run_strict_ranges) = date_bounds([
        (
            RunTime::RunAfter,
            [
                b.run_after_gte,
                b.run_after_lte,
                b.run_after_gt,
                b.run_after_lt,
            ],
        ),
        (
            RunTime::LogicalDate,
            [
                b.logical_date_gte,
                b.logical_date_lte,
                b.logical_date_gt,
                b.logical_date_lt,
            ],
        ),
    ]);
    let filter = TaskFilter {
        dag_id,
        run_id,
        dag_ids: b.dag_ids.unwrap_or_default(),
        run_ids: b.dag_run_ids.unwrap_or_default(),
        task_ids: b.task_ids.unwrap_or_default(),
        states,
        pools: b.pool.unwrap_or_default(),
        queues: b.queue.unwrap_or_default(),
        ranges,
        strict_ranges,
        run_ranges,
        run_strict_ranges,
        duration: durations([b.duration_gte, b.duration_gt, b.duration_lte, b.duration_lt])?,
        order: task_order(b.order_by.as_deref())?,
        limit: Some(limit),
        offset: Some(offset),
        ..TaskFilter::default()
    };
    page_of_task_instances(&state, &filter).await
}

/// Responses for task instances, reading each run and DAG version once.
async fn responses(
    state: &AppState,
    tis: &[TaskInstanceRecord],
) -> ApiResult<Vec<TaskInstanceResponse>> {
    let mut runs: HashMap<i64, (RunRecord, Arc<Dag>)> = HashMap::new();
    let mut out = Vec::with_capacity(tis.len());
    for t in tis {
        if let std::collections::hash_map::Entry::Vacant(slot) = runs.entry(t.run_pk) {
            let run = state.scheduler.store().get_run_by_pk(t.run_pk).await?;
            let dag = state.scheduler.dag_version(run.version_id).await?;
            slot.insert((run, dag));
        }
        if let Some((run, dag)) = runs.get(&t.run_pk) {
            out.push(TaskInstanceResponse::new(t, Some(run), Some(dag), None));
        }
    }
    Ok(out)
}

/// The task instances of `run` with these task ids, in the run's order.
pub(crate) async fn instances_of(
    state: &AppState,
    run: &RunRecord,
    task_ids: &[String],
) -> ApiResult<Vec<TaskInstanceResponse>> {
    let tis: Vec<TaskInstanceRecord> = state
        .scheduler
        .store()
        .list_task_instances(run.id)
        .await?
        .into_iter()
        .filter(|t| task_ids.contains(&t.task_id))
        .collect();
    responses(state, &tis).await
}

type TaskPath = (String, String, String);

/// One task instance.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id")),
    responses((status = 200, body = TaskInstanceResponse), ReadErrors))]
pub async fn get_task_instance(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id)): Path<TaskPath>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    instance_of(&state, (&dag_id, &run_id, &task_id, -1)).await
}

/// One task instance by map index (-1: the task's own instance).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("map_index" = i64, Path, description = "The mapped instance (-1: the task's own)")),
    responses((status = 200, body = TaskInstanceResponse), ReadErrors))]
pub async fn get_mapped_instance(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id, map_index)): Path<(String, String, String, i64)>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    instance_of(&state, (&dag_id, &run_id, &task_id, map_index)).await
}

async fn instance_of(
    state: &AppState,
    (dag_id, run_id, task_id, map_index): InstanceKey<'_>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    let store = state.scheduler.store();
    let t = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    let run = store.get_run_by_pk(t.run_pk).await?;
    let dag = state.scheduler.dag_version(run.version_id).await?;
    let version = store.get_version(run.version_id).await?;
    Ok(Json(TaskInstanceResponse::new(
        &t,
        Some(&run),
        Some(&dag),
        Some(&version),
    )))
}

/// Which mapped instances to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MappedParams {
    /// Only these states (repeat the parameter, or separate with commas).
    #[serde(default)]
    pub state: Vec<String>,
    /// Sort by `map_index` (default), `state`, `start_date`, `end_date`,
    /// … (`-` before for descending).
    pub order_by: Option<String>,
}

/// The mapped instances of a task in a run, by map index (Airflow's `listMapped`).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           Page, MappedParams),
    responses((status = 200, body = TaskInstanceCollection), ReadErrors))]
pub async fn list_mapped(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id)): Path<TaskPath>,
    Query(page): Query<Page>,
    Query(p): Query<MappedParams>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let (limit, offset) = page.bounds()?;
    // The task must be in the run.
    state
        .scheduler
        .store()
        .get_task_instance(&dag_id, &run_id, &task_id)
        .await?;
    let filter = TaskFilter {
        dag_id: Some(dag_id),
        run_id: Some(run_id),
        task_ids: vec![task_id],
        states: task_states(p.state.iter().flat_map(|v| v.split(',')))?,
        mapped_only: true,
        order: task_order(p.order_by.as_deref())?.or(Some((TaskOrder::MapIndex, false))),
        limit: Some(limit),
        offset: Some(offset),
        ..TaskFilter::default()
    };
    page_of_task_instances(&state, &filter).await
}

/// Every try of a task instance, oldest first.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id")),
    responses((status = 200, body = TryCollection), ReadErrors))]
pub async fn list_tries(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id)): Path<TaskPath>,
) -> ApiResult<Json<TryCollection>> {
    tries_of(&state, (&dag_id, &run_id, &task_id, -1)).await
}

/// Every try of one mapped instance, oldest first.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("map_index" = i64, Path, description = "The mapped instance (-1: the task's own)")),
    responses((status = 200, body = TryCollection), ReadErrors))]
pub async fn list_mapped_tries(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id, map_index)): Path<(String, String, String, i64)>,
) -> ApiResult<Json<TryCollection>> {
    tries_of(&state, (&dag_id, &run_id, &task_id, map_index)).await
}

/// One try of a task instance.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{try_number}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("try_number" = i64, Path, description = "The try (1 is the first)")),
    responses((status = 200, body = TryResponse), ReadErrors))]
pub async fn get_try(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id, try_number)): Path<(String, String, String, i64)>,
) -> ApiResult<Json<TryResponse>> {
    try_of(&state, (&dag_id, &run_id, &task_id, -1), try_number).await
}

/// One try of one mapped instance.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries/{try_number}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("map_index" = i64, Path, description = "The mapped instance (-1: the task's own)"),
           ("try_number" = i64, Path, description = "The try (1 is the first)")),
    responses((status = 200, body = TryResponse), ReadErrors))]
pub async fn get_mapped_try(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id, map_index, try_number)): Path<(
        String,
        String,
        String,
        i64,
        i64,
    )>,
) -> ApiResult<Json<TryResponse>> {
    try_of(&state, (&dag_id, &run_id, &task_id, map_index), try_number).await
}

/// A task instance named by DAG, run, task and map index.
type InstanceKey<'a> = (&'a str, &'a str, &'a str, i64);

async fn tries_of(
    state: &AppState,
    (dag_id, run_id, task_id, map_index): InstanceKey<'_>,
) -> ApiResult<Json<TryCollection>> {
    let store = state.scheduler.store();
    let t = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    let tries: Vec<TryResponse> = store
        .list_tries(&t.id)
        .await?
        .iter()
        .map(|r| TryResponse::new(r, &t))
        .collect();
    Ok(Json(TryCollection {
        total_entries: i64::try_from(tries.len()).unwrap_or(i64::MAX),
        task_instances: tries,
    }))
}

async fn try_of(
    state: &AppState,
    (dag_id, run_id, task_id, map_index): InstanceKey<'_>,
    try_number: i64,
) -> ApiResult<Json<TryResponse>> {
    let store = state.scheduler.store();
    let t = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    store
        .list_tries(&t.id)
        .await?
        .iter()
        .find(|r| r.try_number == try_number)
        .map(|r| Json(TryResponse::new(r, &t)))
        .ok_or_else(|| {
            ApiError::not_found(format!("try {try_number} of task `{task_id}` not found"))
        })
}

/// Which task instances to clear (Airflow's `ClearTaskInstancesBody`, with
/// its defaults). A field weir does not know is refused, and so is a value of
/// a known field weir cannot honour, naming why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskInstancesBody {
    /// The run; without it, every run whose logical date is in
    /// `[start_date, end_date]`.
    pub dag_run_id: Option<String>,
    /// The tasks (default: every task): task ids, or `[task_id, map_index]`
    /// pairs naming one mapped instance (-1: the task) as Airflow allows.
    pub task_ids: Option<Vec<TaskRef>>,
    /// Only say what would be cleared (default true, as in Airflow).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Only failed tasks (default true, as in Airflow).
    #[serde(default = "yes")]
    pub only_failed: bool,
    /// Refused when true: running tasks are never cleared.
    #[serde(default)]
    pub only_running: bool,
    /// Also every task downstream.
    #[serde(default)]
    pub include_downstream: bool,
    /// Also every task upstream.
    #[serde(default)]
    pub include_upstream: bool,
    /// Also the same tasks in every earlier run (by logical date).
    #[serde(default)]
    pub include_past: bool,
    /// Also the same tasks in every later run (by logical date).
    #[serde(default)]
    pub include_future: bool,
    /// Runs from this logical date (without `dag_run_id`).
    pub start_date: Option<DateTime<Utc>>,
    /// Runs up to this logical date (without `dag_run_id`).
    pub end_date: Option<DateTime<Utc>>,
    /// Whether finished runs start again (default true; weir always does,
    /// so false is refused).
    #[serde(default = "yes")]
    pub reset_dag_runs: bool,
    /// A running task in the selection is refused either way: weir never
    /// clears a running try (mark it failed first).
    #[serde(default)]
    pub prevent_running_task: bool,
    /// Refused when true: a run keeps the DAG version it started with.
    pub run_on_latest_version: Option<bool>,
    /// Refused when given: weir keeps notes on runs, not task instances.
    pub note: Option<String>,
}

impl ClearTaskInstancesBody {
    /// The first asked-for behaviour weir cannot honour.
    fn refusal(&self) -> Option<&'static str> {
        if self.only_running {
            return Some("only_running: running tasks cannot be cleared; mark them failed first");
        }
        if !self.reset_dag_runs {
            return Some(
                "reset_dag_runs: false is not supported: a finished run always runs again when its tasks are cleared",
            );
        }
        if self.run_on_latest_version == Some(true) {
            return Some(
                "run_on_latest_version: a run keeps the DAG version it started with; trigger a new run instead",
            );
        }
        if self.note.is_some() {
            return Some(
                "note: weir keeps notes on runs, not on task instances; PATCH the run's note instead",
            );
        }
        None
    }
}

/// The runs a clear request reaches: the one named, or those whose logical
/// date is in the range, widened to every earlier or later run by
/// `include_past` / `include_future`.
async fn clear_runs(
    state: &AppState,
    dag_id: &str,
    body: &ClearTaskInstancesBody,
) -> ApiResult<Vec<RunRecord>> {
    let store = state.scheduler.store();
    let (from, to) = match &body.dag_run_id {
        Some(run_id) => {
            let run = store.get_run(dag_id, run_id).await?;
            if !body.include_past && !body.include_future {
                return Ok(vec![run]);
            }
            let at = run.logical_date.ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "include_past/include_future: run `{run_id}` has no logical date to compare others with"
                ))
            })?;
            (Some(at), Some(at))
        }
        None if body.start_date.is_none() && body.end_date.is_none() => {
            return Err(ApiError::unprocessable(
                "give dag_run_id, or start_date and/or end_date to clear the runs between them",
            ));
        }
        None => (body.start_date, body.end_date),
    };
    runs_between(
        state,
        dag_id,
        if body.include_past { None } else { from },
        if body.include_future { None } else { to },
    )
    .await
}

/// A DAG's runs whose logical date is in `[from, to]` (open where `None`).
pub(crate) async fn runs_between(
    state: &AppState,
    dag_id: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> ApiResult<Vec<RunRecord>> {
    let filter = RunFilter {
        dag_id: Some(dag_id.to_owned()),
        ranges: vec![TimeRange {
            column: RunTime::LogicalDate,
            from,
            to,
        }],
        limit: Some(i64::from(super::MAX_LIMIT)),
        ..RunFilter::default()
    };
    Ok(state.scheduler.store().list_runs(&filter).await?.0)
}

/// Refuses a clear that reaches a running task instance: weir never stops a
/// try by clearing it.
async fn refuse_running(
    state: &AppState,
    dag: &Dag,
    run: &RunRecord,
    spec: &ClearSpec,
) -> ApiResult<()> {
    let named: Vec<usize> = spec
        .task_ids
        .iter()
        .filter_map(|id| dag.tasks.get_index_of(id.as_str()))
        .collect();
    let reached = dag
        .graph
        .with_relatives(&named, spec.upstream, spec.downstream);
    let running = state
        .scheduler
        .store()
        .list_task_instances(run.id)
        .await?
        .into_iter()
        .find(|t| {
            t.state == TaskState::Running
                && dag
                    .tasks
                    .get_index_of(t.task_id.as_str())
                    .is_some_and(|i| reached.contains(&i))
        });
    match running {
        Some(t) => Err(ApiError::unprocessable(format!(
            "task `{}` of run `{}` is running; weir does not clear a running try: mark it failed first, or wait for it",
            t.task_id, run.run_id
        ))),
        None => Ok(()),
    }
}

/// A task named in a clear request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TaskRef {
    /// A task id.
    Id(String),
    /// A task id and a map index.
    Mapped(String, i64),
}

impl TaskRef {
    fn id(&self) -> &str {
        match self {
            TaskRef::Id(id) | TaskRef::Mapped(id, _) => id,
        }
    }

    /// The mapped instance it names, if it names one.
    fn instance(&self) -> Option<(String, i64)> {
        match self {
            TaskRef::Mapped(id, i) if *i >= 0 => Some((id.clone(), *i)),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

/// Clears task instances so they run again with a new try; their runs reopen (operator).
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/clearTaskInstances", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id")),
    request_body = ClearTaskInstancesBody,
    responses((status = 200, body = TaskInstanceCollection), WriteErrors))]
pub async fn clear_task_instances(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(dag_id): Path<String>,
    Body(body): Body<ClearTaskInstancesBody>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    if let Some(why) = body.refusal() {
        return Err(ApiError::unprocessable(why));
    }
    let store = state.scheduler.store();
    store.get_dag(&dag_id).await?;
    let runs = clear_runs(&state, &dag_id, &body).await?;
    let mut out = Vec::new();
    for run in runs {
        let dag = state.scheduler.dag_version(run.version_id).await?;
        let task_ids = match &body.task_ids {
            Some(refs) => {
                let ids: Vec<String> = refs.iter().map(|r| r.id().to_owned()).collect();
                if let Some(missing) = ids.iter().find(|t| !dag.tasks.contains_key(t.as_str())) {
                    return Err(ApiError::not_found(format!(
                        "task `{missing}` not found in DAG `{dag_id}`"
                    )));
                }
                ids
            }
            None => dag.tasks.keys().map(ToString::to_string).collect(),
        };
        let spec = ClearSpec {
            task_ids,
            downstream: body.include_downstream,
            upstream: body.include_upstream,
            only_failed: body.only_failed,
            instances: body
                .task_ids
                .iter()
                .flatten()
                .filter_map(TaskRef::instance)
                .collect(),
        };
        if !body.only_failed {
            refuse_running(&state, &dag, &run, &spec).await?;
        }
        let cleared = if body.dry_run {
            state
                .scheduler
                .preview_clear(&dag_id, &run.run_id, &spec)
                .await?
        } else {
            state
                .scheduler
                .clear(&dag_id, &run.run_id, &spec, &who.name)
                .await?
        };
        let mut answered = instances_of(&state, &run, &cleared).await?;
        // Of a task named by its mapped instances, only those were cleared.
        answered.retain(|t| {
            let named: Vec<i64> = spec
                .instances
                .iter()
                .filter(|(id, _)| *id == t.task_id)
                .map(|(_, i)| *i)
                .collect();
            named.is_empty() || named.contains(&t.map_index)
        });
        out.extend(answered);
    }
    Ok(Json(TaskInstanceCollection {
        total_entries: i64::try_from(out.len()).unwrap_or(i64::MAX),
        task_instances: out,
    }))
}
