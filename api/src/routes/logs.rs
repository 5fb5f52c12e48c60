//! Try logs, read in pieces: each answer carries a continuation token to
//! read what the try writes next, until it has ended and all was read.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};
use crate::models::{LogLine, LogResponse};
use crate::try_log::TryLog;

/// The most a piece holds (unless `full_content`).
const PIECE: u64 = 1 << 20;

/// How much of the log to read.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// The whole log at once.
    #[serde(default)]
    pub full_content: bool,
    /// The continuation token of the previous piece.
    pub token: Option<String>,
    /// The mapped instance (default -1: the task's own instance).
    pub map_index: Option<i64>,
}

/// The log of one try, as JSON lines (or plain text when the request
/// accepts only `text/plain`).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", tag = "TaskInstance",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("try_number" = i64, Path, description = "The try (1 is the first)"),
           LogParams),
    responses((status = 200, description = "The piece of the log",
               content((LogResponse = "application/json"), (String = "text/plain"))),
              ReadErrors))]
pub async fn get_log(
    State(state): State<AppState>,
    _: Viewer,
    headers: HeaderMap,
    Path((dag_id, run_id, task_id, try_number)): Path<(String, String, String, i64)>,
    Query(p): Query<LogParams>,
) -> ApiResult<Response> {
    let start: u64 = match p.token.as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse().map_err(|_| {
            ApiError::unprocessable(format!("token `{t}` is not a continuation token"))
        })?,
    };
    let store = state.scheduler.store();
    let ti = store
        .get_mapped_instance(&dag_id, &run_id, &task_id, p.map_index.unwrap_or(-1))
        .await?;
    let tr = store
        .list_tries(&ti.id)
        .await?
        .into_iter()
        .find(|t| t.try_number == try_number)
        .ok_or_else(|| {
            ApiError::not_found(format!("try {try_number} of task `{task_id}` not found"))
        })?;
    let ended = tr.end_date.is_some();
    let log = TryLog::find(&state.logs_dir, &tr.log_path, &ti.id, tr.try_number).await;
    let (text, next) = read_piece(
        &**store,
        &log,
        start,
        if p.full_content { u64::MAX } else { PIECE },
        ended,
    )
    .await?;
    let finished = ended && next.is_none();
    let plain = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") && !a.contains("json"));
    if plain {
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let content = text
        .lines()
        .map(|l| LogLine {
            event: l.to_owned(),
        })
        .collect();
    Ok(Json(LogResponse {
        content,
        continuation_token: if finished {
            None
        } else {
            Some(next.unwrap_or(start).to_string())
        },
    })
    .into_response())
}

/// Reads from `start` at most `max` bytes, ending at a line end unless the
/// try has ended. Returns the text and the offset to read from next
/// (`None` when the file was read to its end).
async fn read_piece(
    store: &dyn weir_core::store::Store,
    log: &TryLog,
    start: u64,
    max: u64,
    ended: bool,
) -> ApiResult<(String, Option<u64>)> {
    let len = log.len(store).await.map_err(|e| ApiError::internal(&e))?;
    if start > len {
        if len == 0 {
            return Ok((String::new(), (!ended).then_some(start)));
        }
        return Err(ApiError::unprocessable(
            "the continuation token is past the end of the log",
        ));
    }
    let mut buf = log
        .read(store, start, max.min(len - start))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let reached_end = start + buf.len() as u64 >= len;
    if !(ended && reached_end) {
        // Hand out whole lines only; the rest comes with the next piece.
        match buf.iter().rposition(|b| *b == b'\n') {
            Some(i) => buf.truncate(i + 1),
            None if buf.len() as u64 == max => {}
            None => buf.clear(),
        }
    }
    let next = start + buf.len() as u64;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok((text, (next < len || !ended).then_some(next)))
}
