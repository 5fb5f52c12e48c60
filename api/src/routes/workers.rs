//! Workers: the active worker lives and the tries each one runs.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::state::TaskState;
use weir_core::store::{TaskFilter, WorkerFilter};
use weir_core::workers::WorkerState;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiResult, ReadErrors};

/// A worker life and what it runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerResponse {
    /// The worker's name, unique to this start of its process
    /// (`<role>@<host>:<random>`); task instances name it as `executor`.
    pub name: String,
    /// Its host.
    pub hostname: String,
    /// Its process id on that host.
    pub pid: i64,
    /// `active` (the list shows only active workers).
    pub state: String,
    /// When this life started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Tries it is running.
    pub running: i64,
    /// The latest lease it renewed.
    pub lease_until: Option<DateTime<Utc>>,
}

/// Workers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerCollection {
    pub workers: Vec<WorkerResponse>,
    pub total_entries: i64,
}

/// The active workers, oldest first, with the tries they run now.
#[utoipa::path(get, path = "/api/v2/workers", tag = "Worker",
    responses((status = 200, body = WorkerCollection), ReadErrors))]
pub async fn list_workers(
    State(state): State<AppState>,
    _: Viewer,
) -> ApiResult<Json<WorkerCollection>> {
    let store = state.scheduler.store();
    let lives = store
        .list_workers(&WorkerFilter {
            hostname: None,
            state: Some(WorkerState::Active),
        })
        .await?;
    let (running, _) = store
        .find_task_instances(&TaskFilter {
            states: vec![TaskState::Running],
            ..TaskFilter::default()
        })
        .await?;
    let workers: Vec<WorkerResponse> = lives
        .into_iter()
        .map(|w| {
            let tries = running
                .iter()
                .filter(|t| t.worker.as_deref() == Some(w.name.as_str()));
            WorkerResponse {
                running: i64::try_from(tries.clone().count()).unwrap_or(i64::MAX),
                lease_until: tries.filter_map(|t| t.lease_until).max(),
                name: w.name,
                hostname: w.hostname,
                pid: w.pid,
                state: w.state.as_str().to_owned(),
                started_at: w.started_at,
                heartbeat_at: w.heartbeat_at,
            }
        })
        .collect();
    Ok(Json(WorkerCollection {
        total_entries: i64::try_from(workers.len()).unwrap_or(i64::MAX),
        workers,
    }))
}
