//! OpenLineage `RunEvent`s (spec 2-0-2) for a try: job `<dag>.<task>`, the
//! DAG run as its parent, datasets with their schema and version, and what
//! validation found about the datasets it read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use weir_core::dag::{DatasetName, Task, TaskKind};
use weir_core::scheduler::{Ended, Outcome};
use weir_core::store::{DatasetVersionRecord, NewQuality};

use super::{External, Seen};
use crate::context::TryContext;
use crate::data::home::{Home, Place};

const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets/";
const PRODUCER: &str = concat!("urn:weir:", env!("CARGO_PKG_VERSION"));

/// The event of a try's start: its run, its job, and the datasets its task
/// declares it reads and writes.
pub fn start_event(
    ns: &str,
    ctx: &TryContext,
    task: &Task,
    home: &Home,
    at: DateTime<Utc>,
) -> Value {
    let inputs: Vec<Value> = task
        .reads()
        .into_iter()
        .map(|d| dataset(&zone_dataset(home, d), Map::new()))
        .collect();
    let outputs: Vec<Value> = task
        .writes()
        .into_iter()
        .map(|d| dataset(&zone_dataset(home, d), Map::new()))
        .collect();
    run_event(
        "START",
        ns,
        ctx,
        task,
        at,
        run_facets(ns, ctx, None),
        None,
        inputs,
        outputs,
    )
}

/// The event of a try's end: `COMPLETE` or `FAIL` with what it read and
/// wrote and the SQL it ran; `None` for a sensor's poke that waits (its
/// try goes on).
pub fn end_event(
    ns: &str,
    ctx: &TryContext,
    task: &Task,
    home: &Home,
    ended: &Ended,
    seen: &Seen,
    at: DateTime<Utc>,
) -> Option<Value> {
    let kind = match ended.outcome {
        Outcome::Success | Outcome::Expanded(_) => "COMPLETE",
        Outcome::Failed => "FAIL",
        Outcome::Reschedule(_) => return None,
    };
    let error = (kind == "FAIL").then(|| {
        let language = match task.kind {
            TaskKind::Shell { .. } | TaskKind::Sensor { .. } => "SHELL",
            _ => "SQL",
        };
        facet(
            "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            json!({
                "message": ended.error.as_deref().unwrap_or("the try failed"),
                "programmingLanguage": language,
            }),
        )
    });
    let mut inputs: Vec<Value> = seen
        .read
        .iter()
        .map(|v| {
            let mut facets = version_facets(v);
            let ds = record_dataset(home, v);
            let mut input = dataset(&ds, std::mem::take(&mut facets));
            if let Some(q) = seen.quality.iter().rev().find(|q| q.dataset == v.dataset) {
                input["inputFacets"] = quality_facets(q);
            }
            input
        })
        .collect();
    inputs.extend(
        seen.sources
            .iter()
            .map(|e| dataset(e, schema_facet(&e.fields))),
    );
    let mut outputs: Vec<Value> = seen
        .wrote
        .iter()
        .map(|v| {
            let mut out = dataset(&record_dataset(home, v), version_facets(v));
            if let Some(rows) = v.rows {
                out["outputFacets"] = json!({
                    "outputStatistics": facet(
                        "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                        json!({ "rowCount": rows, "size": v.bytes }),
                    )
                });
            }
            out
        })
        .collect();
    outputs.extend(
        seen.targets
            .iter()
            .map(|e| dataset(e, schema_facet(&e.fields))),
    );
    Some(run_event(
        kind,
        ns,
        ctx,
        task,
        at,
        run_facets(ns, ctx, error),
        seen.query.as_ref(),
        inputs,
        outputs,
    ))
}

#[allow(clippy::too_many_arguments)]
fn run_event(
    kind: &str,
    ns: &str,
    ctx: &TryContext,
    task: &Task,
    at: DateTime<Utc>,
    run_facets: Value,
    query: Option<&(String, String)>,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
) -> Value {
    let claim = &ctx.claim;
    let job_type = match task.kind {
        TaskKind::Sensor { .. } => "SENSOR",
        _ => "TASK",
    };
    let mut job_facets = Map::new();
    job_facets.insert(
        "jobType".into(),
        facet(
            "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
            json!({ "processingType": "BATCH", "integration": "WEIR", "jobType": job_type }),
        ),
    );
    if let Some((sql, dialect)) = query {
        job_facets.insert(
            "sql".into(),
            facet(
                "1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet",
                json!({ "query": sql, "dialect": dialect }),
            ),
        );
    }
    json!({
        "eventType": kind,
        "eventTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": {
            "runId": try_run_id(ctx),
            "facets": run_facets,
        },
        "job": {
            "namespace": ns,
            "name": format!("{}.{}", claim.dag_id, claim.task_id),
            "facets": job_facets,
        },
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// The run facets: the DAG run as parent, the nominal time (a scheduled
/// run's data interval), the engine, and the error of a failed try.
fn run_facets(ns: &str, ctx: &TryContext, error: Option<Value>) -> Value {
    let claim = &ctx.claim;
    let mut facets = Map::new();
    facets.insert(
        "parent".into(),
        facet(
            "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            json!({
                "run": { "runId": dag_run_id(&claim.dag_id, &claim.run_id) },
                "job": { "namespace": ns, "name": claim.dag_id },
            }),
        ),
    );
    if let Some(start) = ctx.run.data_interval_start.or(ctx.run.logical_date) {
        let mut nominal = json!({ "nominalStartTime": time(start) });
        if let Some(end) = ctx.run.data_interval_end {
            nominal["nominalEndTime"] = json!(time(end));
        }
        facets.insert(
            "nominalTime".into(),
            facet(
                "1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
                nominal,
            ),
        );
    }
    facets.insert(
        "processing_engine".into(),
        facet(
            "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "name": "weir",
                "openlineageAdapterVersion": env!("CARGO_PKG_VERSION"),
            }),
        ),
    );
    if let Some(e) = error {
        facets.insert("errorMessage".into(), e);
    }
    Value::Object(facets)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A facet: its fields with `_producer` and `_schemaURL`.
fn facet(schema: &str, fields: Value) -> Value {
    let mut f = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    f.insert("_producer".into(), json!(PRODUCER));
    f.insert("_schemaURL".into(), json!(format!("{FACETS}{schema}")));
    Value::Object(f)
}

fn dataset(e: &External, facets: Map<String, Value>) -> Value {
    json!({ "namespace": e.namespace, "name": e.name, "facets": facets })
}

fn schema_facet(fields: &[(String, String)]) -> Map<String, Value> {
    let mut m = Map::new();
    if !fields.is_empty() {
        let fields: Vec<Value> = fields
            .iter()
            .map(|(name, ty)| json!({ "name": name, "type": ty }))
            .collect();
        m.insert(
            "schema".into(),
            facet(
                "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
                json!({ "fields": fields }),
            ),
        );
    }
    m
}

/// A version's facets: its schema, its version number and, for a version of
/// a Delta table, the storage layer.
fn version_facets(v: &DatasetVersionRecord) -> Map<String, Value> {
    let fields: Vec<(String, String)> = v
        .columns()
        .into_iter()
        .map(|c| (c.name, c.data_type))
        .collect();
    let mut m = schema_facet(&fields);
    m.insert(
        "version".into(),
        facet(
            "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
            json!({ "datasetVersion": v.version.to_string() }),
        ),
    );
    if v.delta_version.is_some() {
        m.insert(
            "storage".into(),
            facet(
                "1-0-1/StorageDatasetFacet.json#/$defs/StorageDatasetFacet",
                json!({ "storageLayer": "delta", "fileFormat": "parquet" }),
            ),
        );
    }
    m
}

/// What a validation found, as input facets of the dataset it read: row
/// count and missing values per required column, and every check.
fn quality_facets(q: &NewQuality) -> Value {
    let mut columns = Map::new();
    for c in &q.checks {
        if c.kind == weir_core::dag::contract::CheckResultKind::Required
            && let Some(col) = &c.column_name
        {
            columns.insert(col.clone(), json!({ "nullCount": c.failed }));
        }
    }
    let assertions: Vec<Value> = q
        .checks
        .iter()
        .map(|c| {
            let mut a = json!({
                "assertion": c.kind.as_str(),
                "success": c.passed,
                "name": c.name,
                "severity": c.severity.as_str(),
                "actual": c.observed.clone().unwrap_or_else(|| format!("{} failing", c.failed)),
            });
            if let Some(col) = &c.column_name {
                a["column"] = json!(col);
            }
            if let Some(t) = &c.threshold {
                a["expected"] = json!(t);
            }
            a
        })
        .collect();
    json!({
        "dataQualityMetrics": facet(
            "1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
            json!({ "rowCount": q.rows_in, "columnMetrics": columns }),
        ),
        "dataQualityAssertions": facet(
            "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
            json!({ "assertions": assertions }),
        ),
    })
}

/// A zone dataset as OpenLineage names its table: `file` and its absolute
/// path, or `s3://bucket` and its key.
fn zone_dataset(home: &Home, d: &DatasetName) -> External {
    place_dataset(&home.table(d.zone().as_str(), d.name()))
}

fn record_dataset(home: &Home, v: &DatasetVersionRecord) -> External {
    match v.dataset.parse::<DatasetName>() {
        Ok(d) => zone_dataset(home, &d),
        Err(_) => place_dataset(&home.root().join(&v.dataset)),
    }
}

fn place_dataset(place: &Place) -> External {
    match place {
        Place::Local(p) => super::file_dataset(p),
        Place::Object(url) => External {
            namespace: format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
            name: url.path().trim_matches('/').to_owned(),
            fields: Vec::new(),
        },
    }
}

/// A stable id from `parts` (a UUID of version 8: custom, from SHA-256):
/// the start and the end of one try share it.
fn stable_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The OpenLineage run id of a DAG run.
fn dag_run_id(dag_id: &str, run_id: &str) -> String {
    stable_id(&["weir-dag-run", dag_id, run_id])
}

/// The OpenLineage run id of a try (one per try, mapped instances apart).
fn try_run_id(ctx: &TryContext) -> String {
    let c = &ctx.claim;
    stable_id(&[
        "weir-try",
        &c.dag_id,
        &c.run_id,
        &c.task_id,
        &c.map_index.to_string(),
        &c.try_number.to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_in_a_bucket_are_named_by_bucket_and_key() {
        let table = Place::parse("s3://lake/site/clean/orders");
        let named = place_dataset(&table);
        assert_eq!(
            (named.namespace.as_str(), named.name.as_str()),
            ("s3://lake", "site/clean/orders")
        );
        let local = place_dataset(&Place::parse("/srv/data/clean/orders"));
        assert_eq!(
            (local.namespace.as_str(), local.name.as_str()),
            ("file", "/srv/data/clean/orders")
        );
    }
}
