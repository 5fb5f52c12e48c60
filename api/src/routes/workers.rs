//! Workers holding running tries.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::state::TaskState;
use weir_core::store::TaskFilter;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiResult, ReadErrors};

/// A worker and what it runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerResponse {
    /// The worker's name.
    pub name: String,
    /// Its host.
    pub hostname: Option<String>,
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

/// The workers that hold running tries now.
#[utoipa::path(get, path = "/api/v2/workers", tag = "Worker",
    responses((status = 200, body = WorkerCollection), ReadErrors))]
pub async fn list_workers(
    State(state): State<AppState>,
    _: Viewer,
) -> ApiResult<Json<WorkerCollection>> {
    let (running, _) = state
        .scheduler
        .store()
        .find_task_instances(&TaskFilter {
            states: vec![TaskState::Running],
            ..TaskFilter::default()
        })
        .await?;
    let mut workers: Vec<WorkerResponse> = Vec::new();
    for t in running {
        let name = t.worker.clone().unwrap_or_else(|| "unknown".into());
        match workers.iter_mut().find(|w| w.name == name) {
            Some(w) => {
                w.running += 1;
                w.lease_until = w.lease_until.max(t.lease_until);
            }
            None => workers.push(WorkerResponse {
                name,
                hostname: t.hostname.clone(),
                running: 1,
                lease_until: t.lease_until,
            }),
        }
    }
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(WorkerCollection {
        total_entries: i64::try_from(workers.len()).unwrap_or(i64::MAX),
        workers,
    }))
}
