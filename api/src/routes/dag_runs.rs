//! DAG runs: list (one DAG or `~` for all), get, trigger, mark and clear.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_core::scheduler::{ClearSpec, Trigger};
use weir_core::state::{RunState, RunType};
use weir_core::store::{RunFilter, RunOrder, RunRecord, RunTime, VersionRecord};

use super::{Page, date_bounds, durations, every, order_by, parse_all};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{DagRunCollection, DagRunResponse, TaskInstanceCollection};

/// Filters of the run list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListParams {
    /// Sort by `id`, `dag_id`, `run_id`, `state`, `run_type`, `logical_date`,
    /// `start_date`, `end_date` or `run_after` (`-` for descending; default
    /// `id`). One key: a second is refused.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Only run ids containing this text (case-insensitive; `%` matches anything).
    pub run_id_pattern: Option<String>,
    /// Only runs in these states.
    #[serde(default)]
    pub state: Vec<String>,
    /// Only runs of these types.
    #[serde(default)]
    pub run_type: Vec<String>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub run_after_gte: Option<DateTime<Utc>>,
    pub run_after_lte: Option<DateTime<Utc>>,
    pub logical_date_gt: Option<DateTime<Utc>>,
    pub logical_date_lt: Option<DateTime<Utc>>,
    pub start_date_gt: Option<DateTime<Utc>>,
    pub start_date_lt: Option<DateTime<Utc>>,
    pub end_date_gt: Option<DateTime<Utc>>,
    pub end_date_lt: Option<DateTime<Utc>>,
    pub run_after_gt: Option<DateTime<Utc>>,
    pub run_after_lt: Option<DateTime<Utc>>,
    /// Only ended runs that took at least this many seconds.
    pub duration_gte: Option<f64>,
    /// Only ended runs that took more than this many seconds.
    pub duration_gt: Option<f64>,
    /// Only ended runs that took at most this many seconds.
    pub duration_lte: Option<f64>,
    /// Only ended runs that took less than this many seconds.
    pub duration_lt: Option<f64>,
    /// Only runs whose conf (as JSON text) contains this, case-insensitively.
    pub conf_contains: Option<String>,
}

/// A run's note is at most 1000 characters.
fn check_note(note: Option<&str>) -> ApiResult<()> {
    match note {
        Some(n) if n.len() > 1000 => Err(ApiError::unprocessable("note: at most 1000 characters")),
        _ => Ok(()),
    }
}

/// Airflow's run-type names (and weir's own) to weir's.
fn run_type(name: &str) -> Result<RunType, String> {
    match name {
        "asset_triggered" | "dataset_triggered" => Ok(RunType::DatasetTriggered),
        other => other.parse(),
    }
}

/// The run-date ranges (inclusive, strict) and the duration bounds of a
/// run list's filters: the query's and the body's fields share their names.
macro_rules! run_bounds {
    ($p:expr) => {{
        let (ranges, strict_ranges) = date_bounds([
            (
                RunTime::LogicalDate,
                [
                    $p.logical_date_gte,
                    $p.logical_date_lte,
                    $p.logical_date_gt,
                    $p.logical_date_lt,
                ],
            ),
            (
                RunTime::StartDate,
                [
                    $p.start_date_gte,
                    $p.start_date_lte,
                    $p.start_date_gt,
                    $p.start_date_lt,
                ],
            ),
            (
                RunTime::EndDate,
                [
                    $p.end_date_gte,
                    $p.end_date_lte,
                    $p.end_date_gt,
                    $p.end_date_lt,
                ],
            ),
            (
                RunTime::RunAfter,
                [
                    $p.run_after_gte,
                    $p.run_after_lte,
                    $p.run_after_gt,
                    $p.run_after_lt,
                ],
            ),
        ]);
        let duration = durations([
            $p.duration_gte,
            $p.duration_gt,
            $p.duration_lte,
            $p.duration_lt,
        ])?;
        (ranges, strict_ranges, duration)
    }};
}

/// The runs of a DAG (`~` for every DAG).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id, or `~` for every DAG"), Page, RunListParams),
    responses((status = 200, body = DagRunCollection), ReadErrors))]
pub async fn list_runs(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
    Query(page): Query<Page>,
    Query(p): Query<RunListParams>,
) -> ApiResult<Json<DagRunCollection>> {
    let (limit, offset) = page.bounds()?;
    let dag_id = every(&dag_id);
    if let Some(d) = &dag_id {
        state.scheduler.store().get_dag(d).await?;
    }
    let order = run_order(super::one_order_by(&p.order_by, "runs")?)?;
    let run_types = p
        .run_type
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
        .map(|v| run_type(v).map_err(|e| ApiError::unprocessable(format!("run_type: {e}"))))
        .collect::<ApiResult<Vec<_>>>()?;
    let (ranges, strict_ranges, duration) = run_bounds!(p);
    let filter = RunFilter {
        dag_id,
        states: parse_all::<RunState>("state", &p.state)?,
        run_types,
        ranges,
        strict_ranges,
        run_id_pattern: p.run_id_pattern.filter(|s| !s.is_empty()),
        duration,
        conf_contains: p.conf_contains.filter(|s| !s.is_empty()),
        order,
        limit: Some(limit),
        offset: Some(offset),
        ..RunFilter::default()
    };
    page_of_runs(&state, &filter).await
}

/// The run list's sort keys (`-` for descending; default `id`).
fn run_order(value: Option<&str>) -> ApiResult<Option<(RunOrder, bool)>> {
    Ok(order_by(
        value,
        &[
            ("id", RunOrder::Id),
            ("dag_id", RunOrder::DagId),
            ("run_id", RunOrder::RunId),
            ("dag_run_id", RunOrder::RunId),
            ("state", RunOrder::State),
            ("run_type", RunOrder::RunType),
            ("logical_date", RunOrder::LogicalDate),
            ("start_date", RunOrder::StartDate),
            ("end_date", RunOrder::EndDate),
            ("run_after", RunOrder::RunAfter),
        ],
    )?
    .or(Some((RunOrder::Id, false))))
}

async fn page_of_runs(state: &AppState, filter: &RunFilter) -> ApiResult<Json<DagRunCollection>> {
    let (runs, total) = state.scheduler.store().list_runs(filter).await?;
    Ok(Json(DagRunCollection {
        dag_runs: responses(state, &runs).await?,
        total_entries: total,
    }))
}

/// The run list's filters in a body (Airflow's `DAGRunsBatchBody`). Fields
/// weir cannot filter on are refused, never ignored.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsBatchBody {
    /// A sort key as in the run list (`-` for descending; default `id`).
    pub order_by: Option<String>,
    /// Skip this many.
    pub page_offset: Option<u32>,
    /// At most this many (default 100, at most 1000).
    pub page_limit: Option<u32>,
    /// Only runs of these DAGs (the path's DAG must then be `~`).
    pub dag_ids: Option<Vec<String>>,
    /// Only runs in these states.
    pub states: Option<Vec<Option<String>>>,
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
    /// Only ended runs that took at least this many seconds.
    pub duration_gte: Option<f64>,
    /// Only ended runs that took more than this many seconds.
    pub duration_gt: Option<f64>,
    /// Only ended runs that took at most this many seconds.
    pub duration_lte: Option<f64>,
    /// Only ended runs that took less than this many seconds.
    pub duration_lt: Option<f64>,
    /// Only runs whose conf (as JSON text) contains this, case-insensitively.
    pub conf_contains: Option<String>,
}

/// Runs of one DAG or (with `~`) of the DAGs listed, filtered by a body.
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns/list", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id, or `~` for every DAG")),
    request_body = RunsBatchBody,
    responses((status = 200, body = DagRunCollection), WriteErrors))]
pub async fn list_runs_batch(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
    Body(b): Body<RunsBatchBody>,
) -> ApiResult<Json<DagRunCollection>> {
    let (limit, offset) = Page::of_body(b.page_limit, b.page_offset).bounds()?;
    let dag_id = every(&dag_id);
    let dag_ids = b.dag_ids.clone().unwrap_or_default();
    if dag_id.is_some() && !dag_ids.is_empty() {
        return Err(ApiError::unprocessable(
            "dag_ids: list DAGs only with `~` as the path's DAG id",
        ));
    }
    if let Some(d) = &dag_id {
        state.scheduler.store().get_dag(d).await?;
    }
    let states: Vec<String> = b
        .states
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.ok_or_else(|| ApiError::unprocessable("states: null is not a run state")))
        .collect::<ApiResult<_>>()?;
    let (ranges, strict_ranges, duration) = run_bounds!(b);
    let filter = RunFilter {
        dag_id,
        dag_ids,
        states: parse_all::<RunState>("states", &states)?,
        ranges,
        strict_ranges,
        duration,
        conf_contains: b.conf_contains.filter(|s| !s.is_empty()),
        order: run_order(b.order_by.as_deref())?,
        limit: Some(limit),
        offset: Some(offset),
        ..RunFilter::default()
    };
    page_of_runs(&state, &filter).await
}

/// Run responses, reading each pinned version once.
async fn responses(state: &AppState, runs: &[RunRecord]) -> ApiResult<Vec<DagRunResponse>> {
    let mut versions: HashMap<i64, VersionRecord> = HashMap::new();
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        if let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(r.version_id) {
            slot.insert(state.scheduler.store().get_version(r.version_id).await?);
        }
        out.push(DagRunResponse::new(r, versions.get(&r.version_id)));
    }
    Ok(out)
}

async fn response(state: &AppState, run: &RunRecord) -> ApiResult<DagRunResponse> {
    let v = state.scheduler.store().get_version(run.version_id).await?;
    Ok(DagRunResponse::new(run, Some(&v)))
}

/// One run.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    responses((status = 200, body = DagRunResponse), ReadErrors))]
pub async fn get_run(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<DagRunResponse>> {
    let run = state.scheduler.store().get_run(&dag_id, &run_id).await?;
    Ok(Json(response(&state, &run).await?))
}

/// Deleting a run is refused: weir keeps every run and try (history is the
/// product). 404 for a run that does not exist, else 409 saying what to do
/// instead.
#[utoipa::path(delete, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    responses((status = 204, description = "Never: runs are kept"), WriteErrors))]
pub async fn delete_run(
    State(state): State<AppState>,
    _: Operator,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    state.scheduler.store().get_run(&dag_id, &run_id).await?;
    Err(ApiError::conflict(format!(
        "run `{run_id}` of DAG `{dag_id}` is kept: weir keeps every run and try as history; \
         set its state with PATCH (success or failed) or clear its tasks to run them again"
    )))
}

/// A request to trigger a run (Airflow's `TriggerDAGRunPostBody`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TriggerBody {
    /// The run id (default `manual__<logical date>`).
    pub dag_run_id: Option<String>,
    /// The logical date (default now).
    pub logical_date: Option<DateTime<Utc>>,
    /// A JSON object overriding the DAG's params.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<serde_json::Value>,
    /// A note.
    pub note: Option<String>,
    /// Ignored: the data interval follows from the logical date and the schedule.
    pub data_interval_start: Option<DateTime<Utc>>,
    /// Ignored, as `data_interval_start`.
    pub data_interval_end: Option<DateTime<Utc>>,
    /// Ignored: a triggered run starts now.
    pub run_after: Option<DateTime<Utc>>,
}

/// Triggers a run of the DAG's newest version (operator).
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id")),
    request_body = TriggerBody,
    responses((status = 200, body = DagRunResponse), WriteErrors))]
pub async fn trigger_run(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(dag_id): Path<String>,
    Body(body): Body<TriggerBody>,
) -> ApiResult<Json<DagRunResponse>> {
    check_note(body.note.as_deref())?;
    let run = state
        .scheduler
        .trigger(
            &dag_id,
            Trigger {
                run_id: body.dag_run_id,
                logical_date: body.logical_date,
                conf: body.conf,
                note: body.note,
                actor: who.name,
            },
        )
        .await?;
    Ok(Json(response(&state, &run).await?))
}

/// What can be changed on a run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RunPatchBody {
    /// `success` or `failed` (unfinished tasks follow), or `queued` to run it again.
    pub state: Option<String>,
    /// A note.
    pub note: Option<String>,
}

/// Marks a run success, failed or queued, or sets its note (operator).
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    request_body = RunPatchBody,
    responses((status = 200, body = DagRunResponse), WriteErrors))]
pub async fn patch_run(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path((dag_id, run_id)): Path<(String, String)>,
    Body(body): Body<RunPatchBody>,
) -> ApiResult<Json<DagRunResponse>> {
    let store = state.scheduler.store();
    let mut run = store.get_run(&dag_id, &run_id).await?;
    check_note(body.note.as_deref())?;
    if let Some(note) = &body.note {
        run = store
            .set_run_note(run.id, note, &who.name, state.scheduler.now())
            .await?;
    }
    if let Some(s) = &body.state {
        let target: RunState = s
            .parse()
            .map_err(|e: String| ApiError::unprocessable(format!("state: {e}")))?;
        run = if target == RunState::Queued {
            let spec = ClearSpec {
                task_ids: all_tasks(&state, &run).await?,
                ..ClearSpec::default()
            };
            state
                .scheduler
                .clear(&dag_id, &run_id, &spec, &who.name)
                .await?;
            store.get_run(&dag_id, &run_id).await?
        } else if target == RunState::Running {
            return Err(ApiError::unprocessable(
                "state: a run can be marked success, failed or queued",
            ));
        } else {
            state
                .scheduler
                .set_run_state(&dag_id, &run_id, target, &who.name)
                .await?
        };
    }
    Ok(Json(response(&state, &run).await?))
}

async fn all_tasks(state: &AppState, run: &RunRecord) -> ApiResult<Vec<String>> {
    let dag = state.scheduler.dag_version(run.version_id).await?;
    Ok(dag.tasks.keys().map(ToString::to_string).collect())
}

/// How to clear a run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RunClearBody {
    /// Only say what would be cleared (default true, as in Airflow).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Only failed tasks.
    #[serde(default)]
    pub only_failed: bool,
}

fn yes() -> bool {
    true
}

/// What clearing a run answers: the task instances a dry run would clear, or the run.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RunClearResponse {
    /// A dry run: what would be cleared.
    Preview(TaskInstanceCollection),
    /// The cleared run.
    Cleared(Box<DagRunResponse>),
}

/// Clears every (or every failed) task of a run so it runs again (operator).
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    request_body = RunClearBody,
    responses((status = 200, body = RunClearResponse), WriteErrors))]
pub async fn clear_run(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path((dag_id, run_id)): Path<(String, String)>,
    Body(body): Body<RunClearBody>,
) -> ApiResult<Json<RunClearResponse>> {
    let store = state.scheduler.store();
    let run = store.get_run(&dag_id, &run_id).await?;
    let spec = ClearSpec {
        task_ids: all_tasks(&state, &run).await?,
        only_failed: body.only_failed,
        ..ClearSpec::default()
    };
    if body.dry_run {
        let ids = state
            .scheduler
            .preview_clear(&dag_id, &run_id, &spec)
            .await?;
        let tis = crate::routes::task_instances::instances_of(&state, &run, &ids).await?;
        return Ok(Json(RunClearResponse::Preview(TaskInstanceCollection {
            total_entries: i64::try_from(tis.len()).unwrap_or(i64::MAX),
            task_instances: tis,
        })));
    }
    state
        .scheduler
        .clear(&dag_id, &run_id, &spec, &who.name)
        .await?;
    let run = store.get_run(&dag_id, &run_id).await?;
    Ok(Json(RunClearResponse::Cleared(Box::new(
        response(&state, &run).await?,
    ))))
}
