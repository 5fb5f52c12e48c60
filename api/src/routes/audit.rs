//! The audit log: every change, who made it and when — as weir's own list
//! and as Airflow's `eventLogs`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_core::store::{AuditAction, AuditFilter, AuditRecord};

use super::{Page, order_by};
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};
use crate::models::{AuditCollection, AuditResponse};

/// Filters of the audit log.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries about this DAG.
    pub dag_id: Option<String>,
}

/// Audit-log entries, newest first.
#[utoipa::path(get, path = "/api/v2/auditLog", tag = "AuditLog", params(Page, AuditParams),
    responses((status = 200, body = AuditCollection), ReadErrors))]
pub async fn list_audit(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<AuditCollection>> {
    let (limit, offset) = page.bounds()?;
    let (rows, total) = state
        .scheduler
        .store()
        .list_audit(
            &AuditFilter {
                dag_id: p.dag_id,
                ..AuditFilter::default()
            },
            limit,
            offset,
        )
        .await?;
    Ok(Json(AuditCollection {
        entries: rows.iter().map(AuditResponse::from).collect(),
        total_entries: total,
    }))
}

/// Filters of the event log (Airflow's names).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventLogParams {
    /// `id`/`event_log_id` or `when`/`dttm` (`-` for newest first; default oldest first).
    pub order_by: Option<String>,
    /// Only entries about this DAG.
    pub dag_id: Option<String>,
    /// Only entries about this task.
    pub task_id: Option<String>,
    /// Only entries about this run.
    pub run_id: Option<String>,
    /// Only entries made by this user (or token owner).
    pub owner: Option<String>,
    /// Only this kind of entry (`trigger`, `clear`, `pause`, …).
    pub event: Option<String>,
    /// Only entries before this moment.
    pub before: Option<DateTime<Utc>>,
    /// Only entries after this moment.
    pub after: Option<DateTime<Utc>>,
    /// Refused: weir's entries carry no try number.
    pub try_number: Option<i64>,
    /// Weir has no mapped tasks: only -1 is accepted.
    pub map_index: Option<i64>,
    /// Refused: filter by one `event` instead.
    #[serde(default)]
    pub included_events: Vec<String>,
    /// Refused: filter by one `event` instead.
    #[serde(default)]
    pub excluded_events: Vec<String>,
}

/// One audit entry as Airflow's `EventLogResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogResponse {
    pub event_log_id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub dag_display_name: Option<String>,
    pub task_id: Option<String>,
    pub task_display_name: Option<String>,
    pub run_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    /// What happened (`trigger`, `clear`, `pause`, …).
    pub event: String,
    pub logical_date: Option<DateTime<Utc>>,
    /// Who did it.
    pub owner: Option<String>,
    /// The entry's details (JSON text).
    pub extra: Option<String>,
}

impl From<&AuditRecord> for EventLogResponse {
    fn from(r: &AuditRecord) -> Self {
        EventLogResponse {
            event_log_id: r.id,
            when: r.at,
            dag_id: r.dag_id.clone(),
            dag_display_name: r.dag_id.clone(),
            task_id: r.task_id.clone(),
            task_display_name: r.task_id.clone(),
            run_id: r.run_id.clone(),
            map_index: r.task_id.as_ref().map(|_| -1),
            try_number: None,
            event: r.action.as_str().to_owned(),
            logical_date: None,
            owner: Some(r.actor.clone()),
            extra: r.detail.clone(),
        }
    }
}

/// Event logs (Airflow's `EventLogCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogCollection {
    pub event_logs: Vec<EventLogResponse>,
    pub total_entries: i64,
}

/// The audit log in Airflow's `eventLogs` shape, oldest first unless ordered.
#[utoipa::path(get, path = "/api/v2/eventLogs", tag = "EventLog", params(Page, EventLogParams),
    responses((status = 200, body = EventLogCollection), ReadErrors))]
pub async fn list_event_logs(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<EventLogParams>,
) -> ApiResult<Json<EventLogCollection>> {
    let (limit, offset) = page.bounds()?;
    // Entries are numbered in the order they were written: by id is by time.
    let order = order_by(
        p.order_by.as_deref(),
        &[("id", ()), ("event_log_id", ()), ("when", ()), ("dttm", ())],
    )?;
    if p.try_number.is_some() {
        return Err(ApiError::unprocessable(
            "try_number: weir's audit entries carry no try number",
        ));
    }
    if p.map_index.is_some_and(|i| i != -1) {
        return Err(ApiError::unprocessable(
            "map_index: audit entries name tasks, not mapped instances; only -1 is accepted",
        ));
    }
    if !p.included_events.is_empty() || !p.excluded_events.is_empty() {
        return Err(ApiError::unprocessable(
            "included_events/excluded_events are not supported; filter by one `event`",
        ));
    }
    let action = p
        .event
        .as_deref()
        .map(|e| {
            e.parse::<AuditAction>().map_err(|_| {
                let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::unprocessable(format!("event `{e}`: weir records {}", names.join(", ")))
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        dag_id: p.dag_id,
        task_id: p.task_id,
        run_id: p.run_id,
        actor: p.owner,
        action,
        before: p.before,
        after: p.after,
        oldest_first: !order.is_some_and(|(_, desc)| desc),
    };
    let (rows, total) = state
        .scheduler
        .store()
        .list_audit(&filter, limit, offset)
        .await?;
    Ok(Json(EventLogCollection {
        event_logs: rows.iter().map(EventLogResponse::from).collect(),
        total_entries: total,
    }))
}

/// One audit entry in Airflow's `EventLogResponse` shape.
#[utoipa::path(get, path = "/api/v2/eventLogs/{event_log_id}", tag = "EventLog",
    params(("event_log_id" = i64, Path, description = "The entry's id")),
    responses((status = 200, body = EventLogResponse), ReadErrors))]
pub async fn get_event_log(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> ApiResult<Json<EventLogResponse>> {
    let r = state.scheduler.store().get_audit(id).await?;
    Ok(Json(EventLogResponse::from(&r)))
}
