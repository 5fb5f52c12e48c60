//! Datasets as Airflow's assets (`/api/v2/assets`): each dataset a DAG
//! names, with the tasks that write and read it and the DAGs scheduled on
//! it; and updates recorded from outside weir (`POST /api/v2/assets/events`),
//! which trigger those DAGs as a new version does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use weir_core::store::{AssetEventRecord, AssetRecord};

use super::{Page, order_by};
use crate::AppState;
use crate::auth::{Operator, Viewer};
use crate::error::{ApiError, ApiResult, Body, Path, Query, ReadErrors, WriteErrors};
use crate::models::{
    AssetCollection, AssetEventCollection, AssetEventResponse, AssetResponse,
    DagScheduleAssetReference, LastAssetEvent, TaskAssetReference,
};

/// Who writes, reads and is scheduled on each dataset, in the DAGs' newest
/// versions.
#[derive(Default)]
struct References {
    producing: BTreeMap<String, Vec<TaskAssetReference>>,
    consuming: BTreeMap<String, Vec<TaskAssetReference>>,
    scheduled: BTreeMap<String, Vec<DagScheduleAssetReference>>,
}

impl References {
    async fn read(state: &AppState, dag_ids: &[String]) -> ApiResult<References> {
        let mut refs = References::default();
        for rec in state.scheduler.store().list_dags().await? {
            if rec.is_stale || (!dag_ids.is_empty() && !dag_ids.contains(&rec.dag_id)) {
                continue;
            }
            let dag = state.scheduler.dag_version(rec.latest_version_id).await?;
            let at = rec.last_parsed_at;
            let task_ref = |task_id: &str| TaskAssetReference {
                dag_id: rec.dag_id.clone(),
                task_id: task_id.to_owned(),
                created_at: at,
                updated_at: at,
            };
            for (id, task) in &dag.tasks {
                for ds in task.writes() {
                    refs.producing
                        .entry(ds.to_string())
                        .or_default()
                        .push(task_ref(id.as_str()));
                }
                for ds in task.reads() {
                    refs.consuming
                        .entry(ds.to_string())
                        .or_default()
                        .push(task_ref(id.as_str()));
                }
            }
            if let weir_core::dag::Schedule::Datasets(inputs) = &dag.schedule {
                for ds in inputs {
                    refs.scheduled.entry(ds.to_string()).or_default().push(
                        DagScheduleAssetReference {
                            dag_id: rec.dag_id.clone(),
                            created_at: at,
                            updated_at: at,
                        },
                    );
                }
            }
        }
        Ok(refs)
    }

    fn names(&self, name: &str) -> bool {
        self.producing.contains_key(name)
            || self.consuming.contains_key(name)
            || self.scheduled.contains_key(name)
    }
}

/// A dataset's zone, Airflow's asset group.
fn zone(name: &str) -> String {
    name.split_once('.').map_or(name, |(z, _)| z).to_owned()
}

fn extra_of(text: Option<&str>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

async fn response(
    state: &AppState,
    a: &AssetRecord,
    refs: &References,
) -> ApiResult<AssetResponse> {
    let store = state.scheduler.store();
    let version = store.latest_dataset_version(&a.name).await?;
    let event = store.latest_asset_event(&a.name).await?;
    let last = match (&version, &event) {
        (Some(v), Some(e)) if e.created_at >= v.created_at => Some((Some(e.id), e.created_at)),
        (Some(v), _) => Some((None, v.created_at)),
        (None, Some(e)) => Some((Some(e.id), e.created_at)),
        (None, None) => None,
    };
    Ok(AssetResponse {
        id: a.id,
        name: a.name.clone(),
        uri: a.name.clone(),
        group: zone(&a.name),
        extra: None,
        created_at: a.created_at,
        updated_at: last.map_or(a.created_at, |(_, at)| at),
        scheduled_dags: refs.scheduled.get(&a.name).cloned().unwrap_or_default(),
        producing_tasks: refs.producing.get(&a.name).cloned().unwrap_or_default(),
        consuming_tasks: refs.consuming.get(&a.name).cloned().unwrap_or_default(),
        aliases: Vec::new(),
        watchers: Vec::new(),
        last_asset_event: last.map(|(id, timestamp)| LastAssetEvent {
            id,
            timestamp: Some(timestamp),
        }),
    })
}

/// Filters and order of the asset list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetListParams {
    /// Names containing this text (case-insensitive).
    pub name_pattern: Option<String>,
    /// The same as `name_pattern` (an asset's URI is its name).
    pub uri_pattern: Option<String>,
    /// Only assets these DAGs write, read or are scheduled on.
    #[serde(default)]
    pub dag_ids: Vec<String>,
    /// Only assets a DAG names now.
    pub only_active: Option<bool>,
    /// `id`, `name`, `uri`, `created_at` or `updated_at` (`-` for descending).
    pub order_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Id,
    Name,
    Created,
    Updated,
}

/// Every dataset a DAG names, as assets.
#[utoipa::path(get, path = "/api/v2/assets", tag = "Asset", params(Page, AssetListParams),
    responses((status = 200, body = AssetCollection), ReadErrors))]
pub async fn list_assets(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<AssetListParams>,
) -> ApiResult<Json<AssetCollection>> {
    let order = order_by(
        p.order_by.as_deref(),
        &[
            ("id", Order::Id),
            ("name", Order::Name),
            ("uri", Order::Name),
            ("created_at", Order::Created),
            ("updated_at", Order::Updated),
        ],
    )?;
    let pattern = p
        .name_pattern
        .or(p.uri_pattern)
        .filter(|s| !s.is_empty() && s != "~");
    let refs = References::read(&state, &p.dag_ids).await?;
    let only_named = !p.dag_ids.is_empty() || p.only_active == Some(true);
    let mut all = Vec::new();
    for a in state
        .scheduler
        .store()
        .list_assets(pattern.as_deref())
        .await?
    {
        if only_named && !refs.names(&a.name) {
            continue;
        }
        all.push(response(&state, &a, &refs).await?);
    }
    if let Some((by, desc)) = order {
        all.sort_by(|a, b| match by {
            Order::Id => a.id.cmp(&b.id),
            Order::Name => a.name.cmp(&b.name),
            Order::Created => a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)),
            Order::Updated => a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)),
        });
        if desc {
            all.reverse();
        }
    }
    let (assets, total) = page.of(all)?;
    Ok(Json(AssetCollection {
        assets,
        total_entries: total,
    }))
}

/// One asset.
#[utoipa::path(get, path = "/api/v2/assets/{asset_id}", tag = "Asset",
    params(("asset_id" = i64, Path, description = "The asset's id")),
    responses((status = 200, body = AssetResponse), ReadErrors))]
pub async fn get_asset(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> ApiResult<Json<AssetResponse>> {
    let a = state
        .scheduler
        .store()
        .get_asset(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("asset {id}")))?;
    let refs = References::read(&state, &[]).await?;
    Ok(Json(response(&state, &a, &refs).await?))
}

fn event_response(e: &AssetEventRecord) -> AssetEventResponse {
    AssetEventResponse {
        id: e.id,
        asset_id: e.asset_id,
        name: e.name.clone(),
        uri: e.name.clone(),
        group: zone(&e.name),
        extra: extra_of(e.extra.as_deref()),
        source_dag_id: None,
        source_run_id: None,
        source_task_id: None,
        source_map_index: -1,
        partition_key: None,
        created_dagruns: Vec::new(),
        timestamp: e.created_at,
    }
}

/// An update of a dataset made outside weir (Airflow's `CreateAssetEventsBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetEventBody {
    /// The asset (`GET /api/v2/assets`).
    pub asset_id: i64,
    /// What to say about the update: a JSON object.
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
    /// Must be absent or null: weir has no partitions.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Must be absent or null: weir has no teams.
    #[serde(default)]
    pub access_control: Option<serde_json::Value>,
}

/// Records that a dataset was updated outside weir (operator, audited): the
/// DAGs scheduled on it run as for a new version once all their inputs
/// changed.
#[utoipa::path(post, path = "/api/v2/assets/events", tag = "Asset", request_body = CreateAssetEventBody,
    responses((status = 200, body = AssetEventResponse), WriteErrors))]
pub async fn create_asset_event(
    State(state): State<AppState>,
    Operator(who): Operator,
    Body(body): Body<CreateAssetEventBody>,
) -> ApiResult<Json<AssetEventResponse>> {
    if body.partition_key.is_some() {
        return Err(ApiError::unprocessable(
            "partition_key: weir has no partitions",
        ));
    }
    if body.access_control.is_some() {
        return Err(ApiError::unprocessable("access_control: weir has no teams"));
    }
    let event = state
        .scheduler
        .record_asset_event(&who.name, body.asset_id, body.extra.as_ref())
        .await?;
    Ok(Json(event_response(&event)))
}

/// Which asset events to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetEventParams {
    /// Only this asset's.
    pub asset_id: Option<i64>,
}

/// Updates recorded from outside weir, newest first.
#[utoipa::path(get, path = "/api/v2/assets/events", tag = "Asset", params(Page, AssetEventParams),
    responses((status = 200, body = AssetEventCollection), ReadErrors))]
pub async fn list_asset_events(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
    Query(p): Query<AssetEventParams>,
) -> ApiResult<Json<AssetEventCollection>> {
    let (limit, offset) = page.bounds()?;
    let (events, total) = state
        .scheduler
        .store()
        .list_asset_events(p.asset_id, limit, offset)
        .await?;
    Ok(Json(AssetEventCollection {
        asset_events: events.iter().map(event_response).collect(),
        total_entries: total,
    }))
}
