//! The forms that change things: trigger, backfill (with its preview),
//! clear and mark one task instance, and clear or mark many task instances
//! or runs at once. Each needs the operator role and a valid CSRF token,
//! and goes through the same scheduler calls as the REST API.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use weir_core::access::{Reprocess, Role};
use weir_core::scheduler::backfill::BackfillRange;
use weir_core::scheduler::{ClearSpec, Trigger};
use weir_core::state::{RunState, TaskState};

use super::session::Posted;
use super::{Me, PageError, PageResult};
use crate::AppState;
use crate::routes::backfills::{BackfillRequest, start};

/// `back` when it is a path of this site, else `default`.
pub fn back_to(back: Option<&str>, default: &str) -> String {
    super::local_path(back, default).to_owned()
}

fn dag_path(dag_id: &str) -> String {
    format!("/dags/{}", super::seg(dag_id))
}

/// A date or date-time from a form: `2026-01-02`, `2026-01-02T03:04`
/// (UTC) or RFC 3339.
pub fn parse_when(field: &str, text: &str) -> Result<DateTime<Utc>, PageError> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(PageError::unprocessable(format!(
        "{field}: `{t}` is not a date (write 2026-01-31 or 2026-01-31T06:00)"
    )))
}

/// The last logical date of a range: a plain date means the whole day.
pub fn parse_until(field: &str, text: &str) -> Result<DateTime<Utc>, PageError> {
    let at = parse_when(field, text)?;
    if NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok() {
        return Ok(at + chrono::Duration::days(1) - chrono::Duration::seconds(1));
    }
    Ok(at)
}

/// `POST /dags/{dag_id}/trigger` (operator): `conf` (a JSON object),
/// `param.<name>` fields over it, `logical_date` and `note`.
pub async fn trigger(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Posted { me, form }: Posted<Vec<(String, String)>>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut conf = match field("conf") {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => return Err(PageError::unprocessable("conf: must be a JSON object")),
            Err(e) => return Err(PageError::unprocessable(format!("conf is not JSON: {e}"))),
        },
    };
    let (_, dag) = state.scheduler.latest_dag(&dag_id).await?;
    for (name, default) in &dag.params {
        let key = format!("param.{name}");
        let given = form
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str());
        let value = match (default, given) {
            (serde_json::Value::Bool(_), given) => {
                serde_json::Value::Bool(given.is_some_and(|v| v == "true"))
            }
            (_, None) => continue,
            (serde_json::Value::String(_), Some(v)) => serde_json::Value::String(v.to_owned()),
            (_, Some(v)) => serde_json::from_str(v).map_err(|e| {
                PageError::unprocessable(format!("param `{name}`: `{v}` is not JSON: {e}"))
            })?,
        };
        conf.entry(name.clone()).or_insert(value);
    }
    let logical_date = field("logical_date")
        .map(|t| parse_when("logical_date", t))
        .transpose()?;
    let run = state
        .scheduler
        .trigger(
            &dag_id,
            Trigger {
                run_id: None,
                logical_date,
                conf: Some(serde_json::Value::Object(conf)),
                note: field("note").map(str::to_owned),
                actor: me.name.clone(),
            },
        )
        .await?;
    Ok(Redirect::to(&format!(
        "{}/runs/{}",
        dag_path(&dag_id),
        super::seg(&run.run_id)
    ))
    .into_response())
}

/// The backfill form's fields.
#[derive(Debug, Deserialize)]
pub struct BackfillForm {
    from: String,
    to: String,
    #[serde(default)]
    rerun: Option<String>,
    #[serde(default)]
    max_active_runs: Option<String>,
}

/// `POST /dags/{dag_id}/backfill` (operator).
pub async fn backfill(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Posted { me, form }: Posted<BackfillForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let max_active_runs = match form.max_active_runs.as_deref().map(str::trim) {
        None | Some("") => 10,
        Some(n) => n.parse().map_err(|_| {
            PageError::unprocessable(format!("max active runs: `{n}` is not a number"))
        })?,
    };
    let request = BackfillRequest {
        dag_id: dag_id.clone(),
        from: parse_when("from", &form.from)?,
        to: parse_until("to", &form.to)?,
        reprocess: reprocess(form.rerun.is_some()),
        max_active_runs,
        conf: serde_json::json!({}),
    };
    start(&state, &me.name, &request).await?;
    Ok(Redirect::to(&dag_path(&dag_id)).into_response())
}

fn reprocess(rerun_failed: bool) -> Reprocess {
    if rerun_failed {
        Reprocess::Failed
    } else {
        Reprocess::None
    }
}

/// The preview's query.
#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    rerun: Option<String>,
}

/// What a backfill would do, in a sentence.
pub async fn preview_text(
    state: &AppState,
    dag_id: &str,
    from: &str,
    to: &str,
    rerun: bool,
) -> Result<String, PageError> {
    let range = BackfillRange {
        from: parse_when("from", from)?,
        to: parse_until("to", to)?,
        reprocess: reprocess(rerun),
        conf: "{}".into(),
    };
    let p = state.scheduler.preview_backfill(dag_id, &range).await?;
    Ok(format!(
        "{} interval{} in the range: {} new run{} would be created, {} failed run{} run again.",
        p.intervals,
        if p.intervals == 1 { "" } else { "s" },
        p.create,
        if p.create == 1 { "" } else { "s" },
        p.rerun,
        if p.rerun == 1 { "" } else { "s" },
    ))
}

/// `GET /dags/{dag_id}/backfill/preview` (for the form's script): the
/// sentence of [`preview_text`] as plain text, or why not (422).
pub async fn backfill_preview(
    State(state): State<AppState>,
    _: Me,
    Path(dag_id): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Response {
    match preview_text(&state, &dag_id, &q.from, &q.to, q.rerun.is_some()).await {
        Ok(text) => text.into_response(),
        Err(e) => (e.status(), e.detail().to_owned()).into_response(),
    }
}

/// The clear form of a task instance.
#[derive(Debug, Deserialize)]
pub struct ClearForm {
    #[serde(default)]
    downstream: Option<String>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    only_failed: Option<String>,
}

fn task_path(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!(
        "{}/runs/{}/tasks/{}",
        dag_path(dag_id),
        super::seg(run_id),
        super::seg(task_id)
    )
}

/// `POST …/tasks/{task_id}/clear` (operator).
pub async fn clear(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Posted { me, form }: Posted<ClearForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let spec = ClearSpec {
        task_ids: vec![task_id.clone()],
        downstream: form.downstream.is_some(),
        upstream: form.upstream.is_some(),
        only_failed: form.only_failed.is_some(),
        instances: Vec::new(),
    };
    state
        .scheduler
        .clear(&dag_id, &run_id, &spec, &me.name)
        .await?;
    Ok(Redirect::to(&task_path(&dag_id, &run_id, &task_id)).into_response())
}

/// The mark form of a task instance.
#[derive(Debug, Deserialize)]
pub struct MarkForm {
    state: String,
}

fn mark_state(text: &str) -> Result<TaskState, PageError> {
    match text {
        "success" => Ok(TaskState::Success),
        "failed" => Ok(TaskState::Failed),
        other => Err(PageError::unprocessable(format!(
            "a task can be marked success or failed, not `{other}`"
        ))),
    }
}

/// `POST …/tasks/{task_id}/mark` (operator).
pub async fn mark(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(at): Query<MappedQuery>,
    Posted { me, form }: Posted<MarkForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let to = mark_state(&form.state)?;
    let map_index = at.map_index.unwrap_or(-1);
    state
        .scheduler
        .mark_instance(&dag_id, &run_id, &task_id, map_index, to, &me.name)
        .await?;
    let back = task_path(&dag_id, &run_id, &task_id);
    Ok(Redirect::to(&match map_index {
        i if i >= 0 => format!("{back}?map_index={i}"),
        _ => back,
    })
    .into_response())
}

/// Which mapped instance a task form is about.
#[derive(Debug, Default, Deserialize)]
pub struct MappedQuery {
    /// The mapped instance (default -1: the task).
    map_index: Option<i64>,
}

/// Many task instances of one run, or many runs, and what to do with them.
#[derive(Debug, Deserialize)]
pub struct BatchForm {
    /// `clear`, `clear_failed`, `mark_success` or `mark_failed`.
    action: String,
    /// Selected runs.
    #[serde(default, rename = "run")]
    runs: Vec<String>,
    /// The run of the selected task instances.
    run_id: Option<String>,
    /// Selected task instances of `run_id`.
    #[serde(default, rename = "task")]
    tasks: Vec<String>,
    /// Clear downstream tasks too.
    downstream: Option<String>,
    /// Where to go back to.
    back: Option<String>,
}

/// `POST /dags/{dag_id}/batch` (operator): clear or mark the selected task
/// instances of a run, or the selected runs.
pub async fn batch(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Posted { me, form }: Posted<BatchForm>,
) -> PageResult<Response> {
    me.require(Role::Operator)?;
    let s = &state.scheduler;
    match (&form.run_id, form.tasks.is_empty(), form.runs.is_empty()) {
        (Some(run_id), false, _) => match form.action.as_str() {
            "clear" | "clear_failed" => {
                let spec = ClearSpec {
                    task_ids: form.tasks.clone(),
                    downstream: form.downstream.is_some(),
                    upstream: false,
                    only_failed: form.action == "clear_failed",
                    instances: Vec::new(),
                };
                s.clear(&dag_id, run_id, &spec, &me.name).await?;
            }
            "mark_success" | "mark_failed" => {
                let to = mark_state(form.action.trim_start_matches("mark_"))?;
                let run = s.store().get_run(&dag_id, run_id).await?;
                let current =
                    weir_core::store::task_states(&s.store().list_task_instances(run.id).await?);
                for task in &form.tasks {
                    match current.get(task) {
                        None => {
                            return Err(PageError::not_found(format!(
                                "task `{task}` of run `{run_id}`"
                            )));
                        }
                        Some(c) if *c != to => s.mark(&dag_id, run_id, task, to, &me.name).await?,
                        Some(_) => {}
                    }
                }
            }
            other => return Err(unknown_action(other)),
        },
        (_, _, false) => {
            for run_id in &form.runs {
                match form.action.as_str() {
                    "clear" | "clear_failed" => {
                        let run = s.store().get_run(&dag_id, run_id).await?;
                        let dag = s.dag_version(run.version_id).await?;
                        let spec = ClearSpec {
                            task_ids: dag.tasks.keys().map(ToString::to_string).collect(),
                            only_failed: form.action == "clear_failed",
                            ..ClearSpec::default()
                        };
                        s.clear(&dag_id, run_id, &spec, &me.name).await?;
                    }
                    "mark_success" | "mark_failed" => {
                        let to = if form.action == "mark_success" {
                            RunState::Success
                        } else {
                            RunState::Failed
                        };
                        let run = s.store().get_run(&dag_id, run_id).await?;
                        if run.state != to {
                            s.set_run_state(&dag_id, run_id, to, &me.name).await?;
                        }
                    }
                    other => return Err(unknown_action(other)),
                }
            }
        }
        _ => {
            return Err(PageError::unprocessable(
                "select at least one task instance or run first",
            ));
        }
    }
    Ok(Redirect::to(&back_to(form.back.as_deref(), &dag_path(&dag_id))).into_response())
}

fn unknown_action(action: &str) -> PageError {
    PageError::unprocessable(format!(
        "`{action}` is not an action: clear, clear_failed, mark_success or mark_failed"
    ))
}
