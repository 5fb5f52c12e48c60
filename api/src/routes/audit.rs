//! The audit log: every change, who made it and when.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Page;
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiResult, Query, ReadErrors};
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
        .list_audit(p.dag_id.as_deref(), limit, offset)
        .await?;
    Ok(Json(AuditCollection {
        entries: rows.iter().map(AuditResponse::from).collect(),
        total_entries: total,
    }))
}
