//! weir-api: the HTTP server. For now it serves the health endpoint that
//! monitoring (and the Airflow client) reads; the REST API, auth and web UI
//! grow here.

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::scheduler::Scheduler;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The scheduler (and through it the store).
    pub scheduler: Scheduler,
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v2/monitor/health", get(health))
        .with_state(state)
}

/// `GET /api/v2/monitor/health`: whether the database answers (Airflow's shape).
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let db = match state.scheduler.store().list_pools().await {
        Ok(_) => "healthy",
        Err(e) => {
            tracing::warn!("health check: the database does not answer: {e}");
            "unhealthy"
        }
    };
    Json(json!({
        "metadatabase": {"status": db},
        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": chrono::Utc::now().to_rfc3339()},
        "triggerer": {"status": null, "latest_triggerer_heartbeat": null},
    }))
}

/// Serves `app` on `listener` until `cancel` fires (in-flight requests finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}
