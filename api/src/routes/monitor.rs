//! Health and version: what monitoring reads without credentials.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// The state of one component.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentHealth {
    /// `healthy` or `unhealthy`; null when weir has no such component.
    pub status: Option<String>,
}

/// The scheduler's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchedulerHealth {
    /// `healthy` or `unhealthy`.
    pub status: Option<String>,
    /// When the scheduler last answered.
    pub latest_scheduler_heartbeat: Option<chrono::DateTime<chrono::Utc>>,
}

/// The triggerer's health (weir has none: sensors run in workers).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TriggererHealth {
    /// Always null.
    pub status: Option<String>,
    /// Always null.
    pub latest_triggerer_heartbeat: Option<chrono::DateTime<chrono::Utc>>,
}

/// Health of each component (Airflow's `HealthInfoResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthResponse {
    pub metadatabase: ComponentHealth,
    pub scheduler: SchedulerHealth,
    pub triggerer: TriggererHealth,
}

/// Whether the database answers. Needs no credentials.
#[utoipa::path(get, path = "/api/v2/monitor/health", tag = "Monitor", security(()),
    responses((status = 200, body = HealthResponse)))]
pub async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    let db = match state.scheduler.store().list_pools().await {
        Ok(_) => "healthy",
        Err(e) => {
            tracing::warn!("health check: the database does not answer: {e}");
            "unhealthy"
        }
    };
    Json(HealthResponse {
        metadatabase: ComponentHealth {
            status: Some(db.into()),
        },
        scheduler: SchedulerHealth {
            status: Some("healthy".into()),
            latest_scheduler_heartbeat: Some(state.scheduler.now()),
        },
        triggerer: TriggererHealth {
            status: None,
            latest_triggerer_heartbeat: None,
        },
    })
}

/// The server's version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionResponse {
    /// weir's version.
    pub version: String,
    /// Not recorded.
    pub git_version: Option<String>,
}

/// weir's version. Needs no credentials (as in Airflow).
#[utoipa::path(get, path = "/api/v2/version", tag = "Monitor", security(()),
    responses((status = 200, body = VersionResponse)))]
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        git_version: None,
    })
}
