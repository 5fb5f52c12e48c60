//! The notifications a run fired and how their delivery went (weir's own
//! endpoint; Airflow has no equivalent).

use axum::Json;
use axum::extract::State;
use weir_core::store::NotificationRecord;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiResult, Path, ReadErrors};
use crate::models::{NotificationCollection, NotificationResponse};

impl From<&NotificationRecord> for NotificationResponse {
    fn from(n: &NotificationRecord) -> Self {
        NotificationResponse {
            id: n.id,
            event: n.event.as_str().to_owned(),
            rule: n.rule.clone(),
            task_id: n.task_id.clone(),
            try_number: n.try_number,
            state: n.state.clone(),
            attempts: n.attempts,
            last_error: n.last_error.clone(),
            created_at: n.created_at,
            sent_at: n.sent_at,
        }
    }
}

/// A run's notifications, oldest first.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/notifications", tag = "DagRun",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    responses((status = 200, body = NotificationCollection), ReadErrors))]
pub async fn list_notifications(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<NotificationCollection>> {
    let store = state.scheduler.store();
    let run = store.get_run(&dag_id, &run_id).await?;
    let all = store.run_notifications(run.id).await?;
    Ok(Json(NotificationCollection {
        total_entries: i64::try_from(all.len()).unwrap_or(i64::MAX),
        notifications: all.iter().map(NotificationResponse::from).collect(),
    }))
}
