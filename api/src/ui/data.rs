//! The data pages: datasets by zone, one dataset's versions, schema and
//! lineage, a validate task's quality history, and the quarantined rows of
//! a run with their reasons.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use weir_core::access::Role;
use weir_core::catalog::{self, RowQuery, mask_sample};
use weir_core::dag::TaskKind;
use weir_core::store::DatasetVersionRecord;

use super::graph::{self, Drawing};
use super::{Me, PageError, PageResult};
use crate::AppState;

/// Quarantined rows per page.
const ROWS_PAGE: usize = 50;
/// Runs in a quality history.
const HISTORY: i64 = 60;
/// How far lineage goes up and down.
const LINEAGE_DEPTH: usize = 6;

fn zone_of(name: &str) -> &str {
    name.split_once('.').map_or("", |(z, _)| z)
}

/// `?q=`.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    zone: &'a str,
    version: i64,
    versions: usize,
    rows: Option<i64>,
    bytes: Option<i64>,
    created_at: chrono::DateTime<chrono::Utc>,
    dag_id: Option<&'a str>,
    run_id: Option<&'a str>,
    task_id: Option<&'a str>,
    owner: Option<String>,
    tags: Vec<String>,
}

/// `/datasets`: every dataset by zone with its newest version, owner and
/// tags; `q` finds names, owners and tags.
pub async fn list(State(state): State<AppState>, me: Me, Query(s): Query<Search>) -> PageResult {
    let all = state.scheduler.store().dataset_versions(None).await?;
    let q = s.q.trim().to_lowercase();
    let summaries = catalog::summaries(&all);
    let writers: Vec<(&str, Option<&str>)> = summaries
        .iter()
        .map(|(name, sum)| (*name, sum.latest.dag_id.as_deref()))
        .collect();
    let mut meta = state.scheduler.datasets_metadata(&writers).await;
    let mut zones: BTreeMap<&str, Vec<Summary<'_>>> = BTreeMap::new();
    for (name, sum) in summaries {
        let about = meta.remove(name).unwrap_or_default();
        let found = name.to_lowercase().contains(&q)
            || about
                .owner
                .as_deref()
                .is_some_and(|o| o.to_lowercase().contains(&q))
            || about.tags.iter().any(|t| t.to_lowercase() == q);
        if !q.is_empty() && !found {
            continue;
        }
        let v = sum.latest;
        zones.entry(zone_of(name)).or_default().push(Summary {
            name,
            zone: zone_of(name),
            version: v.version,
            versions: sum.versions,
            rows: v.rows,
            bytes: v.bytes,
            created_at: v.created_at,
            dag_id: v.dag_id.as_deref(),
            run_id: v.run_id.as_deref(),
            task_id: v.task_id.as_deref(),
            owner: about.owner,
            tags: about.tags,
        });
    }
    super::page(
        "datasets.html",
        &me,
        super::ctx! { zones => zones, q => s.q },
    )
}

#[derive(Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    nullable: bool,
    description: Option<String>,
    classification: Option<&'static str>,
}

/// `/datasets/{name}`: versions, schema, lineage, quality links.
pub async fn dataset(
    State(state): State<AppState>,
    me: Me,
    Path(name): Path<String>,
) -> PageResult {
    let all = state.scheduler.store().dataset_versions(None).await?;
    let lineage = catalog::lineage(&all, &name)
        .ok_or_else(|| PageError::not_found(format!("dataset `{name}` has no version")))?;
    let meta = state
        .scheduler
        .dataset_metadata(&name, lineage.latest.dag_id.as_deref())
        .await
        .unwrap_or_default();
    let schema: Vec<Column> = lineage
        .latest
        .columns()
        .into_iter()
        .map(|c| {
            let about = meta.columns.get(&c.name);
            Column {
                kind: c.data_type,
                nullable: c.nullable,
                description: about.and_then(|c| c.description.clone()),
                classification: about.and_then(|c| c.classification).map(|c| c.as_str()),
                name: c.name,
            }
        })
        .collect();
    let mut writers: BTreeSet<(String, String)> = BTreeSet::new();
    for v in &lineage.versions {
        if let (Some(d), Some(t)) = (&v.dag_id, &v.task_id) {
            writers.insert((d.clone(), t.clone()));
        }
    }
    let mut quality = Vec::new();
    for (dag_id, task_id) in &writers {
        if let Ok((_, dag)) = state.scheduler.latest_dag(dag_id).await
            && matches!(
                dag.tasks.get(task_id.as_str()).map(|t| &t.kind),
                Some(TaskKind::Validate { .. })
            )
        {
            quality.push((dag_id.clone(), task_id.clone()));
        }
    }
    let versions: Vec<&DatasetVersionRecord> = lineage.versions.iter().rev().copied().collect();
    super::page(
        "dataset.html",
        &me,
        super::ctx! {
            name => &name, zone => zone_of(&name),
            latest => version_view(lineage.latest),
            versions => versions.iter().map(|v| version_view(v)).collect::<Vec<_>>(),
            schema => schema, quality => quality,
            owner => &meta.owner, description => &meta.description, tags => &meta.tags,
            lineage => lineage_graph(&all, &name),
        },
    )
}

fn version_view(v: &DatasetVersionRecord) -> serde_json::Value {
    super::ctx! {
        id => v.id, dataset => &v.dataset, version => v.version, rows => v.rows, bytes => v.bytes,
        created_at => v.created_at, dag_id => &v.dag_id, run_id => &v.run_id,
        task_id => &v.task_id, try_number => v.try_number, path => &v.path,
        deleted_at => v.deleted_at, delta_version => v.delta_version,
    }
}

/// The datasets `name` is made from and those made from it, a few steps
/// each way, as a drawing.
fn lineage_graph(all: &[DatasetVersionRecord], name: &str) -> Drawing {
    let by_id: HashMap<i64, &str> = all.iter().map(|v| (v.id, v.dataset.as_str())).collect();
    let mut edges: BTreeSet<(&str, &str)> = BTreeSet::new();
    for v in all {
        for id in v.input_ids() {
            if let Some(up) = by_id.get(&id) {
                edges.insert((up, v.dataset.as_str()));
            }
        }
    }
    let mut keep: BTreeSet<&str> = BTreeSet::from([name]);
    for upward in [true, false] {
        let mut queue = VecDeque::from([(name, 0usize)]);
        while let Some((at, depth)) = queue.pop_front() {
            if depth == LINEAGE_DEPTH {
                continue;
            }
            for (a, b) in &edges {
                let next = match upward {
                    true if *b == at => *a,
                    false if *a == at => *b,
                    _ => continue,
                };
                if keep.insert(next) {
                    queue.push_back((next, depth + 1));
                }
            }
        }
    }
    let names: Vec<&str> = keep.into_iter().collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let nodes = names
        .iter()
        .map(|n| {
            let class = if *n == name {
                format!("zone-{} current", zone_of(n))
            } else {
                format!("zone-{}", zone_of(n))
            };
            graph::node(
                n,
                zone_of(n),
                &class,
                Some(format!("/datasets/{}", super::seg(n))),
            )
        })
        .collect();
    let lines: Vec<(usize, usize, &'static str)> = edges
        .iter()
        .filter_map(|(a, b)| {
            let class = if catalog::unchecked_edge(a, b) {
                "unchecked"
            } else {
                "dataset"
            };
            Some((*index.get(a)?, *index.get(b)?, class))
        })
        .collect();
    graph::layout(nodes, &lines)
}

#[derive(Serialize)]
struct Point {
    run_id: String,
    try_number: i64,
    rows_in: i64,
    rows_clean: i64,
    rows_quarantined: i64,
    checks_passed: i64,
    checks_failed: i64,
    published: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    x: i64,
    clean_h: i64,
    quarantined_h: i64,
}

/// Height of the quality chart's bars.
const CHART_H: i64 = 120;
/// Width of one bar and its gap.
const BAR_W: i64 = 14;

/// `/dags/{dag_id}/tasks/{task_id}/quality`: rows in, clean and quarantined,
/// and checks passed and failed, per run.
pub async fn quality(
    State(state): State<AppState>,
    me: Me,
    Path((dag_id, task_id)): Path<(String, String)>,
) -> PageResult {
    let (_, dag) = state.scheduler.latest_dag(&dag_id).await?;
    match dag.tasks.get(task_id.as_str()).map(|t| &t.kind) {
        Some(TaskKind::Validate { .. }) => {}
        Some(_) => {
            return Err(PageError::not_found(format!(
                "task `{task_id}` of DAG `{dag_id}` is not a validate task: it has no quality history"
            )));
        }
        None => {
            return Err(PageError::not_found(format!(
                "task `{task_id}` of DAG `{dag_id}` not found"
            )));
        }
    }
    let mut history = state
        .scheduler
        .store()
        .quality_history(&dag_id, &task_id, HISTORY)
        .await?;
    history.reverse();
    let top = history
        .iter()
        .map(|p| p.quality.rows_in)
        .max()
        .unwrap_or(0)
        .max(1);
    let points: Vec<Point> = history
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let q = &p.quality;
            Point {
                x: i as i64 * BAR_W,
                clean_h: q.rows_clean * CHART_H / top,
                quarantined_h: q.rows_quarantined * CHART_H / top,
                run_id: q.run_id.clone(),
                try_number: q.try_number,
                rows_in: q.rows_in,
                rows_clean: q.rows_clean,
                rows_quarantined: q.rows_quarantined,
                checks_passed: p.checks_passed,
                checks_failed: p.checks_failed,
                published: q.published,
                created_at: q.created_at,
            }
        })
        .collect();
    super::page(
        "quality.html",
        &me,
        super::ctx! {
            dag_id => &dag_id, task_id => &task_id, top => top,
            chart_h => CHART_H, bar_w => BAR_W, width => (points.len() as i64 * BAR_W).max(30 * BAR_W),
            points => points,
        },
    )
}

/// `?reason=&offset=`.
#[derive(Debug, Default, Deserialize)]
pub struct RowsQuery {
    reason: Option<String>,
    #[serde(default)]
    offset: usize,
}

/// `/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/quarantine`: the rows a
/// validate try of the run quarantined, with their reasons.
pub async fn quarantine(
    State(state): State<AppState>,
    me: Me,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(q): Query<RowsQuery>,
) -> PageResult {
    let store = state.scheduler.store();
    store.get_task_instance(&dag_id, &run_id, &task_id).await?;
    let outcome = store
        .quality_of_run(&dag_id, &run_id)
        .await?
        .into_iter()
        .rev()
        .find(|(r, _)| r.task_id == task_id)
        .ok_or_else(|| {
            PageError::not_found(format!(
                "task `{task_id}` of run `{run_id}` recorded no validation"
            ))
        })?;
    let (record, checks) = outcome;
    let version = match record.quarantine_version {
        Some(id) => Some(store.get_dataset_version(id).await?),
        None => None,
    };
    let reason = q.reason.filter(|r| !r.is_empty());
    // Personal data is shown to admins only.
    let pii = if me.role.allows(Role::Admin) {
        Vec::new()
    } else {
        state.scheduler.pii_columns(&dag_id, &task_id).await
    };
    let rows = match (&version, &state.rows) {
        (Some(v), Some(reader)) if v.deleted_at.is_none() => Some(
            reader
                .rows(
                    v,
                    &RowQuery {
                        reason: reason.clone(),
                        limit: ROWS_PAGE,
                        offset: q.offset,
                    },
                )
                .await
                .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.0))?
                .masked(&pii),
        ),
        (Some(v), Some(_)) => {
            return Err(PageError::new(
                StatusCode::GONE,
                format!(
                    "the quarantine of this run (`{}` version {}) was deleted by retention",
                    v.dataset, v.version
                ),
            ));
        }
        (Some(_), None) => {
            return Err(PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server was started without access to the data files",
            ));
        }
        (None, _) => None,
    };
    let matching = rows.as_ref().map_or(0, |r| r.matching);
    super::page(
        "quarantine.html",
        &me,
        super::ctx! {
            dag_id => &dag_id, run_id => &run_id, task_id => &task_id,
            record => super::ctx! {
                try_number => record.try_number, dataset => &record.dataset,
                rows_in => record.rows_in, rows_clean => record.rows_clean,
                rows_quarantined => record.rows_quarantined, published => record.published,
            },
            checks => checks.iter().map(|c| super::ctx! {
                name => &c.name, kind => c.kind.as_str(), column => &c.column_name, passed => c.passed,
                failed => c.failed, observed => c.observed.as_deref().map(|o| mask_sample(o, &pii)), threshold => &c.threshold,
                severity => c.severity.as_str(),
            }).collect::<Vec<_>>(),
            version => version.as_ref().map(version_view),
            rows => rows, reason => reason, offset => q.offset, page => ROWS_PAGE,
            masked => pii,
            next => (q.offset + ROWS_PAGE < usize::try_from(matching).unwrap_or(usize::MAX)).then_some(q.offset + ROWS_PAGE),
            prev => (q.offset > 0).then(|| q.offset.saturating_sub(ROWS_PAGE)),
        },
    )
}
