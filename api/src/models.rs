//! The JSON the API answers, with Airflow 3's field names where weir shares
//! the concept (so the official client and existing scripts read it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use weir_core::dag::{Dag, Schedule};
use weir_core::state::{RunType, TaskState};
use weir_core::store::{
    AuditRecord, DagRecord, ImportErrorRecord, PoolRecord, RunRecord, TaskInstanceRecord,
    TryRecord, VersionRecord,
};

/// A DAG tag (Airflow's `DagTagResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagTag {
    /// The tag.
    pub name: String,
    /// The DAG.
    pub dag_id: String,
    /// The DAG's display name (its id).
    pub dag_display_name: String,
}

/// A DAG (Airflow's `DAGResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub description: Option<String>,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub fileloc: String,
    pub relative_fileloc: Option<String>,
    pub file_token: String,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<DagTag>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_periodic: bool,
    pub timetable_partitioned: bool,
    pub is_backfillable: bool,
    pub max_active_tasks: i64,
    pub max_active_runs: Option<i64>,
    pub max_consecutive_failed_dag_runs: i64,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
}

impl DagResponse {
    /// From the stored DAG, its definition and whether its file has import errors.
    pub fn new(r: &DagRecord, dag: &Dag, has_import_errors: bool, now: DateTime<Utc>) -> Self {
        let cron = matches!(dag.schedule, Schedule::Cron(_));
        let next_end = dag.next_run_after(now);
        let next = next_end.and_then(|end| {
            weir_core::scheduler::intervals::containing(dag, end - chrono::Duration::seconds(1))
        });
        let summary = match &dag.schedule {
            Schedule::Manual => None,
            other => Some(other.describe()),
        };
        DagResponse {
            dag_id: r.dag_id.clone(),
            dag_display_name: r.dag_id.clone(),
            description: r.description.clone(),
            is_paused: r.is_paused,
            is_stale: r.is_stale,
            last_parsed_time: Some(r.last_parsed_at),
            fileloc: r.fileloc.clone(),
            relative_fileloc: std::path::Path::new(&r.fileloc)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned()),
            file_token: r.dag_id.clone(),
            bundle_name: Some("dags-folder".into()),
            bundle_version: None,
            owners: r.owner.iter().cloned().collect(),
            tags: r
                .tag_list()
                .into_iter()
                .map(|name| DagTag {
                    name,
                    dag_id: r.dag_id.clone(),
                    dag_display_name: r.dag_id.clone(),
                })
                .collect(),
            timetable_description: summary.clone(),
            timetable_summary: summary,
            timetable_periodic: cron,
            timetable_partitioned: false,
            is_backfillable: cron,
            max_active_tasks: r.max_active_tasks,
            max_active_runs: Some(r.max_active_runs),
            max_consecutive_failed_dag_runs: 0,
            has_task_concurrency_limits: false,
            has_import_errors,
            next_dagrun_logical_date: next.map(|n| n.0),
            next_dagrun_data_interval_start: next.map(|n| n.0),
            next_dagrun_data_interval_end: next.map(|n| n.1),
            next_dagrun_run_after: next_end,
        }
    }
}

/// DAGs (Airflow's `DAGCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagCollection {
    pub dags: Vec<DagResponse>,
    pub total_entries: i64,
}

/// A DAG with its details (Airflow's `DAGDetailsResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub catchup: bool,
    pub concurrency: i64,
    pub render_template_as_native_obj: bool,
    /// An ISO 8601 duration (`PT2H`).
    pub dag_run_timeout: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub is_paused_upon_creation: Option<bool>,
    #[schema(value_type = Object)]
    pub params: Value,
    pub last_parsed: Option<DateTime<Utc>>,
    pub latest_dag_version: Option<DagVersionResponse>,
    pub doc_md: Option<String>,
}

impl DagDetailsResponse {
    /// From the DAG response and the definition.
    pub fn new(dag: DagResponse, def: &Dag, latest: Option<DagVersionResponse>) -> Self {
        DagDetailsResponse {
            catchup: def.catchup,
            concurrency: dag.max_active_tasks,
            render_template_as_native_obj: false,
            dag_run_timeout: def.dagrun_timeout.map(|d| d.to_iso8601()),
            start_date: def.start_date,
            end_date: def.end_date,
            timezone: Some(def.timezone.to_string()),
            is_paused_upon_creation: Some(def.paused),
            params: Value::Object(def.params.clone()),
            last_parsed: dag.last_parsed_time,
            latest_dag_version: latest,
            doc_md: def.description.clone(),
            dag,
        }
    }
}

/// A task of a DAG (Airflow's `TaskResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    /// weir's task kind: shell, extract, validate, transform, load or sensor.
    pub operator_name: String,
    pub owner: Option<String>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: i64,
    pub retry_delay: Option<TimeDelta>,
    pub retry_exponential_backoff: f64,
    pub execution_timeout: Option<TimeDelta>,
    pub pool: String,
    /// The queue its task instances go to.
    pub queue: Option<String>,
    pub pool_slots: i64,
    pub priority_weight: i64,
    pub downstream_task_ids: Vec<String>,
    pub upstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
}

impl TaskResponse {
    /// The task at `index` of `dag`.
    pub fn new(dag: &Dag, index: usize) -> Option<Self> {
        let t = dag.task_at(index)?;
        let names = |ix: Vec<usize>| -> Vec<String> {
            ix.into_iter()
                .filter_map(|i| dag.task_at(i).map(|t| t.id.to_string()))
                .collect()
        };
        Some(TaskResponse {
            task_id: t.id.to_string(),
            task_display_name: t.id.to_string(),
            operator_name: t.kind.name().as_str().to_owned(),
            owner: dag.owner.clone(),
            trigger_rule: t.trigger_rule.as_str().to_owned(),
            depends_on_past: false,
            wait_for_downstream: false,
            retries: i64::from(t.retry.retries),
            retry_delay: Some(TimeDelta::from(t.retry.delay)),
            retry_exponential_backoff: match t.retry.backoff {
                weir_core::dag::Backoff::Fixed => 0.0,
                weir_core::dag::Backoff::Exponential => 2.0,
            },
            execution_timeout: t.timeout.map(TimeDelta::from),
            pool: t.pool.clone(),
            queue: Some(t.queue.clone()),
            pool_slots: 1,
            priority_weight: i64::from(t.priority),
            downstream_task_ids: names(dag.graph.downstream(index)),
            upstream_task_ids: names(dag.graph.upstream(index)),
            doc_md: t.description.clone(),
            is_mapped: false,
            extra_links: Vec::new(),
        })
    }
}

/// A duration as Airflow's API writes a `timedelta` (its `TimeDelta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct TimeDelta {
    /// Always `TimeDelta`.
    #[serde(rename = "__type")]
    pub kind: &'static str,
    pub days: i64,
    pub seconds: i64,
    pub microseconds: i64,
}

impl From<weir_core::dag::Duration> for TimeDelta {
    fn from(d: weir_core::dag::Duration) -> Self {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        TimeDelta {
            kind: "TimeDelta",
            days: secs / 86_400,
            seconds: secs % 86_400,
            microseconds: 0,
        }
    }
}

/// Tasks (Airflow's `TaskCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskCollection {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: i64,
}

/// A stored DAG version (Airflow's `DagVersionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagVersionResponse {
    /// A UUID made from the version's key.
    pub id: String,
    pub version_number: i64,
    pub dag_id: String,
    pub dag_display_name: String,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub bundle_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The content hash of the definition.
    pub hash: String,
}

impl From<&VersionRecord> for DagVersionResponse {
    fn from(v: &VersionRecord) -> Self {
        DagVersionResponse {
            id: version_uuid(v.id),
            version_number: v.version_number,
            dag_id: v.dag_id.clone(),
            dag_display_name: v.dag_id.clone(),
            bundle_name: Some("dags-folder".into()),
            bundle_version: None,
            bundle_url: None,
            created_at: v.created_at,
            hash: v.hash.clone(),
        }
    }
}

/// The UUID form of a DAG version key.
pub fn version_uuid(id: i64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", id.max(0))
}

/// Airflow's name for a run type.
pub fn run_type_name(t: RunType) -> &'static str {
    match t {
        RunType::DatasetTriggered => "asset_triggered",
        other => other.as_str(),
    }
}

/// A run (Airflow's `DAGRunResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Seconds from start to end.
    pub duration: Option<f64>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    /// `manual`, `scheduled`, `backfill` or `asset_triggered` (a dataset-triggered run).
    pub run_type: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    /// `cli`, `rest_api`, `timetable`, `backfill` or `asset`.
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    #[schema(value_type = Object)]
    pub conf: Value,
    pub note: Option<String>,
    pub dag_versions: Vec<DagVersionResponse>,
    pub bundle_version: Option<String>,
}

impl DagRunResponse {
    /// From the stored run and the version it is pinned to.
    pub fn new(r: &RunRecord, version: Option<&VersionRecord>) -> Self {
        let actor = r.triggered_by.clone();
        let triggered_by = match r.run_type {
            RunType::Scheduled => "timetable",
            RunType::Backfill => "backfill",
            RunType::DatasetTriggered => "asset",
            RunType::Manual if actor.as_deref().is_some_and(|a| a.starts_with("cli:")) => "cli",
            RunType::Manual => "rest_api",
        };
        DagRunResponse {
            dag_run_id: r.run_id.clone(),
            dag_id: r.dag_id.clone(),
            dag_display_name: r.dag_id.clone(),
            logical_date: r.logical_date,
            queued_at: Some(r.queued_at),
            start_date: r.start_date,
            end_date: r.end_date,
            duration: seconds_between(r.start_date, r.end_date),
            data_interval_start: r.data_interval_start,
            data_interval_end: r.data_interval_end,
            run_after: r.run_after,
            last_scheduling_decision: None,
            run_type: run_type_name(r.run_type).to_owned(),
            state: r.state.as_str().to_owned(),
            triggered_by: Some(triggered_by.to_owned()),
            triggering_user_name: actor,
            conf: serde_json::from_str(&r.conf).unwrap_or(Value::Object(Default::default())),
            note: r.note.clone(),
            dag_versions: version.map(DagVersionResponse::from).into_iter().collect(),
            bundle_version: None,
        }
    }
}

/// Runs (Airflow's `DAGRunCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagRunCollection {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

fn seconds_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some((b - a).num_microseconds().unwrap_or(0) as f64 / 1e6),
        _ => None,
    }
}

/// Airflow's name for a task state (`none` is null).
pub fn task_state_name(s: TaskState) -> Option<String> {
    (s != TaskState::None).then(|| s.as_str().to_owned())
}

/// A task instance (Airflow's `TaskInstanceResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceResponse {
    /// A UUID.
    pub id: String,
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration: Option<f64>,
    /// Airflow's task states; null before the task is scheduled.
    pub state: Option<String>,
    pub try_number: i64,
    pub max_tries: i64,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: i64,
    pub queue: Option<String>,
    pub priority_weight: Option<i64>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub note: Option<String>,
    pub rendered_map_index: Option<String>,
    /// When the next try may start (waiting for a retry or a sensor).
    pub next_try_at: Option<DateTime<Utc>>,
    pub dag_version: Option<DagVersionResponse>,
}

impl TaskInstanceResponse {
    /// From the stored task instance, its run and the run's DAG.
    pub fn new(
        t: &TaskInstanceRecord,
        run: Option<&RunRecord>,
        dag: Option<&Dag>,
        version: Option<&VersionRecord>,
    ) -> Self {
        let kind = dag
            .and_then(|d| d.tasks.iter().find(|(id, _)| id.as_str() == t.task_id))
            .map(|(_, task)| task.kind.name().as_str().to_owned());
        TaskInstanceResponse {
            id: t.id.clone(),
            task_id: t.task_id.clone(),
            dag_id: t.dag_id.clone(),
            dag_run_id: t.run_id.clone(),
            map_index: t.map_index,
            logical_date: run.and_then(|r| r.logical_date),
            run_after: run.map(|r| r.run_after).unwrap_or(t.updated_at),
            start_date: t.start_date,
            end_date: t.end_date,
            duration: seconds_between(t.start_date, t.end_date),
            state: task_state_name(t.state),
            try_number: t.try_number,
            max_tries: t.max_tries,
            task_display_name: t.task_id.clone(),
            dag_display_name: t.dag_id.clone(),
            hostname: t.hostname.clone(),
            unixname: None,
            pool: t.pool.clone(),
            pool_slots: 1,
            queue: Some(t.queue.clone()),
            priority_weight: Some(t.priority),
            operator: kind.clone(),
            operator_name: kind,
            queued_when: t.queued_at,
            scheduled_when: None,
            pid: t.pid,
            executor: t.worker.clone(),
            executor_config: "{}".into(),
            note: None,
            rendered_map_index: rendered_item(t),
            next_try_at: t.next_try_at,
            dag_version: version.map(DagVersionResponse::from),
        }
    }
}

/// A mapped instance's item as people read it: a string as it is, any other
/// value as JSON (Airflow's `rendered_map_index`).
fn rendered_item(t: &TaskInstanceRecord) -> Option<String> {
    Some(match t.item()? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Task instances (Airflow's `TaskInstanceCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceCollection {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: i64,
}

/// One try of a task instance (Airflow's `TaskInstanceHistoryResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TryResponse {
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration: Option<f64>,
    /// `running`, `success`, `failed`, `up_for_retry` or `up_for_reschedule`.
    pub state: Option<String>,
    pub try_number: i64,
    pub max_tries: i64,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: i64,
    pub queue: Option<String>,
    pub priority_weight: Option<i64>,
    pub operator: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub executor_config: String,
    /// The process exit code.
    pub exit_code: Option<i64>,
    /// Why the try failed.
    pub error: Option<String>,
}

impl TryResponse {
    /// From a stored try and its task instance.
    pub fn new(t: &TryRecord, ti: &TaskInstanceRecord) -> Self {
        TryResponse {
            task_id: t.task_id.clone(),
            dag_id: t.dag_id.clone(),
            dag_run_id: t.run_id.clone(),
            map_index: ti.map_index,
            start_date: Some(t.start_date),
            end_date: t.end_date,
            duration: t.duration(),
            state: Some(t.state.as_str().to_owned()),
            try_number: t.try_number,
            max_tries: ti.max_tries,
            task_display_name: t.task_id.clone(),
            dag_display_name: t.dag_id.clone(),
            hostname: t.hostname.clone(),
            unixname: None,
            pool: ti.pool.clone(),
            pool_slots: 1,
            queue: Some(ti.queue.clone()),
            priority_weight: Some(ti.priority),
            operator: None,
            queued_when: None,
            scheduled_when: None,
            pid: t.pid,
            executor: t.worker.clone(),
            executor_config: "{}".into(),
            exit_code: t.exit_code,
            error: t.error.clone(),
        }
    }
}

/// Tries (Airflow's `TaskInstanceHistoryCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TryCollection {
    pub task_instances: Vec<TryResponse>,
    pub total_entries: i64,
}

/// One log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    /// The line.
    pub event: String,
}

/// Part of a try's log (Airflow's `TaskInstancesLogResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogResponse {
    /// The lines read.
    pub content: Vec<LogLine>,
    /// Pass as `token` to read what is written after these lines; null when
    /// the try has ended and everything was read.
    pub continuation_token: Option<String>,
}

/// An import error (Airflow's `ImportErrorResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportErrorResponse {
    pub import_error_id: i64,
    pub timestamp: DateTime<Utc>,
    pub filename: String,
    pub bundle_name: Option<String>,
    /// `line:column: message`.
    pub stack_trace: String,
}

impl From<&ImportErrorRecord> for ImportErrorResponse {
    fn from(e: &ImportErrorRecord) -> Self {
        ImportErrorResponse {
            import_error_id: e.id,
            timestamp: e.timestamp,
            filename: e.filename.clone(),
            bundle_name: Some("dags-folder".into()),
            stack_trace: format!("{}:{}:{}: {}", e.filename, e.line, e.col, e.message),
        }
    }
}

/// Import errors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportErrorCollection {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: i64,
}

/// A variable (Airflow's `VariableResponse`): values of keys that name
/// something secret are `***`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariableResponse {
    pub key: String,
    pub value: Option<String>,
    pub description: Option<String>,
    /// Always false: weir keeps variables as plain text (use connections
    /// or `WEIR_SECRET_*` for secrets).
    pub is_encrypted: bool,
    /// Always null: weir has no teams.
    pub team_name: Option<String>,
}

/// A page of variables (Airflow's `VariableCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariableCollection {
    pub variables: Vec<VariableResponse>,
    pub total_entries: i64,
}

/// A pool (Airflow's `PoolResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub open_slots: i64,
    pub deferred_slots: i64,
}

impl From<&PoolRecord> for PoolResponse {
    fn from(p: &PoolRecord) -> Self {
        let occupied = p.running + p.queued;
        PoolResponse {
            name: p.name.clone(),
            slots: p.slots,
            description: p.description.clone(),
            include_deferred: false,
            occupied_slots: occupied,
            running_slots: p.running,
            queued_slots: p.queued,
            scheduled_slots: p.scheduled,
            open_slots: (p.slots - occupied).max(0),
            deferred_slots: 0,
        }
    }
}

/// Pools.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolCollection {
    pub pools: Vec<PoolResponse>,
    pub total_entries: i64,
}

/// An audit-log entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditResponse {
    pub id: i64,
    pub when: DateTime<Utc>,
    /// Who: a user name, `token:<id>` or `cli:<user>`.
    pub actor: String,
    /// What: `trigger`, `clear`, `pause`, `create_pool`, …
    pub action: String,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

impl From<&AuditRecord> for AuditResponse {
    fn from(a: &AuditRecord) -> Self {
        AuditResponse {
            id: a.id,
            when: a.at,
            actor: a.actor.clone(),
            action: a.action.as_str().to_owned(),
            dag_id: a.dag_id.clone(),
            run_id: a.run_id.clone(),
            task_id: a.task_id.clone(),
            detail: a
                .detail
                .as_deref()
                .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_owned()))),
        }
    }
}

/// Audit-log entries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditCollection {
    pub entries: Vec<AuditResponse>,
    pub total_entries: i64,
}

/// A task's output as an XCom entry (Airflow's `XComResponse`): weir's
/// outputs are under the key `return_value`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XComResponse {
    pub key: String,
    /// When the try that published it ended.
    pub timestamp: DateTime<Utc>,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    /// The task instance's map index (-1: a task's own).
    pub map_index: i64,
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub run_id: String,
}

impl XComResponse {
    /// The entry of a task instance's current output.
    pub fn new(t: &TaskInstanceRecord, run: &RunRecord) -> Self {
        XComResponse {
            key: weir_core::outputs::XCOM_KEY.to_owned(),
            timestamp: t.end_date.unwrap_or(t.updated_at),
            logical_date: run.logical_date,
            run_after: run.run_after,
            map_index: t.map_index,
            task_id: t.task_id.clone(),
            task_display_name: t.task_id.clone(),
            dag_id: t.dag_id.clone(),
            dag_display_name: t.dag_id.clone(),
            run_id: t.run_id.clone(),
        }
    }
}

/// An XCom entry with its value (Airflow's `XComResponseNative`, or
/// `XComResponseString` when asked to stringify).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XComValueResponse {
    #[serde(flatten)]
    pub entry: XComResponse,
    /// The value: its JSON, or its JSON text with `stringify=true`.
    pub value: Value,
}

/// A page of XCom entries (Airflow's `XComCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XComCollection {
    pub xcom_entries: Vec<XComResponse>,
    pub total_entries: i64,
}

/// A stored connection (Airflow's `ConnectionResponse`): the password is
/// answered as `***` when set, and values of secret-looking keys of `extra`
/// likewise.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub password: Option<String>,
    pub extra: Option<String>,
    /// Always null: weir has no teams.
    pub team_name: Option<String>,
}

/// A page of connections (Airflow's `ConnectionCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionCollection {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: i64,
}

/// A DAG scheduled on an asset (Airflow's `DagScheduleAssetReference`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagScheduleAssetReference {
    pub dag_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A task writing or reading an asset (Airflow's `TaskOutletAssetReference`
/// and `TaskInletAssetReference`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskAssetReference {
    pub dag_id: String,
    pub task_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// When an asset last changed (Airflow's `LastAssetEventResponse`): its
/// newest version or recorded update; `id` is the update's, when it was one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastAssetEvent {
    pub id: Option<i64>,
    pub timestamp: Option<DateTime<Utc>>,
}

/// A dataset as an asset (Airflow's `AssetResponse`): `name` and `uri` are
/// the dataset's name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetResponse {
    pub id: i64,
    pub name: String,
    pub uri: String,
    /// The dataset's zone (`raw`, `clean`, `curated`, `quarantine`).
    pub group: String,
    pub extra: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scheduled_dags: Vec<DagScheduleAssetReference>,
    pub producing_tasks: Vec<TaskAssetReference>,
    pub consuming_tasks: Vec<TaskAssetReference>,
    /// Always empty: weir has no asset aliases.
    pub aliases: Vec<Value>,
    /// Always empty: weir has no asset watchers.
    pub watchers: Vec<Value>,
    pub last_asset_event: Option<LastAssetEvent>,
}

/// A page of assets (Airflow's `AssetCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetCollection {
    pub assets: Vec<AssetResponse>,
    pub total_entries: i64,
}

/// An update of a dataset recorded from outside weir (Airflow's
/// `AssetEventResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetEventResponse {
    pub id: i64,
    pub asset_id: i64,
    pub name: String,
    pub uri: String,
    pub group: String,
    pub extra: Option<Value>,
    /// Always null: recorded from outside, not by a task.
    pub source_dag_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_task_id: Option<String>,
    /// Always -1.
    pub source_map_index: i64,
    /// Always null: weir has no partitions.
    pub partition_key: Option<String>,
    /// Runs are created by the scheduler as the update completes their
    /// inputs; they are not listed here.
    pub created_dagruns: Vec<Value>,
    pub timestamp: DateTime<Utc>,
}

/// A page of asset events (Airflow's `AssetEventCollectionResponse`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetEventCollection {
    pub asset_events: Vec<AssetEventResponse>,
    pub total_entries: i64,
}

/// A notification a run fired and how its delivery went (weir's own).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationResponse {
    pub id: i64,
    /// `failure`, `retry`, `success` or `deadline_missed`.
    pub event: String,
    /// Which rule fired it: `dag:<i>` or `task:<i>`.
    pub rule: String,
    pub task_id: Option<String>,
    pub try_number: Option<i64>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The notifications of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationCollection {
    pub notifications: Vec<NotificationResponse>,
    pub total_entries: i64,
}
