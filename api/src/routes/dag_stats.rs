//! Run counts per DAG and state (Airflow's `dagStats`), and the source text
//! of a DAG version (Airflow's `dagSources`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_core::state::RunState;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};

/// Which DAGs to count.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagStatsParams {
    /// These DAGs (repeat the parameter); default every DAG whose file is there.
    #[serde(default)]
    pub dag_ids: Vec<String>,
}

/// How many runs are in one state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagStatsState {
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    pub count: i64,
}

/// One DAG's run counts (Airflow's `DagStatsResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagStats {
    pub dag_id: String,
    pub dag_display_name: String,
    /// Every run state, with zero for states without runs.
    pub stats: Vec<DagStatsState>,
}

/// Run counts of DAGs (Airflow's `DagStatsCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagStatsCollection {
    pub dags: Vec<DagStats>,
    pub total_entries: i64,
}

/// How many runs each DAG has in each state.
#[utoipa::path(get, path = "/api/v2/dagStats", tag = "DagStats", params(DagStatsParams),
    responses((status = 200, body = DagStatsCollection), ReadErrors))]
pub async fn dag_stats(
    State(state): State<AppState>,
    _: Viewer,
    Query(p): Query<DagStatsParams>,
) -> ApiResult<Json<DagStatsCollection>> {
    let store = state.scheduler.store();
    let known = store.list_dags().await?;
    let ids: Vec<String> = if p.dag_ids.is_empty() {
        known
            .iter()
            .filter(|d| !d.is_stale)
            .map(|d| d.dag_id.clone())
            .collect()
    } else {
        if let Some(missing) = p
            .dag_ids
            .iter()
            .find(|id| !known.iter().any(|d| &d.dag_id == *id))
        {
            return Err(ApiError::not_found(format!("DAG `{missing}` not found")));
        }
        p.dag_ids.clone()
    };
    let mut counts: HashMap<(String, RunState), i64> = HashMap::new();
    for (dag_id, run_state, n) in store.run_counts_by_dag().await? {
        counts.insert((dag_id, run_state), n);
    }
    let dags: Vec<DagStats> = ids
        .into_iter()
        .map(|dag_id| DagStats {
            stats: RunState::ALL
                .iter()
                .map(|s| DagStatsState {
                    state: s.as_str().to_owned(),
                    count: counts.get(&(dag_id.clone(), *s)).copied().unwrap_or(0),
                })
                .collect(),
            dag_display_name: dag_id.clone(),
            dag_id,
        })
        .collect();
    Ok(Json(DagStatsCollection {
        total_entries: i64::try_from(dags.len()).unwrap_or(i64::MAX),
        dags,
    }))
}

/// Which version's source.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagSourceParams {
    /// The version (1, 2, …); default the latest.
    pub version_number: Option<i64>,
}

/// A DAG file's text as a version of it was read (Airflow's `DAGSourceResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagSource {
    pub dag_id: String,
    pub dag_display_name: String,
    pub version_number: Option<i64>,
    /// The file's text; null for versions recorded before weir kept sources.
    pub content: Option<String>,
}

/// The DAG file's text, as the latest (or a given) version read it.
#[utoipa::path(get, path = "/api/v2/dagSources/{dag_id}", tag = "DagSource",
    params(("dag_id" = String, Path, description = "The DAG id"), DagSourceParams),
    responses((status = 200, body = DagSource), ReadErrors))]
pub async fn dag_source(
    State(state): State<AppState>,
    _: Viewer,
    Path(dag_id): Path<String>,
    Query(p): Query<DagSourceParams>,
) -> ApiResult<Json<DagSource>> {
    let store = state.scheduler.store();
    let dag = store.get_dag(&dag_id).await?;
    let version = match p.version_number {
        None => store.get_version(dag.latest_version_id).await?,
        Some(n) => store
            .list_versions(&dag_id)
            .await?
            .into_iter()
            .find(|v| v.version_number == n)
            .ok_or_else(|| {
                ApiError::not_found(format!("version {n} of DAG `{dag_id}` not found"))
            })?,
    };
    let file = std::path::Path::new(&version.fileloc)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let texts = version.source_texts();
    let content = texts
        .iter()
        .find(|t| Some(&t.name) == file.as_ref())
        .or_else(|| texts.first())
        .map(|t| t.text.clone());
    Ok(Json(DagSource {
        dag_display_name: dag_id.clone(),
        dag_id,
        version_number: Some(version.version_number),
        content,
    }))
}
