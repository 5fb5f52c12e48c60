//! The DAG page: the grid of runs × tasks (one query per page), the panel of
//! the selected run or task instance, and the graph, Gantt, definition,
//! trigger and backfill views.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use weir_core::dag::{Dag, KindName, TaskKind};
use weir_core::state::TaskState;
use weir_core::store::{GridPage, GridRuns, RunRecord, TaskInstanceRecord, TryRecord};

use super::graph::{self, Drawing};
use super::{Me, PageError, PageResult};
use crate::AppState;
use crate::models::DagResponse;

/// Runs per grid page.
pub const GRID_RUNS: i64 = 25;

/// What the DAG page shows.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct DagQuery {
    /// Newer runs skipped by the grid.
    #[serde(default)]
    pub offset: i64,
    /// The view under the grid: graph, gantt, code, trigger or backfill.
    pub view: Option<String>,
    /// The selected run (set by the path).
    #[serde(skip)]
    pub run: Option<String>,
    /// The selected task (set by the path).
    #[serde(skip)]
    pub task: Option<String>,
    /// The selected mapped instance of the task (default: its own).
    pub map_index: Option<i64>,
    /// Backfill preview (without script): first logical date.
    pub from: Option<String>,
    /// Backfill preview: last logical date.
    pub to: Option<String>,
    /// Backfill preview: rerun failed runs.
    pub rerun: Option<String>,
    /// Backfill preview: at most this many active runs.
    pub max_active_runs: Option<String>,
}

/// `/dags/{dag_id}`.
pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Path(dag_id): Path<String>,
    Query(q): Query<DagQuery>,
) -> PageResult {
    render(&state, &me, &dag_id, q).await
}

/// `/dags/{dag_id}/runs/{run_id}`: the DAG page with that run selected.
pub async fn run_page(
    State(state): State<AppState>,
    me: Me,
    Path((dag_id, run_id)): Path<(String, String)>,
    Query(mut q): Query<DagQuery>,
) -> PageResult {
    q.run = Some(run_id);
    render(&state, &me, &dag_id, q).await
}

/// `/dags/{dag_id}/runs/{run_id}/tasks/{task_id}`: the DAG page with that
/// task instance open beside the grid.
pub async fn task_page(
    State(state): State<AppState>,
    me: Me,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(mut q): Query<DagQuery>,
) -> PageResult {
    q.run = Some(run_id);
    q.task = Some(task_id);
    render(&state, &me, &dag_id, q).await
}

#[derive(Serialize)]
struct Column {
    run_id: String,
    state: String,
    label: String,
    selected: bool,
    pk: i64,
}

#[derive(Serialize)]
struct Row {
    task_id: String,
    kind: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct Cell {
    run_id: String,
    state: String,
    try_number: i64,
    selected: bool,
    pk: i64,
}

/// A try as the task panel lists it.
#[derive(Serialize)]
struct TryView {
    try_number: i64,
    state: String,
    start_date: chrono::DateTime<chrono::Utc>,
    end_date: Option<chrono::DateTime<chrono::Utc>>,
    duration: Option<f64>,
    hostname: Option<String>,
    exit_code: Option<i64>,
    error: Option<String>,
}

impl From<&TryRecord> for TryView {
    fn from(t: &TryRecord) -> Self {
        TryView {
            try_number: t.try_number,
            state: t.state.to_string(),
            start_date: t.start_date,
            end_date: t.end_date,
            duration: t.duration(),
            hostname: t.hostname.clone(),
            exit_code: t.exit_code,
            error: t.error.clone(),
        }
    }
}

/// A mapped instance as its task's panel lists it.
#[derive(Serialize)]
struct MappedView {
    map_index: i64,
    item: String,
    state: String,
    try_number: i64,
    duration: Option<f64>,
}

/// The selected task instance.
#[derive(Serialize)]
struct TaskPanel {
    task_id: String,
    kind: String,
    state: String,
    try_number: i64,
    max_tries: i64,
    pool: String,
    queue: String,
    /// Queued, and no active worker serves its queue.
    unserved: bool,
    trigger_rule: String,
    queued_at: Option<chrono::DateTime<chrono::Utc>>,
    start_date: Option<chrono::DateTime<chrono::Utc>>,
    end_date: Option<chrono::DateTime<chrono::Utc>>,
    hostname: Option<String>,
    command: Option<String>,
    /// The output of the latest try, as indented JSON.
    output: Option<String>,
    tries: Vec<TryView>,
    /// A mapped instance's index (none for a task's own instance).
    map_index: Option<i64>,
    /// A mapped instance's item, as JSON.
    item: Option<String>,
    /// The mapped instances of an expanded task.
    mapped: Vec<MappedView>,
    validate: bool,
    can_clear: bool,
    can_mark_success: bool,
    can_mark_failed: bool,
}

#[derive(Serialize)]
struct RunPanel {
    run_id: String,
    state: String,
    run_type: String,
    logical_date: Option<chrono::DateTime<chrono::Utc>>,
    data_interval_start: Option<chrono::DateTime<chrono::Utc>>,
    data_interval_end: Option<chrono::DateTime<chrono::Utc>>,
    queued_at: chrono::DateTime<chrono::Utc>,
    start_date: Option<chrono::DateTime<chrono::Utc>>,
    end_date: Option<chrono::DateTime<chrono::Utc>>,
    duration: Option<f64>,
    conf: String,
    note: Option<String>,
    triggered_by: Option<String>,
    version: i64,
    /// Each task of the run's version with its state, in graph order.
    tasks: Vec<(String, String)>,
    /// The notifications it fired and how their delivery went.
    notifications: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct Bar {
    task_id: String,
    try_number: i64,
    state: String,
    x: i64,
    width: i64,
    y: i64,
    label: String,
}

#[derive(Serialize)]
struct Param {
    name: String,
    kind: &'static str,
    value: String,
}

async fn render(state: &AppState, me: &Me, dag_id: &str, q: DagQuery) -> PageResult {
    let store = state.scheduler.store();
    let d = store.get_dag(dag_id).await?;
    let (latest_vid, latest) = state.scheduler.latest_dag(dag_id).await?;
    let offset = q.offset.max(0);
    let grid = store
        .grid(&GridRuns::Page {
            dag_id: dag_id.to_owned(),
            limit: GRID_RUNS,
            offset,
        })
        .await?;
    let selected: Option<RunRecord> = match &q.run {
        Some(run_id) => Some(store.get_run(dag_id, run_id).await?),
        None => grid.runs.last().cloned(),
    };
    let def = match &selected {
        Some(r) => state.scheduler.dag_version(r.version_id).await?,
        None => latest.clone(),
    };
    let (columns, rows) = grid_view(&latest, &grid, selected.as_ref(), q.task.as_deref());
    let selected_cells: HashMap<String, TaskState> = match &selected {
        Some(r) if grid.runs.iter().any(|g| g.id == r.id) => grid
            .cells
            .iter()
            .filter(|c| c.run_pk == r.id)
            .map(|c| (c.task_id.clone(), c.state))
            .collect(),
        Some(r) => weir_core::store::task_states(&store.list_task_instances(r.id).await?),
        None => HashMap::new(),
    };
    let task_panel = match (&selected, &q.task) {
        (Some(run), Some(task_id)) => {
            let ti = store
                .get_mapped_instance(dag_id, &run.run_id, task_id, q.map_index.unwrap_or(-1))
                .await?;
            Some(task_panel(state, &def, &ti).await?)
        }
        (None, Some(task_id)) => {
            return Err(PageError::not_found(format!(
                "task `{task_id}`: DAG `{dag_id}` has no run"
            )));
        }
        _ => None,
    };
    let mut run_panel = selected
        .as_ref()
        .map(|r| run_panel(r, &def, &selected_cells));
    if let (Some(panel), Some(r)) = (run_panel.as_mut(), selected.as_ref()) {
        panel.notifications = state
            .scheduler
            .store()
            .run_notifications(r.id)
            .await?
            .iter()
            .map(|n| {
                serde_json::json!({
                    "event": n.event.as_str(), "rule": n.rule, "task_id": n.task_id,
                    "state": n.state, "attempts": n.attempts, "last_error": n.last_error,
                    "sent_at": n.sent_at,
                })
            })
            .collect();
    }
    let view = q.view.clone().unwrap_or_else(|| "graph".into());
    let href = |r: &RunRecord| {
        format!(
            "/dags/{}/runs/{}",
            super::seg(dag_id),
            super::seg(&r.run_id)
        )
    };
    let base = selected
        .as_ref()
        .map(href)
        .unwrap_or_else(|| format!("/dags/{}", super::seg(dag_id)));
    let drawing =
        (view == "graph").then(|| dag_graph(&def, dag_id, selected.as_ref(), &selected_cells));
    let gantt = match (&view[..], &selected) {
        ("gantt", Some(r)) => Some(gantt(&store.run_tries(r.id).await?, state.scheduler.now())),
        _ => None,
    };
    let code = if view == "code" {
        let version_id = selected.as_ref().map_or(latest_vid, |r| r.version_id);
        let version = store.get_version(version_id).await?;
        Some(super::ctx! {
            number => version.version_number, fileloc => version.fileloc,
            created_at => version.created_at, files => version.source_texts(),
            yaml => definition_yaml(&version.definition),
        })
    } else {
        None
    };
    let preview = match (&view[..], &q.from, &q.to) {
        ("backfill", Some(from), Some(to)) if !from.is_empty() && !to.is_empty() => Some(
            super::forms::preview_text(state, dag_id, from, to, q.rerun.is_some())
                .await
                .unwrap_or_else(|e| e.detail().to_owned()),
        ),
        _ => None,
    };
    let active: Vec<i64> = grid
        .runs
        .iter()
        .filter(|r| !r.state.is_finished())
        .map(|r| r.id)
        .collect();
    let now = state.scheduler.now();
    let import_errors: Vec<serde_json::Value> = store
        .list_import_errors()
        .await?
        .into_iter()
        .filter(|e| e.filename == d.fileloc)
        .map(|e| super::ctx! { line => e.line, col => e.col, message => e.message })
        .collect();
    super::page(
        "dag.html",
        me,
        super::ctx! {
            dag => DagResponse::new(&d, &latest, !import_errors.is_empty(), now),
            import_errors => import_errors, fileloc => &d.fileloc, stale => d.is_stale,
            timezone => &d.timezone,
            columns => columns, rows => rows,
            offset => offset, page_size => GRID_RUNS, total_runs => grid.total_runs,
            newer => (offset > 0).then(|| (offset - GRID_RUNS).max(0)),
            older => (offset + GRID_RUNS < grid.total_runs).then_some(offset + GRID_RUNS),
            run => run_panel, task => task_panel, selected_pk => selected.as_ref().map(|r| r.id),
            view => view, base => base,
            graph => drawing, gantt => gantt, code => code,
            params => params(&latest), backfillable => matches!(latest.schedule, weir_core::dag::Schedule::Cron(_)),
            preview => preview, q_from => q.from, q_to => q.to, q_rerun => q.rerun.is_some(), q_max => q.max_active_runs,
            live => (!active.is_empty()).then(|| format!(
                "/dags/{}/events?runs={}", super::seg(dag_id),
                active.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))),
        },
    )
}

/// Columns (runs, oldest left) and rows (tasks in the newest version's
/// order, then tasks only older versions had).
fn grid_view(
    latest: &Dag,
    grid: &GridPage,
    selected: Option<&RunRecord>,
    task: Option<&str>,
) -> (Vec<Column>, Vec<Row>) {
    let mut order: Vec<(String, String)> = latest
        .graph
        .topological_order()
        .iter()
        .filter_map(|&i| latest.tasks.get_index(i))
        .map(|(id, t)| (id.to_string(), t.kind.name().as_str().to_owned()))
        .collect();
    for c in &grid.cells {
        if !order.iter().any(|(id, _)| *id == c.task_id) {
            order.push((c.task_id.clone(), String::new()));
        }
    }
    let cells: HashMap<(i64, &str), &weir_core::store::GridCell> = grid
        .cells
        .iter()
        .map(|c| ((c.run_pk, c.task_id.as_str()), c))
        .collect();
    let is_selected = |r: &RunRecord| selected.is_some_and(|s| s.id == r.id);
    let columns = grid
        .runs
        .iter()
        .map(|r| Column {
            run_id: r.run_id.clone(),
            state: r.state.to_string(),
            label: r
                .logical_date
                .unwrap_or(r.run_after)
                .format("%m-%d %H:%M")
                .to_string(),
            selected: is_selected(r),
            pk: r.id,
        })
        .collect();
    let rows = order
        .into_iter()
        .map(|(task_id, kind)| Row {
            cells: grid
                .runs
                .iter()
                .map(|r| {
                    let c = cells.get(&(r.id, task_id.as_str()));
                    Cell {
                        run_id: r.run_id.clone(),
                        state: c.map_or("absent".into(), |c| c.state.to_string()),
                        try_number: c.map_or(0, |c| c.try_number),
                        selected: is_selected(r) && task == Some(task_id.as_str()),
                        pk: r.id,
                    }
                })
                .collect(),
            task_id,
            kind,
        })
        .collect();
    (columns, rows)
}

async fn task_panel(
    state: &AppState,
    def: &Dag,
    ti: &TaskInstanceRecord,
) -> Result<TaskPanel, PageError> {
    let tries = state.scheduler.store().list_tries(&ti.id).await?;
    let command = match tries.last() {
        Some(t) => super::logs::command_of(state, t).await,
        None => None,
    };
    let task = def.tasks.get(ti.task_id.as_str());
    let kind = task.map(|t| t.kind.name());
    let mapped = if ti.is_expanded() {
        let mut all = state
            .scheduler
            .store()
            .list_task_instances(ti.run_pk)
            .await?;
        all.retain(|t| t.task_id == ti.task_id && t.map_index >= 0);
        all.sort_by_key(|t| t.map_index);
        all.iter()
            .map(|t| MappedView {
                map_index: t.map_index,
                item: t.map_item.clone().unwrap_or_default(),
                state: t.state.to_string(),
                try_number: t.try_number,
                duration: t.duration(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let unserved = ti.state == TaskState::Queued
        && !state.scheduler.workers_view().await?.iter().any(|w| {
            w.standing == weir_core::scheduler::workers::Standing::Active
                && w.life.serves(&ti.queue)
        });
    Ok(TaskPanel {
        task_id: ti.task_id.clone(),
        kind: kind.map_or("", KindName::as_str).to_owned(),
        state: ti.state.to_string(),
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        pool: ti.pool.clone(),
        queue: ti.queue.clone(),
        unserved,
        trigger_rule: task.map_or("", |t| t.trigger_rule.as_str()).to_owned(),
        queued_at: ti.queued_at,
        start_date: ti.start_date,
        end_date: ti.end_date,
        hostname: ti.hostname.clone(),
        command,
        output: tries
            .last()
            .and_then(|t| t.output.as_deref())
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
            .and_then(|v| serde_json::to_string_pretty(&v).ok()),
        tries: tries.iter().map(TryView::from).collect(),
        map_index: (ti.map_index >= 0).then_some(ti.map_index),
        item: ti.map_item.clone(),
        mapped,
        validate: matches!(task.map(|t| &t.kind), Some(TaskKind::Validate { .. })),
        can_clear: ti.state.is_finished() || ti.state == TaskState::None,
        can_mark_success: ti.state != TaskState::Success,
        can_mark_failed: ti.state != TaskState::Failed,
    })
}

fn run_panel(r: &RunRecord, def: &Dag, cells: &HashMap<String, TaskState>) -> RunPanel {
    let tasks = def
        .graph
        .topological_order()
        .iter()
        .filter_map(|&i| def.tasks.get_index(i))
        .map(|(id, _)| {
            let s = cells.get(id.as_str()).copied().unwrap_or(TaskState::None);
            (id.to_string(), s.to_string())
        })
        .collect();
    RunPanel {
        run_id: r.run_id.clone(),
        state: r.state.to_string(),
        run_type: r.run_type.to_string(),
        logical_date: r.logical_date,
        data_interval_start: r.data_interval_start,
        data_interval_end: r.data_interval_end,
        queued_at: r.queued_at,
        start_date: r.start_date,
        end_date: r.end_date,
        duration: r
            .start_date
            .zip(r.end_date)
            .map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0),
        conf: r.conf.clone(),
        note: r.note.clone(),
        triggered_by: r.triggered_by.clone(),
        version: r.version_id,
        tasks,
        notifications: Vec::new(),
    }
}

/// The DAG's tasks and edges, coloured by the selected run.
fn dag_graph(
    def: &Dag,
    dag_id: &str,
    run: Option<&RunRecord>,
    states: &HashMap<String, TaskState>,
) -> Drawing {
    use weir_core::dag::graph::EdgeKind;
    let nodes = def
        .tasks
        .iter()
        .map(|(id, t)| {
            let state = states.get(id.as_str()).copied().unwrap_or(TaskState::None);
            graph::node(
                id.as_str(),
                t.kind.name().as_str(),
                &format!("s-{state}"),
                run.map(|r| {
                    format!(
                        "/dags/{}/runs/{}/tasks/{}",
                        super::seg(dag_id),
                        super::seg(&r.run_id),
                        super::seg(id.as_str())
                    )
                }),
            )
        })
        .collect();
    let edges: Vec<(usize, usize, &'static str)> = def
        .graph
        .edges()
        .into_iter()
        .map(|(a, b, kind)| {
            let class = match kind {
                EdgeKind::Explicit => "",
                EdgeKind::Dataset => "dataset",
                EdgeKind::UncheckedDataset => "unchecked",
            };
            (a, b, class)
        })
        .collect();
    graph::layout(nodes, &edges)
}

/// Width of the Gantt chart's time axis.
const GANTT_W: i64 = 640;

/// Each try of a run as a bar on one time axis.
fn gantt(tries: &[TryRecord], now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let Some(start) = tries.iter().map(|t| t.start_date).min() else {
        return super::ctx! { bars => Vec::<Bar>::new(), span => 0.0 };
    };
    let end = tries
        .iter()
        .map(|t| t.end_date.unwrap_or(now))
        .max()
        .unwrap_or(start);
    let span = ((end - start).num_milliseconds() as f64 / 1000.0).max(0.001);
    let scale = |t: chrono::DateTime<chrono::Utc>| {
        ((t - start).num_milliseconds() as f64 / 1000.0 / span * GANTT_W as f64) as i64
    };
    let bars: Vec<Bar> = tries
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let x = scale(t.start_date);
            let x2 = scale(t.end_date.unwrap_or(now));
            Bar {
                task_id: t.task_id.clone(),
                try_number: t.try_number,
                state: t.state.to_string(),
                x,
                width: (x2 - x).max(2),
                y: i as i64 * 22,
                label: super::templates::dur(minijinja::Value::from(
                    t.duration()
                        .unwrap_or(((now - t.start_date).num_milliseconds() as f64) / 1000.0),
                )),
            }
        })
        .collect();
    super::ctx! {
        height => bars.len() as i64 * 22, width => GANTT_W, bars => bars, span => span,
    }
}

/// The stored definition (JSON, contracts inlined) as YAML for reading.
fn definition_yaml(definition: &str) -> String {
    serde_json::from_str::<serde_yaml::Value>(definition)
        .ok()
        .and_then(|v| serde_yaml::to_string(&v).ok())
        .unwrap_or_else(|| definition.to_owned())
}

/// The trigger form's fields: one per param, typed by its default.
fn params(def: &Dag) -> Vec<Param> {
    def.params
        .iter()
        .map(|(name, value)| {
            let (kind, text) = match value {
                serde_json::Value::String(s) => ("text", s.clone()),
                serde_json::Value::Number(n) => ("number", n.to_string()),
                serde_json::Value::Bool(b) => ("bool", b.to_string()),
                other => ("json", other.to_string()),
            };
            Param {
                name: name.clone(),
                kind,
                value: text,
            }
        })
        .collect()
}
