//! Task outputs as Airflow's XCom entries: a task instance whose current
//! try published an output has one entry, `return_value`, whose value is
//! that output (JSON).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use weir_core::outputs::XCOM_KEY;
use weir_core::store::{RunRecord, RunTime, TaskFilter, TaskOrder};

use super::task_instances::path_scope;
use super::{Page, date_bounds, every, order_by};
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};
use crate::models::{XComCollection, XComResponse, XComValueResponse};

/// Filters of the XCom list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComListParams {
    /// Only this key (weir's outputs are `return_value`).
    pub xcom_key: Option<String>,
    /// Keys matching this pattern (case-insensitive substring, `%` and `_`
    /// wildcards, `|` between alternatives, `~` for all).
    pub xcom_key_pattern: Option<String>,
    /// Keys starting with this (case-sensitive).
    pub xcom_key_prefix_pattern: Option<String>,
    /// Only this map index (-1: a task's own instance).
    pub map_index: Option<i64>,
    /// Same as `map_index`.
    pub map_index_filter: Option<i64>,
    /// Task ids matching this pattern.
    pub task_id_pattern: Option<String>,
    /// Run ids matching this pattern.
    pub run_id_pattern: Option<String>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_gt: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub logical_date_lt: Option<DateTime<Utc>>,
    pub run_after_gte: Option<DateTime<Utc>>,
    pub run_after_gt: Option<DateTime<Utc>>,
    pub run_after_lte: Option<DateTime<Utc>>,
    pub run_after_lt: Option<DateTime<Utc>>,
    /// Sort by `key`, `dag_id`, `run_id`, `task_id`, `map_index` or
    /// `timestamp` (`-` for descending).
    pub order_by: Option<String>,
}

/// Whether `text` matches an Airflow `*_pattern`: a case-insensitive
/// substring where `%` is any run of characters and `_` any one character;
/// `|` separates alternatives and `~` matches everything.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    fn like(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| like(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && like(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && like(rest, &t[1..]),
        }
    }
    let text: Vec<char> = text.to_lowercase().chars().collect();
    pattern.split('|').any(|alt| {
        if alt == "~" {
            return true;
        }
        let p: Vec<char> = format!("%{}%", alt.to_lowercase()).chars().collect();
        like(&p, &text)
    })
}

/// The outputs of the task instances a path names (`~` for every DAG, run
/// or task), one `return_value` entry each.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", tag = "XCom",
    params(("dag_id" = String, Path, description = "The DAG id, or `~` for every DAG"),
           ("dag_run_id" = String, Path, description = "The run id, or `~` for every run"),
           ("task_id" = String, Path, description = "The task id, or `~` for every task"),
           Page, XComListParams),
    responses((status = 200, body = XComCollection), ReadErrors))]
pub async fn list_xcom_entries(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(page): Query<Page>,
    Query(p): Query<XComListParams>,
) -> ApiResult<Json<XComCollection>> {
    let (limit, offset) = page.bounds()?;
    let (dag_id, run_id) = path_scope(&state, &dag_id, &run_id).await?;
    let order = order_by(
        p.order_by.as_deref(),
        &[
            ("key", None),
            ("map_index", None),
            ("dag_id", Some(TaskOrder::DagId)),
            ("run_id", Some(TaskOrder::RunId)),
            ("task_id", Some(TaskOrder::TaskId)),
            ("timestamp", Some(TaskOrder::EndDate)),
        ],
    )?
    .and_then(|(key, desc)| key.map(|k| (k, desc)));
    let key_ok = p.xcom_key.as_deref().is_none_or(|k| k == XCOM_KEY)
        && p.xcom_key_pattern
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|pat| pattern_matches(pat, XCOM_KEY))
        && p.xcom_key_prefix_pattern
            .as_deref()
            .map(|s| s.trim_end_matches(|c: char| !c.is_alphanumeric()))
            .is_none_or(|pre| XCOM_KEY.starts_with(pre));
    if !key_ok {
        return Ok(Json(XComCollection {
            xcom_entries: Vec::new(),
            total_entries: 0,
        }));
    }
    let (run_ranges, run_strict_ranges) = date_bounds([
        (
            RunTime::LogicalDate,
            [
                p.logical_date_gte,
                p.logical_date_lte,
                p.logical_date_gt,
                p.logical_date_lt,
            ],
        ),
        (
            RunTime::RunAfter,
            [
                p.run_after_gte,
                p.run_after_lte,
                p.run_after_gt,
                p.run_after_lt,
            ],
        ),
    ]);
    let filter = TaskFilter {
        dag_id,
        run_id,
        task_ids: every(&task_id).into_iter().collect(),
        task_id_pattern: p.task_id_pattern.filter(|s| !s.is_empty() && s != "~"),
        run_id_pattern: p.run_id_pattern.filter(|s| !s.is_empty() && s != "~"),
        run_ranges,
        run_strict_ranges,
        with_output: true,
        map_indexes: [p.map_index, p.map_index_filter]
            .into_iter()
            .flatten()
            .collect(),
        order,
        limit: Some(limit),
        offset: Some(offset),
        ..TaskFilter::default()
    };
    let store = state.scheduler.store();
    let (tis, total) = store.find_task_instances(&filter).await?;
    let mut runs: HashMap<i64, RunRecord> = HashMap::new();
    let mut entries = Vec::with_capacity(tis.len());
    for t in &tis {
        let run = match runs.entry(t.run_pk) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store.get_run_by_pk(t.run_pk).await?)
            }
        };
        entries.push(XComResponse::new(t, run));
    }
    Ok(Json(XComCollection {
        xcom_entries: entries,
        total_entries: total,
    }))
}

/// How to answer one XCom entry.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComGetParams {
    /// The mapped instance (default -1: the task's own instance).
    pub map_index: Option<i64>,
    /// Accepted for Airflow's clients: weir's values are JSON either way.
    pub deserialize: Option<bool>,
    /// Answer the value as its JSON text.
    pub stringify: Option<bool>,
}

/// The output of a task instance's current try, as the XCom entry
/// `return_value`.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", tag = "XCom",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id"),
           ("task_id" = String, Path, description = "The task id"),
           ("xcom_key" = String, Path, description = "The key: `return_value`"),
           XComGetParams),
    responses((status = 200, body = XComValueResponse), ReadErrors))]
pub async fn get_xcom_entry(
    State(state): State<AppState>,
    _: Viewer,
    Path((dag_id, run_id, task_id, key)): Path<(String, String, String, String)>,
    Query(p): Query<XComGetParams>,
) -> ApiResult<Json<XComValueResponse>> {
    let store = state.scheduler.store();
    let t = store
        .get_mapped_instance(&dag_id, &run_id, &task_id, p.map_index.unwrap_or(-1))
        .await?;
    let missing = || {
        ApiError::not_found(format!(
            "task instance {dag_id}/{run_id}/{task_id} has no XCom entry `{key}`{}",
            if key == XCOM_KEY {
                " (its current try published no output)"
            } else {
                " (weir's task outputs are under `return_value`)"
            }
        ))
    };
    if key != XCOM_KEY {
        return Err(missing());
    }
    let text = store
        .list_tries(&t.id)
        .await?
        .into_iter()
        .find(|r| r.try_number == t.try_number)
        .and_then(|r| r.output)
        .ok_or_else(missing)?;
    let run = store.get_run_by_pk(t.run_pk).await?;
    let value = if p.stringify == Some(true) {
        serde_json::Value::String(text)
    } else {
        serde_json::from_str(&text).map_err(|e| ApiError::internal(&e))?
    };
    Ok(Json(XComValueResponse {
        entry: XComResponse::new(&t, &run),
        value,
    }))
}
