//! Workers: the active worker lives and the tries each one runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Admin, Viewer};
use crate::error::{ApiResult, Path, ReadErrors, WriteErrors};

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
    /// `active`, `draining` (claims nothing more, finishes what runs) or
    /// `lost` (not heard of for longer than a lease).
    pub state: String,
    /// weir's version on the worker.
    pub version: String,
    /// The queues it serves (`null`: every queue, a local pool).
    pub queues: Option<Vec<String>>,
    /// How many tries it runs at once.
    pub slots: i64,
    /// `true` for a `weir worker` talking HTTP; `false` for a local pool.
    pub remote: bool,
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

/// The workers that run or ran lately, oldest first, with the tries they
/// run now: the active and draining ones, and those lost in the last day.
#[utoipa::path(get, path = "/api/v2/workers", tag = "Worker",
    responses((status = 200, body = WorkerCollection), ReadErrors))]
pub async fn list_workers(
    State(state): State<AppState>,
    _: Viewer,
) -> ApiResult<Json<WorkerCollection>> {
    Ok(Json(worker_list(&state).await?))
}

/// The workers view.
pub async fn worker_list(state: &AppState) -> ApiResult<WorkerCollection> {
    let workers: Vec<WorkerResponse> = state
        .scheduler
        .workers_view()
        .await?
        .into_iter()
        .map(|v| WorkerResponse {
            running: v.running,
            lease_until: v.lease_until,
            state: v.standing.as_str().to_owned(),
            name: v.life.name,
            hostname: v.life.hostname,
            pid: v.life.pid,
            version: v.life.version,
            queues: v.life.queues,
            slots: v.life.slots,
            remote: v.life.remote,
            started_at: v.life.started_at,
            heartbeat_at: v.life.heartbeat_at,
        })
        .collect();
    Ok(WorkerCollection {
        total_entries: i64::try_from(workers.len()).unwrap_or(i64::MAX),
        workers,
    })
}

/// Asks a worker to drain: it claims nothing more and finishes what it runs
/// (a remote worker learns it from its next heartbeat or claim, then stops).
#[utoipa::path(post, path = "/api/v2/workers/{name}/drain", tag = "Worker",
    params(("name" = String, Path, description = "The worker's name")),
    responses((status = 204), WriteErrors))]
pub async fn drain_worker(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.scheduler.drain_worker(&name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
