//! The home page: every DAG with its schedule, owner, tags, last runs and
//! next run, filters, the import errors banner, and the pause toggle.

use std::collections::{BTreeSet, HashSet};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use weir_core::access::Role;
use weir_core::store::{RunFilter, RunOrder};

use super::{Me, PageResult, session::Posted};
use crate::AppState;
use crate::models::DagResponse;

/// How many last runs each DAG shows.
const LAST_RUNS: i64 = 10;

/// The filters of the home page.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Filters {
    /// Only DAGs with this tag.
    #[serde(default)]
    tag: String,
    /// Only DAGs of this owner.
    #[serde(default)]
    owner: String,
    /// Only DAGs whose last run is in this state.
    #[serde(default)]
    state: String,
    /// DAG ids containing this.
    #[serde(default)]
    q: String,
}

#[derive(Serialize)]
struct DagRow {
    dag: DagResponse,
    timezone: String,
    last_runs: Vec<RunSquare>,
}

#[derive(Serialize)]
struct RunSquare {
    run_id: String,
    state: String,
    when: Option<chrono::DateTime<chrono::Utc>>,
}

/// `/`.
pub async fn page(State(state): State<AppState>, me: Me, Query(f): Query<Filters>) -> PageResult {
    let store = state.scheduler.store();
    let errors = store.list_import_errors().await?;
    let error_files: HashSet<&str> = errors.iter().map(|e| e.filename.as_str()).collect();
    let mut rows = Vec::new();
    let (mut tags, mut owners) = (BTreeSet::new(), BTreeSet::new());
    let q = f.q.trim().to_lowercase();
    for d in store.list_dags().await?.into_iter().filter(|d| !d.is_stale) {
        let dag_tags = d.tag_list();
        tags.extend(dag_tags.iter().cloned());
        owners.extend(d.owner.iter().cloned());
        if (!f.tag.is_empty() && !dag_tags.contains(&f.tag))
            || (!f.owner.is_empty() && d.owner.as_deref() != Some(f.owner.as_str()))
            || (!q.is_empty() && !d.dag_id.to_lowercase().contains(&q))
        {
            continue;
        }
        let (mut runs, _) = store
            .list_runs(&RunFilter {
                dag_id: Some(d.dag_id.clone()),
                order: Some((RunOrder::Id, true)),
                limit: Some(LAST_RUNS),
                ..RunFilter::default()
            })
            .await?;
        if !f.state.is_empty() && runs.first().map(|r| r.state.as_str()) != Some(f.state.as_str()) {
            continue;
        }
        runs.reverse();
        let def = state.scheduler.dag_version(d.latest_version_id).await?;
        rows.push(DagRow {
            timezone: d.timezone.clone(),
            dag: DagResponse::new(
                &d,
                &def,
                error_files.contains(d.fileloc.as_str()),
                state.scheduler.now(),
            ),
            last_runs: runs
                .into_iter()
                .map(|r| RunSquare {
                    state: r.state.to_string(),
                    when: r.logical_date.or(r.start_date),
                    run_id: r.run_id,
                })
                .collect(),
        });
    }
    super::page(
        "home.html",
        &me,
        super::ctx! {
            dags => rows, errors => errors.iter().map(|e| super::ctx!{
                filename => &e.filename, line => e.line, col => e.col, message => &e.message,
            }).collect::<Vec<_>>(),
            tags => tags, owners => owners, f => f,
            states => ["queued", "running", "success", "failed"],
        },
    )
}

/// The pause toggle's form.
#[derive(Debug, Deserialize)]
pub struct PauseForm {
    /// `true` to pause, `false` to unpause.
    paused: bool,
    /// Where to go back to.
    back: Option<String>,
}

/// `POST /dags/{dag_id}/pause` (operator).
pub async fn pause(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Posted { me, form }: Posted<PauseForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    if form.paused {
        state.scheduler.pause(&dag_id, &me.name).await?;
    } else {
        state.scheduler.unpause(&dag_id, &me.name).await?;
    }
    Ok(Redirect::to(&super::forms::back_to(form.back.as_deref(), "/")).into_response())
}
