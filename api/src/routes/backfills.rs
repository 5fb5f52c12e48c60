//! Backfills: runs for every scheduled interval in a date range, created a
//! few at a time (within `max_active_runs`) by the scheduler's timer.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_core::access::{BackfillChange, BackfillFilter, BackfillRecord, NewBackfill, Reprocess};
use weir_core::dag::Schedule;
use weir_core::scheduler::backfill::BackfillRange;
use weir_core::state::{RunState, RunType};
use weir_core::store::{AuditAction, RunFilter, RunTime, TimeRange};

use super::Page;
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};

/// A backfill (Airflow's `BackfillResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    pub dag_id: String,
    pub dag_display_name: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub dag_run_conf: serde_json::Value,
    pub is_paused: bool,
    /// `none`, `failed` or `completed`.
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<&BackfillRecord> for BackfillResponse {
    fn from(b: &BackfillRecord) -> Self {
        BackfillResponse {
            id: b.id,
            dag_id: b.dag_id.clone(),
            dag_display_name: b.dag_id.clone(),
            from_date: b.from_date,
            to_date: b.to_date,
            dag_run_conf: serde_json::from_str(&b.dag_run_conf)
                .unwrap_or(serde_json::Value::Object(Default::default())),
            is_paused: b.is_paused,
            reprocess_behavior: b.reprocess_behavior.as_str().into(),
            max_active_runs: b.max_active_runs,
            created_at: b.created_at,
            completed_at: b.completed_at,
            updated_at: b.updated_at,
        }
    }
}

/// Backfills.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillCollection {
    pub backfills: Vec<BackfillResponse>,
    pub total_entries: i64,
}

/// A backfill to start (Airflow's `BackfillPostBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BackfillBody {
    pub dag_id: String,
    /// First logical date, included.
    pub from_date: DateTime<Utc>,
    /// Last logical date, included.
    pub to_date: DateTime<Utc>,
    /// Must be false: runs are created oldest first.
    #[serde(default)]
    pub run_backwards: bool,
    /// Conf of every run (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub dag_run_conf: Option<serde_json::Value>,
    /// Dates with a run: `none` (leave them, the default), `failed` (clear
    /// failed tasks of failed runs) or `completed` (run every finished run again).
    pub reprocess_behavior: Option<String>,
    /// At most this many of the DAG's runs active (default 10).
    pub max_active_runs: Option<i64>,
    /// Ignored: backfills always run the latest version.
    pub run_on_latest_version: Option<bool>,
}

/// Starts a backfill (operator).
#[utoipa::path(post, path = "/api/v2/backfills", tag = "Backfill", request_body = BackfillBody,
    responses((status = 200, body = BackfillResponse), WriteErrors))]
pub async fn create_backfill(
    State(state): State<AppState>,
    Operator(who): Operator,
    Body(body): Body<BackfillBody>,
) -> ApiResult<Json<BackfillResponse>> {
    if body.run_backwards {
        return Err(ApiError::unprocessable(
            "run_backwards: weir backfills oldest first",
        ));
    }
    if body.to_date < body.from_date {
        return Err(ApiError::unprocessable("to_date is before from_date"));
    }
    let reprocess: Reprocess = body
        .reprocess_behavior
        .as_deref()
        .unwrap_or("none")
        .parse()
        .map_err(|e: String| ApiError::unprocessable(format!("reprocess_behavior: {e}")))?;
    let conf = match body.dag_run_conf {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(c @ serde_json::Value::Object(_)) => c,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "dag_run_conf: must be a JSON object",
            ));
        }
    };
    let request = BackfillRequest {
        dag_id: body.dag_id,
        from: body.from_date,
        to: body.to_date,
        reprocess,
        max_active_runs: body.max_active_runs.unwrap_or(10),
        conf,
    };
    let record = start(&state, &who.name, &request).await?;
    Ok(Json(BackfillResponse::from(&record)))
}

/// A backfill to start, checked by [`start`].
#[derive(Debug, Clone)]
pub(crate) struct BackfillRequest {
    /// The DAG.
    pub dag_id: String,
    /// First logical date, included.
    pub from: DateTime<Utc>,
    /// Last logical date, included.
    pub to: DateTime<Utc>,
    /// What to do with dates that have a run.
    pub reprocess: Reprocess,
    /// At most this many of the DAG's runs active.
    pub max_active_runs: i64,
    /// Conf of every run (a JSON object).
    pub conf: serde_json::Value,
}

/// Records a backfill and creates its first runs (the API and the UI both
/// start backfills here).
pub(crate) async fn start(
    state: &AppState,
    actor: &str,
    req: &BackfillRequest,
) -> ApiResult<BackfillRecord> {
    if req.to < req.from {
        return Err(ApiError::unprocessable("to_date is before from_date"));
    }
    if !(1..=1000).contains(&req.max_active_runs) {
        return Err(ApiError::unprocessable(
            "max_active_runs: must be between 1 and 1000",
        ));
    }
    let (_, dag) = state.scheduler.latest_dag(&req.dag_id).await?;
    if !matches!(dag.schedule, Schedule::Cron(_)) {
        return Err(ApiError::unprocessable(format!(
            "DAG `{}` has no time schedule to backfill; trigger runs instead",
            req.dag_id
        )));
    }
    let store = state.scheduler.store();
    let (active, _) = store
        .list_backfills(&BackfillFilter {
            dag_id: Some(req.dag_id.clone()),
            unfinished_only: true,
            limit: 1,
            offset: 0,
        })
        .await?;
    if let Some(b) = active.first() {
        return Err(ApiError::conflict(format!(
            "DAG `{}` has an unfinished backfill ({}); cancel it first",
            req.dag_id, b.id
        )));
    }
    let now = state.scheduler.now();
    let record = store
        .create_backfill(&NewBackfill {
            dag_id: req.dag_id.clone(),
            from_date: req.from,
            to_date: req.to,
            dag_run_conf: req.conf.to_string(),
            reprocess_behavior: req.reprocess,
            max_active_runs: req.max_active_runs,
            created_by: actor.to_owned(),
            created_at: now,
        })
        .await?;
    let running = store.count_active_runs(&req.dag_id).await?;
    let range = BackfillRange {
        from: req.from,
        to: req.to,
        reprocess: req.reprocess,
        conf: req.conf.to_string(),
    };
    state
        .scheduler
        .backfill_range(
            &req.dag_id,
            &range,
            usize::try_from(req.max_active_runs - running).unwrap_or(0),
            actor,
        )
        .await?;
    Ok(record)
}

/// Filters of the backfill list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillListParams {
    /// Only this DAG's backfills.
    pub dag_id: Option<String>,
}

/// Backfills, oldest first.
#[utoipa::path(get, path = "/api/v2/backfills", tag = "Backfill", params(Page, BackfillListParams),
    responses((status = 200, body = BackfillCollection), ReadErrors))]
pub async fn list_backfills(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<BackfillListParams>,
) -> ApiResult<Json<BackfillCollection>> {
    let (limit, offset) = page.bounds()?;
    let (rows, total) = state
        .scheduler
        .store()
        .list_backfills(&BackfillFilter {
            dag_id: p.dag_id.clone(),
            unfinished_only: false,
            limit,
            offset,
        })
        .await?;
    Ok(Json(BackfillCollection {
        backfills: rows.iter().map(BackfillResponse::from).collect(),
        total_entries: total,
    }))
}

/// One backfill.
#[utoipa::path(get, path = "/api/v2/backfills/{backfill_id}", tag = "Backfill",
    params(("backfill_id" = i64, Path, description = "The backfill")),
    responses((status = 200, body = BackfillResponse), ReadErrors))]
pub async fn get_backfill(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> ApiResult<Json<BackfillResponse>> {
    let b = state.scheduler.store().get_backfill(id).await?;
    Ok(Json(BackfillResponse::from(&b)))
}

async fn set_paused(
    state: &AppState,
    who: &str,
    id: i64,
    change: BackfillChange,
) -> ApiResult<BackfillResponse> {
    let store = state.scheduler.store();
    let b = store.get_backfill(id).await?;
    if b.completed_at.is_some() {
        return Err(ApiError::conflict(format!("backfill {id} has finished")));
    }
    let b = store
        .update_backfill(id, change, state.scheduler.now())
        .await?;
    let what = match change {
        BackfillChange::Pause => AuditAction::PauseBackfill,
        _ => AuditAction::UnpauseBackfill,
    };
    audit(state, who, what, &b).await?;
    Ok(BackfillResponse::from(&b))
}

async fn audit(
    state: &AppState,
    who: &str,
    action: AuditAction,
    b: &BackfillRecord,
) -> ApiResult<()> {
    state
        .scheduler
        .store()
        .audit(&weir_core::store::AuditEntry {
            at: state.scheduler.now(),
            actor: who.to_owned(),
            action,
            dag_id: Some(b.dag_id.clone()),
            run_id: None,
            task_id: None,
            detail: Some(serde_json::json!({"backfill": b.id}).to_string()),
        })
        .await?;
    Ok(())
}

/// Pauses a backfill: it creates no more runs (operator).
#[utoipa::path(put, path = "/api/v2/backfills/{backfill_id}/pause", tag = "Backfill",
    params(("backfill_id" = i64, Path, description = "The backfill")),
    responses((status = 200, body = BackfillResponse), WriteErrors))]
pub async fn pause_backfill(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<i64>,
) -> ApiResult<Json<BackfillResponse>> {
    Ok(Json(
        set_paused(&state, &who.name, id, BackfillChange::Pause).await?,
    ))
}

/// Resumes a paused backfill (operator).
#[utoipa::path(put, path = "/api/v2/backfills/{backfill_id}/unpause", tag = "Backfill",
    params(("backfill_id" = i64, Path, description = "The backfill")),
    responses((status = 200, body = BackfillResponse), WriteErrors))]
pub async fn unpause_backfill(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<i64>,
) -> ApiResult<Json<BackfillResponse>> {
    Ok(Json(
        set_paused(&state, &who.name, id, BackfillChange::Unpause).await?,
    ))
}

/// Cancels a backfill: no more runs, and its runs that have not started are
/// marked failed (operator).
#[utoipa::path(put, path = "/api/v2/backfills/{backfill_id}/cancel", tag = "Backfill",
    params(("backfill_id" = i64, Path, description = "The backfill")),
    responses((status = 200, body = BackfillResponse), WriteErrors))]
pub async fn cancel_backfill(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<i64>,
) -> ApiResult<Json<BackfillResponse>> {
    let store = state.scheduler.store();
    let b = store.get_backfill(id).await?;
    if b.completed_at.is_some() {
        return Err(ApiError::conflict(format!("backfill {id} has finished")));
    }
    let now = state.scheduler.now();
    let b = store
        .update_backfill(id, BackfillChange::Cancel, now)
        .await?;
    let (waiting, _) = store
        .list_runs(&RunFilter {
            dag_id: Some(b.dag_id.clone()),
            states: vec![RunState::Queued],
            run_types: vec![RunType::Backfill],
            ranges: vec![TimeRange {
                column: RunTime::LogicalDate,
                from: Some(b.from_date),
                to: Some(b.to_date),
            }],
            ..RunFilter::default()
        })
        .await?;
    for run in waiting {
        state
            .scheduler
            .set_run_state(&b.dag_id, &run.run_id, RunState::Failed, &who.name)
            .await?;
    }
    audit(&state, &who.name, AuditAction::CancelBackfill, &b).await?;
    Ok(Json(BackfillResponse::from(&b)))
}
