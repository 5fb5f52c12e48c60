//! The data catalog: datasets, their versions, schema and lineage, and the
//! quality results of a run's validate tasks.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::store::DatasetVersionRecord;

use super::Page;
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, Path, Query, ReadErrors};

/// One version of a dataset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetVersionResponse {
    pub id: i64,
    pub dataset: String,
    pub version: i64,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub path: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When retention deleted it.
    pub deleted_at: Option<DateTime<Utc>>,
    pub dag_id: Option<String>,
    pub dag_run_id: Option<String>,
    pub task_id: Option<String>,
    pub try_number: Option<i64>,
    /// Keys of the versions it was made from.
    pub inputs: Vec<i64>,
    /// The version of the dataset's Delta table that holds its files
    /// (absent for a version written before the table had a Delta log).
    pub delta_version: Option<i64>,
}

impl From<&DatasetVersionRecord> for DatasetVersionResponse {
    fn from(v: &DatasetVersionRecord) -> Self {
        DatasetVersionResponse {
            id: v.id,
            dataset: v.dataset.clone(),
            version: v.version,
            rows: v.rows,
            bytes: v.bytes,
            path: v.path.clone(),
            created_at: v.created_at,
            deleted_at: v.deleted_at,
            dag_id: v.dag_id.clone(),
            dag_run_id: v.run_id.clone(),
            task_id: v.task_id.clone(),
            try_number: v.try_number,
            inputs: v.input_ids(),
            delta_version: v.delta_version,
        }
    }
}

/// A dataset and its newest version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetResponse {
    /// `zone.name`.
    pub dataset: String,
    /// How many versions are kept.
    pub versions: i64,
    pub latest: DatasetVersionResponse,
    /// Who answers for it (its contract's or writer's `owner`).
    pub owner: Option<String>,
    pub tags: Vec<String>,
}

/// Datasets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetCollection {
    pub datasets: Vec<DatasetResponse>,
    pub total_entries: i64,
}

/// A version named by dataset and number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionRef {
    pub dataset: String,
    pub version: i64,
}

/// A version the dataset was made from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamRef {
    pub dataset: String,
    pub version: i64,
    /// False when raw or quarantined data was read without a contract's
    /// check (a task's `unchecked_inputs`).
    pub checked: bool,
}

/// What people know about one column.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ColumnMetadata {
    pub name: String,
    pub description: Option<String>,
    /// `pii`, `confidential` or `public`.
    pub classification: Option<String>,
}

/// What people know about a dataset, from the contract that checks it and
/// the `metadata:` of the task that writes it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DatasetMetadata {
    pub owner: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Columns with a description or a classification.
    pub columns: Vec<ColumnMetadata>,
}

impl From<weir_core::dag::contract::DatasetMeta> for DatasetMetadata {
    fn from(m: weir_core::dag::contract::DatasetMeta) -> Self {
        DatasetMetadata {
            owner: m.owner,
            description: m.description,
            tags: m.tags,
            columns: m
                .columns
                .into_iter()
                .map(|(name, c)| ColumnMetadata {
                    name,
                    description: c.description,
                    classification: c.classification.map(|c| c.as_str().to_owned()),
                })
                .collect(),
        }
    }
}

/// A dataset's versions, schema and lineage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetDetailResponse {
    pub dataset: String,
    /// Owner, description, tags and columns' descriptions and classifications.
    pub metadata: DatasetMetadata,
    /// Every version, oldest first.
    pub versions: Vec<DatasetVersionResponse>,
    /// The newest version's columns: `[{"name", "type", "nullable"}]`.
    #[schema(value_type = Vec<Object>)]
    pub schema: serde_json::Value,
    /// The versions the newest one was made from.
    pub upstream: Vec<UpstreamRef>,
    /// Datasets made from it, with their newest such version.
    pub downstream: Vec<VersionRef>,
}

/// Every dataset with its newest version.
#[utoipa::path(get, path = "/api/v2/datasets", tag = "Dataset", params(Page),
    responses((status = 200, body = DatasetCollection), ReadErrors))]
pub async fn list_datasets(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<Page>,
) -> ApiResult<Json<DatasetCollection>> {
    let all = state.scheduler.store().dataset_versions(None).await?;
    let newest = weir_core::catalog::summaries(&all);
    let writers: Vec<(&str, Option<&str>)> = newest
        .iter()
        .map(|(name, d)| (*name, d.latest.dag_id.as_deref()))
        .collect();
    let mut meta = state.scheduler.datasets_metadata(&writers).await;
    let summaries: Vec<DatasetResponse> = newest
        .values()
        .map(|d| {
            let about = meta.remove(&d.latest.dataset).unwrap_or_default();
            DatasetResponse {
                dataset: d.latest.dataset.clone(),
                versions: i64::try_from(d.versions).unwrap_or(i64::MAX),
                latest: DatasetVersionResponse::from(d.latest),
                owner: about.owner,
                tags: about.tags,
            }
        })
        .collect();
    let total = i64::try_from(summaries.len()).unwrap_or(i64::MAX);
    Ok(Json(DatasetCollection {
        datasets: page.slice(summaries)?,
        total_entries: total,
    }))
}

/// One dataset: versions, schema and lineage.
#[utoipa::path(get, path = "/api/v2/datasets/{dataset}", tag = "Dataset",
    params(("dataset" = String, Path, description = "`zone.name`, like clean.orders")),
    responses((status = 200, body = DatasetDetailResponse), ReadErrors))]
pub async fn get_dataset(
    State(state): State<AppState>,
    _: Viewer,
    Path(dataset): Path<String>,
) -> ApiResult<Json<DatasetDetailResponse>> {
    let everything = state.scheduler.store().dataset_versions(None).await?;
    let l = weir_core::catalog::lineage(&everything, &dataset)
        .ok_or_else(|| ApiError::not_found(format!("dataset `{dataset}` not found")))?;
    let metadata = state
        .scheduler
        .dataset_metadata(&dataset, l.latest.dag_id.as_deref())
        .await
        .map(DatasetMetadata::from)
        .unwrap_or_default();
    Ok(Json(DatasetDetailResponse {
        dataset: dataset.clone(),
        metadata,
        versions: l
            .versions
            .iter()
            .map(|v| DatasetVersionResponse::from(*v))
            .collect(),
        schema: l
            .latest
            .schema
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Array(Vec::new())),
        upstream: l
            .upstream
            .iter()
            .map(|v| UpstreamRef {
                dataset: v.dataset.clone(),
                version: v.version,
                checked: !weir_core::catalog::unchecked_edge(&v.dataset, &dataset),
            })
            .collect(),
        downstream: l
            .downstream
            .iter()
            .map(|(d, v)| VersionRef {
                dataset: (*d).to_owned(),
                version: *v,
            })
            .collect(),
    }))
}

/// One check's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckResponse {
    pub name: String,
    /// `type`, `required`, `min`, `max`, `values`, `format`, `primary_key`,
    /// `references`, `rule`, `row_count`, `missing_percent`, `freshness`,
    /// `duplicates`, `row_count_change` or `max_quarantined`.
    pub kind: String,
    pub column: Option<String>,
    pub passed: bool,
    /// Rows that failed (row-level checks), or 1 for a failed dataset check.
    pub failed: i64,
    pub observed: Option<String>,
    pub threshold: Option<String>,
    /// `error` or `warn`.
    pub severity: String,
}

/// A validate try's outcome.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityResponse {
    pub task_id: String,
    pub try_number: i64,
    /// The dataset validated.
    pub dataset: String,
    pub rows_in: i64,
    pub rows_clean: i64,
    pub rows_quarantined: i64,
    /// rows_in = rows_clean + rows_quarantined.
    pub reconciled: bool,
    /// Whether the clean version was published.
    pub published: bool,
    pub clean_version: Option<i64>,
    pub quarantine_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub checks: Vec<CheckResponse>,
}

/// Quality results of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityCollection {
    pub results: Vec<QualityResponse>,
    pub total_entries: i64,
}

/// Each validate try of a run: row reconciliation and every check's result.
/// Values of `pii` columns in checks' samples are masked for roles below admin.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/quality", tag = "Dataset",
    params(("dag_id" = String, Path, description = "The DAG id"),
           ("dag_run_id" = String, Path, description = "The run id")),
    responses((status = 200, body = QualityCollection), ReadErrors))]
pub async fn run_quality(
    State(state): State<AppState>,
    Viewer(me): Viewer,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<QualityCollection>> {
    let store = state.scheduler.store();
    store.get_run(&dag_id, &run_id).await?;
    let mut results: Vec<QualityResponse> = Vec::new();
    for (q, checks) in store.quality_of_run(&dag_id, &run_id).await? {
        let pii = if me.role.allows(weir_core::access::Role::Admin) {
            Vec::new()
        } else {
            state.scheduler.pii_columns(&dag_id, &q.task_id).await
        };
        results.push(QualityResponse {
            reconciled: q.rows_in == q.rows_clean + q.rows_quarantined,
            task_id: q.task_id,
            try_number: q.try_number,
            dataset: q.dataset,
            rows_in: q.rows_in,
            rows_clean: q.rows_clean,
            rows_quarantined: q.rows_quarantined,
            published: q.published,
            clean_version: q.clean_version,
            quarantine_version: q.quarantine_version,
            created_at: q.created_at,
            checks: checks
                .into_iter()
                .map(|c| CheckResponse {
                    name: c.name,
                    kind: c.kind.to_string(),
                    column: c.column_name,
                    passed: c.passed,
                    failed: c.failed,
                    observed: c
                        .observed
                        .map(|o| weir_core::catalog::mask_sample(&o, &pii)),
                    threshold: c.threshold,
                    severity: c.severity.to_string(),
                })
                .collect(),
        });
    }
    Ok(Json(QualityCollection {
        total_entries: i64::try_from(results.len()).unwrap_or(i64::MAX),
        results,
    }))
}
