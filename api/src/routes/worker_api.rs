//! The remote-worker protocol under `/api/worker/v1/` ([`weir_core::protocol`]):
//! register, claim by long-poll, heartbeat, push log pieces, report, reach
//! the catalog, read DAG versions and stop. Only `worker` tokens reach these
//! endpoints, and `worker` tokens reach nothing else.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_core::protocol::{
    self, CatalogRequest, ClaimBody, Claimed, Heartbeat, HeartbeatReply, LogAck, LogPiece,
    Register, Registered, ReportReply, TryReport, VersionReply,
};
use weir_core::workers::{NewWorker, WorkerState};

use crate::AppState;
use crate::auth::WorkerToken;
use crate::error::{ApiError, ApiResult, Body, Path, WorkerErrors};

/// How often a waiting claim looks for work queued by other processes.
const CLAIM_POLL: Duration = Duration::from_millis(200);

/// A queue name: letters, digits, `-`, `_`, `.`.
fn check_queues(queues: &[String]) -> ApiResult<()> {
    if queues.is_empty() {
        return Err(ApiError::unprocessable(
            "a worker must serve at least one queue",
        ));
    }
    for q in queues {
        if !weir_core::dag::convert::is_queue_name(q) {
            return Err(ApiError::unprocessable(format!(
                "queue `{q}` may use only letters, digits, `-`, `_` and `.`"
            )));
        }
    }
    Ok(())
}

/// Registers a worker life.
#[utoipa::path(post, path = "/api/worker/v1/register", tag = "Remote worker",
    request_body = Register,
    responses((status = 200, body = Registered), WorkerErrors))]
pub async fn register(
    State(state): State<AppState>,
    WorkerToken(who): WorkerToken,
    Body(body): Body<Register>,
) -> ApiResult<Json<Registered>> {
    let server_version = env!("CARGO_PKG_VERSION");
    if body.protocol != protocol::PROTOCOL {
        return Err(ApiError::bad_request(format!(
            "this server (weir {server_version}) speaks worker protocol {}; the worker (weir {}) speaks {}: \
             run the same weir version on workers and servers",
            protocol::PROTOCOL,
            body.version,
            body.protocol
        )));
    }
    check_queues(&body.queues)?;
    if body.slots == 0 {
        return Err(ApiError::unprocessable("a worker needs at least one slot"));
    }
    if body.name.trim().is_empty() || body.hostname.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "the worker's name and host must not be empty",
        ));
    }
    let life = NewWorker {
        name: body.name.clone(),
        hostname: body.hostname,
        pid: body.pid,
        process_token: body.process_token,
        version: body.version,
        queues: Some(body.queues),
        slots: i64::from(body.slots),
        remote: true,
    };
    state.scheduler.register_worker(&life).await?;
    tracing::info!(worker = %life.name, host = %life.hostname, by = %who.name, "remote worker registered");
    let lease = state.scheduler.lease();
    Ok(Json(Registered {
        name: life.name,
        lease_seconds: lease.as_secs_f64(),
        heartbeat_seconds: (lease / 3).as_secs_f64(),
        catalog_id: state.scheduler.catalog_id().await?,
        server_version: server_version.to_owned(),
    }))
}

/// Claims tries for a worker's free slots, waiting up to `wait_seconds` for
/// work; answers with no tries when none came.
#[utoipa::path(post, path = "/api/worker/v1/claim", tag = "Remote worker",
    request_body = ClaimBody,
    responses((status = 200, body = Claimed), WorkerErrors))]
pub async fn claim(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<ClaimBody>,
) -> ApiResult<Json<Claimed>> {
    check_queues(&body.queues)?;
    let wait = body
        .wait_seconds
        .unwrap_or(20.0)
        .clamp(0.0, protocol::MAX_CLAIM_WAIT_SECONDS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    let limit = usize::try_from(body.free_slots).unwrap_or(0);
    let sched = &state.scheduler;
    loop {
        let mut signal = sched.work_signal();
        let claimed = sched
            .claim_remote(&body.worker, &body.queues, limit)
            .await?;
        if !claimed.tries.is_empty()
            || claimed.drain
            || limit == 0
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(Json(claimed));
        }
        tokio::select! {
            _ = signal.changed() => {}
            () = tokio::time::sleep(CLAIM_POLL) => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = state.closing.cancelled() => return Ok(Json(claimed)),
        }
    }
}

/// Renews the leases of a worker's running tries and names those it must kill.
#[utoipa::path(post, path = "/api/worker/v1/heartbeat", tag = "Remote worker",
    request_body = Heartbeat,
    responses((status = 200, body = HeartbeatReply), WorkerErrors))]
pub async fn heartbeat(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<Heartbeat>,
) -> ApiResult<Json<HeartbeatReply>> {
    Ok(Json(
        state
            .scheduler
            .heartbeat_remote(&body.worker, &body.tries)
            .await?,
    ))
}

/// Appends a piece of a running try's log. A piece sent again adds nothing;
/// a piece for a lease that no longer holds is refused (409/410).
#[utoipa::path(post, path = "/api/worker/v1/logs", tag = "Remote worker",
    request_body = LogPiece,
    responses((status = 200, body = LogAck), WorkerErrors))]
pub async fn push_log(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<LogPiece>,
) -> ApiResult<Json<LogAck>> {
    if body.data.len() > protocol::MAX_LOG_PIECE {
        return Err(ApiError::unprocessable(format!(
            "a log piece holds at most {} bytes",
            protocol::MAX_LOG_PIECE
        )));
    }
    let next_offset = state
        .scheduler
        .push_log(&body.lease, body.offset, body.data.as_bytes())
        .await?;
    Ok(Json(LogAck { next_offset }))
}

/// Records how a try ended, fenced by its lease; a report sent again is
/// answered with `recorded: false`. With `claim_next`, the freed slot's
/// next try comes back in the same answer.
#[utoipa::path(post, path = "/api/worker/v1/report", tag = "Remote worker",
    request_body = TryReport,
    responses((status = 200, body = ReportReply), WorkerErrors))]
pub async fn report(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<TryReport>,
) -> ApiResult<Json<ReportReply>> {
    if let Some(queues) = &body.claim_next {
        check_queues(queues)?;
    }
    let (recorded, next) = state.scheduler.report_remote(&body).await?;
    Ok(Json(ReportReply { recorded, next }))
}

/// Answers a data task's or sensor's catalog call under its try's lease.
#[utoipa::path(post, path = "/api/worker/v1/catalog", tag = "Remote worker",
    request_body = CatalogRequest,
    responses((status = 200, body = Object), WorkerErrors))]
pub async fn catalog(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<CatalogRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(state.scheduler.catalog_remote(body).await?))
}

/// A DAG version's definition, for a worker to run its tasks.
#[utoipa::path(get, path = "/api/worker/v1/versions/{version_id}", tag = "Remote worker",
    params(("version_id" = i64, Path, description = "The DAG version")),
    responses((status = 200, body = VersionReply), WorkerErrors))]
pub async fn version(
    State(state): State<AppState>,
    _: WorkerToken,
    Path(version_id): Path<i64>,
) -> ApiResult<Json<VersionReply>> {
    let v = state.scheduler.store().get_version(version_id).await?;
    Ok(Json(VersionReply {
        version_id: v.id,
        fileloc: v.fileloc,
        definition: v.definition,
    }))
}

/// A worker stopping.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// The worker's name.
    pub worker: String,
}

/// Records that a worker stopped (it handed back or finished every try).
#[utoipa::path(post, path = "/api/worker/v1/stop", tag = "Remote worker",
    request_body = StopBody,
    responses((status = 204), WorkerErrors))]
pub async fn stop(
    State(state): State<AppState>,
    _: WorkerToken,
    Body(body): Body<StopBody>,
) -> ApiResult<axum::http::StatusCode> {
    state
        .scheduler
        .end_worker(&body.worker, WorkerState::Stopped)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
