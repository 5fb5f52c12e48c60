//! DAG files that failed to load.

use axum::Json;
use axum::extract::State;

use super::Page;
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};
use crate::models::{ImportErrorCollection, ImportErrorResponse};

/// The current import errors.
#[utoipa::path(get, path = "/api/v2/importErrors", tag = "ImportError", params(Page),
    responses((status = 200, body = ImportErrorCollection), ReadErrors))]
pub async fn list_import_errors(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
) -> ApiResult<Json<ImportErrorCollection>> {
    let all = state.scheduler.store().list_import_errors().await?;
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    Ok(Json(ImportErrorCollection {
        import_errors: page
            .slice(all)?
            .iter()
            .map(ImportErrorResponse::from)
            .collect(),
        total_entries: total,
    }))
}

/// One import error.
#[utoipa::path(get, path = "/api/v2/importErrors/{import_error_id}", tag = "ImportError",
    params(("import_error_id" = i64, Path, description = "The import error's id")),
    responses((status = 200, body = ImportErrorResponse), ReadErrors))]
pub async fn get_import_error(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> ApiResult<Json<ImportErrorResponse>> {
    state
        .scheduler
        .store()
        .list_import_errors()
        .await?
        .iter()
        .find(|e| e.id == id)
        .map(|e| Json(ImportErrorResponse::from(e)))
        .ok_or_else(|| ApiError::not_found(format!("import error {id} not found")))
}
