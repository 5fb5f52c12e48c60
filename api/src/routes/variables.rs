//! Variables in Airflow's shape (`/api/v2/variables`): values templates read
//! as `var.value.<key>` and `var.json.<key>`. Values of keys that name
//! something secret are answered as `***`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::scheduler::variables::shown;
use weir_core::store::{SaveMode, VariableFilter, VariableRecord};

use super::{Page, one_order_by, order_by, update_mask};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{VariableCollection, VariableResponse};

impl From<&VariableRecord> for VariableResponse {
    fn from(v: &VariableRecord) -> Self {
        VariableResponse {
            key: v.key.clone(),
            value: Some(shown(&v.key, &v.value).to_owned()),
            description: v.description.clone(),
            is_encrypted: false,
            team_name: None,
        }
    }
}

/// Filters and order of the variable list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VariableListParams {
    /// Sort by `key` (or its alias `id`) or `description`; `-` for
    /// descending (default `key`). One key: a second is refused.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Keys containing this text (case-insensitive; `%` matches any run of
    /// characters, `_` any one).
    pub variable_key_pattern: Option<String>,
    /// Keys starting with exactly this text.
    pub variable_key_prefix_pattern: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VariableOrder {
    Key,
    Description,
}

/// Variables, by key.
#[utoipa::path(get, path = "/api/v2/variables", tag = "Variable", params(Page, VariableListParams),
    responses((status = 200, body = VariableCollection), ReadErrors))]
pub async fn list_variables(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<VariableListParams>,
) -> ApiResult<Json<VariableCollection>> {
    let order = order_by(
        one_order_by(&p.order_by, "variables")?,
        &[
            ("key", VariableOrder::Key),
            ("id", VariableOrder::Key),
            ("description", VariableOrder::Description),
        ],
    )?;
    let filter = VariableFilter {
        key_pattern: p.variable_key_pattern.filter(|s| !s.is_empty()),
        key_prefix: p.variable_key_prefix_pattern.filter(|s| !s.is_empty()),
    };
    let mut all = state.scheduler.list_variables(&filter).await?;
    if let Some((by, desc)) = order {
        if by == VariableOrder::Description {
            all.sort_by(|a, b| a.description.cmp(&b.description).then(a.key.cmp(&b.key)));
        }
        if desc {
            all.reverse();
        }
    }
    let (shown, total) = page.of(all)?;
    Ok(Json(VariableCollection {
        variables: shown.iter().map(VariableResponse::from).collect(),
        total_entries: total,
    }))
}

/// One variable.
#[utoipa::path(get, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path, description = "The variable's key")),
    responses((status = 200, body = VariableResponse), ReadErrors))]
pub async fn get_variable(
    State(state): State<AppState>,
    _: Viewer,
    Path(key): Path<String>,
) -> ApiResult<Json<VariableResponse>> {
    let v = state.scheduler.get_variable(&key).await?;
    Ok(Json(VariableResponse::from(&v)))
}

/// A variable as given (Airflow's `VariableBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    /// 1 to 250 letters, digits, `_`, `-` or `.`.
    pub key: String,
    /// A string is kept as it is; any other JSON value as its JSON text.
    pub value: serde_json::Value,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Must be absent or null: weir has no teams.
    #[serde(default)]
    pub team_name: Option<String>,
}

impl VariableBody {
    /// The value as stored: strings as they are, other JSON as its text.
    fn text(&self) -> ApiResult<String> {
        if self.team_name.is_some() {
            return Err(ApiError::unprocessable("team_name: weir has no teams"));
        }
        match &self.value {
            serde_json::Value::Null => Err(ApiError::unprocessable(format!(
                "variable `{}`: value must not be null",
                self.key
            ))),
            serde_json::Value::String(s) => Ok(s.clone()),
            other => Ok(other.to_string()),
        }
    }
}

/// Creates a variable (operator).
#[utoipa::path(post, path = "/api/v2/variables", tag = "Variable", request_body = VariableBody,
    responses((status = 201, body = VariableResponse), WriteErrors))]
pub async fn create_variable(
    State(state): State<AppState>,
    Operator(who): Operator,
    Body(body): Body<VariableBody>,
) -> ApiResult<(StatusCode, Json<VariableResponse>)> {
    let value = body.text()?;
    state
        .scheduler
        .set_variable(
            &who.name,
            &body.key,
            &value,
            body.description.as_deref(),
            SaveMode::Create,
        )
        .await?;
    let v = state.scheduler.get_variable(&body.key).await?;
    Ok((StatusCode::CREATED, Json(VariableResponse::from(&v))))
}

/// Which fields a patch changes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateMask {
    /// `value` and/or `description` (default: both).
    #[serde(default)]
    pub update_mask: Vec<String>,
}

/// Changes a variable's value or description (operator).
#[utoipa::path(patch, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path, description = "The variable's key"), UpdateMask),
    request_body = VariableBody,
    responses((status = 200, body = VariableResponse), WriteErrors))]
pub async fn patch_variable(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(key): Path<String>,
    Query(mask): Query<UpdateMask>,
    Body(body): Body<VariableBody>,
) -> ApiResult<Json<VariableResponse>> {
    if body.key != key {
        return Err(ApiError::bad_request(format!(
            "the body's key `{}` is not the path's `{key}`",
            body.key
        )));
    }
    let current = state.scheduler.get_variable(&key).await?;
    let fields = update_mask(&mask.update_mask, &["value", "description"])?;
    let all = fields.is_empty();
    let value = if all || fields.contains(&"value") {
        body.text()?
    } else {
        current.value.clone()
    };
    let description = if all || fields.contains(&"description") {
        body.description.clone()
    } else {
        current.description.clone()
    };
    state
        .scheduler
        .set_variable(
            &who.name,
            &key,
            &value,
            description.as_deref(),
            SaveMode::Update,
        )
        .await?;
    let v = state.scheduler.get_variable(&key).await?;
    Ok(Json(VariableResponse::from(&v)))
}

/// Deletes a variable (operator).
#[utoipa::path(delete, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path, description = "The variable's key")),
    responses((status = 204), WriteErrors))]
pub async fn delete_variable(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.scheduler.delete_variable(&who.name, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
