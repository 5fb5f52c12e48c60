//! Waiting for a run to end (Airflow's `…/dagRuns/{id}/wait`): the run's
//! state as newline-delimited JSON, a line at once and one per interval,
//! until the run ends or the server stops. A client that accepts JSON but
//! not NDJSON (the official Airflow client) gets the last line alone, as
//! one JSON document, when the run ends.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use utoipa::IntoParams;
use weir_core::state::RunState;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};

/// The longest interval between two lines.
const MAX_INTERVAL: f64 = 3600.0;

/// How often to say the run's state.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Seconds between two lines (more than 0, at most 3600).
    pub interval: f64,
    /// Refused: weir tasks have no results (XCom) to collect yet.
    #[serde(default)]
    pub result: Vec<String>,
}

/// One line of the stream.
fn line(state: RunState) -> String {
    format!("{}\n", serde_json::json!({ "state": state.as_str() }))
}

/// Streams `{"state": …}` lines until the run ends (the last line is its
/// end state).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/wait", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           WaitParams),
    responses((status = 200, description = "The run's state, one JSON object per line (with `Accept: application/json`, the last one alone)",
               content((String = "application/x-ndjson"), (serde_json::Value = "application/json"))), ReadErrors))]
pub async fn wait_for_run(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
    Query(p): Query<WaitParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !(p.interval > 0.0 && p.interval <= MAX_INTERVAL) {
        return Err(ApiError::unprocessable(format!(
            "interval {}: give seconds above 0 and at most {MAX_INTERVAL}",
            p.interval
        )));
    }
    if !p.result.is_empty() {
        return Err(ApiError::unprocessable(
            "result: weir tasks have no results (XCom) to collect",
        ));
    }
    // A run that does not exist is a 404 now, not a broken stream later.
    let first = state.scheduler.store().get_run(&dag_id, &run_id).await?;
    let every = Duration::from_secs_f64(p.interval);
    let closing = state.closing.clone();
    let store = state.scheduler.store().clone();
    let lines = futures_util::stream::unfold((Some(first.state), false), move |(known, ended)| {
        let (store, closing, dag_id, run_id) = (
            store.clone(),
            closing.clone(),
            dag_id.clone(),
            run_id.clone(),
        );
        async move {
            if ended {
                return None;
            }
            let run_state = match known {
                Some(s) => s,
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = closing.cancelled() => return None,
                    }
                    match store.get_run(&dag_id, &run_id).await {
                        Ok(run) => run.state,
                        Err(e) => {
                            let error = serde_json::json!({ "error": e.to_string() });
                            return Some((
                                Ok::<_, std::io::Error>(format!("{error}\n")),
                                (None, true),
                            ));
                        }
                    }
                }
            };
            Some((Ok(line(run_state)), (None, run_state.is_finished())))
        }
    });
    if !wants_lines(&headers) {
        let last = lines
            .fold(
                String::new(),
                |last, line| async move { line.unwrap_or(last) },
            )
            .await;
        return Ok((
            [(header::CONTENT_TYPE, "application/json")],
            last.trim_end().to_owned(),
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Whether the client takes a stream of lines: it names NDJSON, or does not
/// name JSON.
fn wants_lines(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/x-ndjson") || !accept.contains("application/json")
}
