//! The rows the store reads and writes.

use chrono::{DateTime, Utc};

use super::from_row;
use crate::dag::contract::{CheckResultKind, Severity};
use crate::state::{RunState, RunType, TaskState};

/// One try of a task, named as people name it: DAG, run, task and try number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TryRef {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Try number.
    pub try_number: i64,
}

/// A running try as the store addresses it: its run, task instance and try.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryKey {
    /// The run's key.
    pub run_pk: i64,
    /// The task instance.
    pub ti_id: String,
    /// The try number.
    pub try_number: i64,
}

from_row!(TryKey { run_pk, ti_id as "id", try_number });

/// A try a worker holds: the task instance and the try number its lease is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeldTry {
    /// The task instance.
    pub ti_id: String,
    /// The try number.
    pub try_number: i64,
    /// The claim's lease id.
    pub lease_id: String,
}

impl HeldTry {
    /// The try a claim started.
    pub fn of(claim: &super::Claim) -> Self {
        HeldTry {
            ti_id: claim.ti_id.clone(),
            try_number: claim.try_number,
            lease_id: claim.lease_id.clone(),
        }
    }
}

/// What a folder load says about one DAG.
#[derive(Debug, Clone)]
pub struct DagSync {
    /// DAG id.
    pub dag_id: String,
    /// Its file.
    pub fileloc: String,
    /// Version hash.
    pub hash: String,
    /// The self-contained definition (JSON).
    pub definition: String,
    /// `paused:` in the file (used when the DAG is new).
    pub paused: bool,
    /// The schedule, described.
    pub schedule: String,
    /// The time zone name.
    pub timezone: String,
    /// Description.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `max_active_runs`.
    pub max_active_runs: i64,
    /// `max_active_tasks`.
    pub max_active_tasks: i64,
    /// The files' text (JSON `[{"name", "text"}]`), kept with a new version.
    pub sources: String,
}

/// A DAG as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DagRecord {
    /// DAG id.
    pub dag_id: String,
    /// Its file.
    pub fileloc: String,
    /// Paused DAGs create no runs.
    pub is_paused: bool,
    /// The file is gone.
    pub is_stale: bool,
    /// The newest version.
    pub latest_version_id: i64,
    /// The schedule, described.
    pub schedule: String,
    /// The time zone.
    pub timezone: String,
    /// Description.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Tags as a JSON array.
    pub tags: String,
    /// `max_active_runs`.
    pub max_active_runs: i64,
    /// `max_active_tasks`.
    pub max_active_tasks: i64,
    /// When the file was last read.
    pub last_parsed_at: DateTime<Utc>,
}

from_row!(DagRecord {
    dag_id,
    fileloc,
    is_paused,
    is_stale,
    latest_version_id,
    schedule,
    timezone,
    description,
    owner,
    tags,
    max_active_runs,
    max_active_tasks,
    last_parsed_at
});

impl DagRecord {
    /// The tags as a list.
    pub fn tag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
}

/// An immutable DAG version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// Key.
    pub id: i64,
    /// DAG id.
    pub dag_id: String,
    /// 1, 2, … per DAG.
    pub version_number: i64,
    /// Content hash.
    pub hash: String,
    /// The definition (JSON).
    pub definition: String,
    /// The file it came from.
    pub fileloc: String,
    /// When it was first seen.
    pub created_at: DateTime<Utc>,
    /// The DAG file's and contract files' text as first seen (JSON
    /// `[{"name", "text"}]`); `None` for versions stored before weir kept it.
    pub sources: Option<String>,
}

from_row!(VersionRecord {
    id,
    dag_id,
    version_number,
    hash,
    definition,
    fileloc,
    created_at,
    sources
});

impl VersionRecord {
    /// The files the version was read from (empty when not kept).
    pub fn source_texts(&self) -> Vec<crate::dag::SourceText> {
        self.sources
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// The version the run is pinned to.
    pub version_id: i64,
    /// Why it exists.
    pub run_type: RunType,
    /// The logical date.
    pub logical_date: Option<DateTime<Utc>>,
    /// Data interval start.
    pub data_interval_start: Option<DateTime<Utc>>,
    /// Data interval end.
    pub data_interval_end: Option<DateTime<Utc>>,
    /// When it may start.
    pub run_after: DateTime<Utc>,
    /// The trigger's conf (JSON object).
    pub conf: String,
    /// A note.
    pub note: Option<String>,
    /// Who created it.
    pub triggered_by: Option<String>,
    /// The dataset versions that triggered it (JSON), for dataset-triggered runs.
    pub trigger_versions: Option<String>,
    /// When it was created.
    pub queued_at: DateTime<Utc>,
    /// Its task instances.
    pub tasks: Vec<NewTaskInstance>,
}

/// A task instance to create with a run.
#[derive(Debug, Clone)]
pub struct NewTaskInstance {
    /// Task id.
    pub task_id: String,
    /// Retries (Airflow's `max_tries`).
    pub max_tries: i64,
    /// Pool.
    pub pool: String,
    /// Queue.
    pub queue: String,
    /// Priority.
    pub priority: i64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Key.
    pub id: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// The version the run is pinned to.
    pub version_id: i64,
    /// Why it exists.
    pub run_type: RunType,
    /// Its state.
    pub state: RunState,
    /// Logical date.
    pub logical_date: Option<DateTime<Utc>>,
    /// Data interval start.
    pub data_interval_start: Option<DateTime<Utc>>,
    /// Data interval end.
    pub data_interval_end: Option<DateTime<Utc>>,
    /// When it may start.
    pub run_after: DateTime<Utc>,
    /// Conf (JSON object).
    pub conf: String,
    /// Note.
    pub note: Option<String>,
    /// Who created it.
    pub triggered_by: Option<String>,
    /// The dataset versions that triggered it (JSON `{"zone.name": version id}`).
    pub trigger_versions: Option<String>,
    /// Created.
    pub queued_at: DateTime<Utc>,
    /// Started.
    pub start_date: Option<DateTime<Utc>>,
    /// Ended.
    pub end_date: Option<DateTime<Utc>>,
    /// Task instances not finished yet (kept by the store with every change).
    pub unfinished: i64,
    /// Task instances that ended failed or upstream_failed.
    pub failed: i64,
}

from_row!(direct RunRecord { id, dag_id, run_id, version_id, run_type via String, state via String, logical_date, data_interval_start, data_interval_end, run_after, conf, note, triggered_by, trigger_versions, queued_at, start_date, end_date, unfinished, failed });

/// A task instance as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInstanceRecord {
    /// Key (a UUID).
    pub id: String,
    /// Its run.
    pub run_pk: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// State.
    pub state: TaskState,
    /// The current (or last) try; 0 before the first.
    pub try_number: i64,
    /// Tries allowed beyond the first, counted from the start (Airflow's meaning).
    pub max_tries: i64,
    /// Pool.
    pub pool: String,
    /// Priority.
    pub priority: i64,
    /// When it was queued.
    pub queued_at: Option<DateTime<Utc>>,
    /// When the current try started.
    pub start_date: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_date: Option<DateTime<Utc>>,
    /// When the next try may start.
    pub next_try_at: Option<DateTime<Utc>>,
    /// The host of the current try.
    pub hostname: Option<String>,
    /// The worker of the current try.
    pub worker: Option<String>,
    /// The process of the current try.
    pub pid: Option<i64>,
    /// The lease of the current try.
    pub lease_until: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The queue it waits in.
    pub queue: String,
    /// The lease id of the current try's claim.
    pub lease_id: Option<String>,
    /// Which item of a mapped task it runs (-1: the task's own instance).
    pub map_index: i64,
    /// The item it runs (JSON), for a mapped instance.
    pub map_item: Option<String>,
    /// How many instances the task's expansion made (its own instance only).
    pub map_count: Option<i64>,
}

from_row!(TaskInstanceRecord { id, run_pk, dag_id, run_id, task_id, state via String, try_number, max_tries, pool, priority, queued_at, start_date, end_date, next_try_at, hostname, worker, pid, lease_until, updated_at, queue, lease_id, map_index, map_item, map_count });

/// Each task's state in a run's task instances: a task's own, or for an
/// expanded task the summary of its mapped instances (see
/// [`TaskState::summary`]).
pub fn task_states(tis: &[TaskInstanceRecord]) -> std::collections::HashMap<String, TaskState> {
    let mut own = std::collections::HashMap::new();
    let mut mapped: std::collections::HashMap<String, Vec<TaskState>> = Default::default();
    for t in tis {
        if t.map_index < 0 {
            own.insert(t.task_id.clone(), t.state);
        } else {
            mapped.entry(t.task_id.clone()).or_default().push(t.state);
        }
    }
    for t in tis.iter().filter(|t| t.is_expanded()) {
        let states = mapped.remove(&t.task_id).unwrap_or_default();
        if let Some(s) = TaskState::summary(states) {
            own.insert(t.task_id.clone(), s);
        }
    }
    own
}

impl TaskInstanceRecord {
    /// Seconds between its current try's start and its end.
    pub fn duration(&self) -> Option<f64> {
        match (self.start_date, self.end_date) {
            (Some(s), Some(e)) => Some((e - s).num_microseconds().unwrap_or(0) as f64 / 1e6),
            _ => None,
        }
    }

    /// A mapped instance's item, as JSON.
    pub fn item(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.map_item.as_deref()?).ok()
    }

    /// Whether this is the task's own instance of a task that expanded into
    /// mapped instances: their states, not its own, are the task's outcome.
    pub fn is_expanded(&self) -> bool {
        self.map_index < 0 && self.map_count.is_some_and(|n| n > 0)
    }
}

/// The part of a task instance the scheduler plans with.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStateRecord {
    /// Key.
    pub id: String,
    /// Task id.
    pub task_id: String,
    /// State.
    pub state: TaskState,
    /// The current (or last) try.
    pub try_number: i64,
    /// Tries allowed beyond the first.
    pub max_tries: i64,
    /// When the next try may start.
    pub next_try_at: Option<DateTime<Utc>>,
    /// Which item of a mapped task it runs (-1: the task's own instance).
    pub map_index: i64,
    /// How many instances the task's expansion made (its own instance only).
    pub map_count: Option<i64>,
}

from_row!(direct TaskStateRecord { id, task_id, state via String, try_number, max_tries, next_try_at, map_index, map_count });

/// One try of a task instance (history is kept forever).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TryRecord {
    /// The task instance.
    pub ti_id: String,
    /// The try.
    pub try_number: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// How it ended (or `running`).
    pub state: TaskState,
    /// Started.
    pub start_date: DateTime<Utc>,
    /// Ended.
    pub end_date: Option<DateTime<Utc>>,
    /// Host.
    pub hostname: Option<String>,
    /// Worker.
    pub worker: Option<String>,
    /// Process id.
    pub pid: Option<i64>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Error.
    pub error: Option<String>,
    /// Log file, relative to the logs folder.
    pub log_path: String,
    /// The JSON value the try published (its output), if any.
    pub output: Option<String>,
}

from_row!(TryRecord { ti_id, try_number, dag_id, run_id, task_id, state via String, start_date, end_date, hostname, worker, pid, exit_code, error, log_path, output });

impl TryRecord {
    /// Seconds between start and end.
    pub fn duration(&self) -> Option<f64> {
        self.end_date
            .map(|e| (e - self.start_date).num_microseconds().unwrap_or(0) as f64 / 1e6)
    }
}

/// An import error as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportErrorRecord {
    /// Key (0 before it is stored).
    pub id: i64,
    /// The file.
    pub filename: String,
    /// Line.
    pub line: i64,
    /// Column.
    pub col: i64,
    /// Message.
    pub message: String,
    /// When it was found.
    pub timestamp: DateTime<Utc>,
}

from_row!(ImportErrorRecord {
    id,
    filename,
    line,
    col,
    message,
    timestamp
});

/// A variable: a key and its text, which templates read (`var.value.<key>`,
/// or parsed as JSON with `var.json.<key>`).
#[derive(Debug, Clone, PartialEq)]
pub struct VariableRecord {
    /// Key.
    pub key: String,
    /// Value (JSON values as their JSON text).
    pub value: String,
    /// What it is for.
    pub description: Option<String>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

from_row!(VariableRecord {
    key,
    value,
    description,
    updated_at
});

/// A stored connection. `password` and `extra` are sealed (encrypted) text
/// as the store keeps them; [`crate::scheduler::connections`] opens them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    /// Id tasks name it by.
    pub conn_id: String,
    /// Kind: `postgres`, `sqlite`, … (the URL scheme).
    pub conn_type: String,
    /// What it is for.
    pub description: Option<String>,
    /// Host (for `sqlite`, the database file).
    pub host: Option<String>,
    /// Database (Airflow's `schema`).
    pub schema_name: Option<String>,
    /// User.
    pub login: Option<String>,
    /// Password, sealed.
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra settings (a JSON object as text), sealed.
    pub extra: Option<String>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

from_row!(ConnectionRecord {
    conn_id,
    conn_type,
    description,
    host,
    schema_name,
    login,
    password,
    port,
    extra,
    updated_at
});

/// A notification in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    /// Its id.
    pub id: i64,
    /// The run it is about.
    pub run_pk: i64,
    /// The task (`None`: the run).
    pub task_id: Option<String>,
    /// The try.
    pub try_number: Option<i64>,
    /// What happened.
    pub event: crate::dag::NotifyEvent,
    /// Which rule: `dag:<i>` or `task:<i>`.
    pub rule: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it is due (again).
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was fired.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
    /// The task's mapped instance it is about (-1: the task's own, or the run).
    pub map_index: i64,
}

from_row!(NotificationRecord {
    id,
    run_pk,
    task_id,
    try_number,
    event via String,
    rule,
    state,
    attempts,
    next_attempt_at,
    last_error,
    created_at,
    sent_at,
    map_index
});

/// A dataset as an asset: its lasting id.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRecord {
    /// The id.
    pub id: i64,
    /// The dataset's name (`clean.orders`).
    pub name: String,
    /// When a DAG first named it.
    pub created_at: DateTime<Utc>,
}

from_row!(AssetRecord {
    id,
    name,
    created_at
});

/// An update of a dataset recorded from outside weir.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetEventRecord {
    /// The event's id.
    pub id: i64,
    /// The asset.
    pub asset_id: i64,
    /// The dataset's name.
    pub name: String,
    /// What the caller said about it (a JSON object as text).
    pub extra: Option<String>,
    /// Who recorded it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

from_row!(AssetEventRecord {
    id,
    asset_id,
    name,
    extra,
    actor,
    created_at
});

/// How [`crate::store::VariableStore::save_variable`] treats a key that
/// exists (or does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Only a new key: [`crate::store::Error::Conflict`] if it exists.
    Create,
    /// Only an existing key: [`crate::store::Error::NotFound`] if it does not.
    Update,
    /// Either.
    Upsert,
}

impl SaveMode {
    /// What a save of `what` (e.g. ``variable `bucket` ``) that changed
    /// `rows` rows means: a create that found the key, or an update that
    /// did not, is an error.
    pub fn outcome(self, rows: u64, what: &str) -> crate::store::Result<()> {
        match (self, rows) {
            (SaveMode::Create, 0) => Err(crate::store::Error::Conflict(format!(
                "{what} already exists"
            ))),
            (SaveMode::Update, 0) => Err(crate::store::Error::NotFound(what.to_owned())),
            _ => Ok(()),
        }
    }
}

/// A pool with its occupancy.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRecord {
    /// Name.
    pub name: String,
    /// Slots.
    pub slots: i64,
    /// Description.
    pub description: Option<String>,
    /// Task instances running in it.
    pub running: i64,
    /// Task instances queued in it.
    pub queued: i64,
    /// Task instances scheduled in it.
    pub scheduled: i64,
}

from_row!(PoolRecord {
    name,
    slots,
    description,
    running,
    queued,
    scheduled
});

/// An audit entry to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// DAG.
    pub dag_id: Option<String>,
    /// Run.
    pub run_id: Option<String>,
    /// Task.
    pub task_id: Option<String>,
    /// Details (JSON).
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry about no DAG in particular (users, tokens, pools).
    pub fn about(
        actor: &str,
        action: AuditAction,
        detail: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Self {
        AuditEntry {
            at,
            actor: actor.to_owned(),
            action,
            dag_id: None,
            run_id: None,
            task_id: None,
            detail: Some(detail.to_string()),
        }
    }
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A run was triggered.
    Trigger,
    /// A backfill was started.
    Backfill,
    /// Task instances were cleared.
    Clear,
    /// A task instance was marked success by hand.
    MarkSuccess,
    /// A task instance was marked failed by hand.
    MarkFailed,
    /// A run was marked success by hand.
    MarkRunSuccess,
    /// A run was marked failed by hand.
    MarkRunFailed,
    /// The scheduler failed a run that ran past `dagrun_timeout`.
    DagrunTimeout,
    /// A run's note was set.
    Note,
    /// A DAG was paused.
    Pause,
    /// A DAG was unpaused.
    Unpause,
    /// A pool was created.
    CreatePool,
    /// A pool was changed.
    UpdatePool,
    /// A pool was deleted.
    DeletePool,
    /// A backfill was paused.
    PauseBackfill,
    /// A backfill was unpaused.
    UnpauseBackfill,
    /// A backfill was cancelled.
    CancelBackfill,
    /// An API token was created.
    CreateToken,
    /// An API token was revoked.
    RevokeToken,
    /// A user was created.
    CreateUser,
    /// A user was deleted.
    DeleteUser,
    /// Retention deleted a dataset version's files.
    DeleteDatasetVersion,
    /// Rows were erased from a kept dataset version (a deletion request).
    EraseRows,
    /// A worker was asked to drain.
    DrainWorker,
    /// A variable was created or changed (its value is not recorded).
    SetVariable,
    /// A variable was deleted.
    DeleteVariable,
    /// A connection was created or changed (its secret parts are not recorded).
    SetConnection,
    /// A connection was deleted.
    DeleteConnection,
    /// An update of a dataset was recorded from outside weir.
    AssetEvent,
}

crate::named_enum!(AuditAction, "audit action", {
    Trigger => "trigger",
    Backfill => "backfill",
    Clear => "clear",
    MarkSuccess => "mark_success",
    MarkFailed => "mark_failed",
    MarkRunSuccess => "mark_run_success",
    MarkRunFailed => "mark_run_failed",
    DagrunTimeout => "dagrun_timeout",
    Note => "note",
    Pause => "pause",
    Unpause => "unpause",
    CreatePool => "create_pool",
    UpdatePool => "update_pool",
    DeletePool => "delete_pool",
    PauseBackfill => "pause_backfill",
    UnpauseBackfill => "unpause_backfill",
    CancelBackfill => "cancel_backfill",
    CreateToken => "create_token",
    RevokeToken => "revoke_token",
    CreateUser => "create_user",
    DeleteUser => "delete_user",
    DeleteDatasetVersion => "delete_dataset_version",
    EraseRows => "erase_rows",
    DrainWorker => "drain_worker",
    SetVariable => "set_variable",
    DeleteVariable => "delete_variable",
    SetConnection => "set_connection",
    DeleteConnection => "delete_connection",
    AssetEvent => "asset_event",
});

/// A kept version rewritten without erased rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedVersion {
    /// Where its files are now.
    pub path: String,
    /// Rows left.
    pub rows: i64,
    /// Bytes on disk now.
    pub bytes: i64,
    /// Rows erased.
    pub erased: i64,
    /// The condition the erased rows met.
    pub condition: String,
    /// The Delta commit that holds the rewritten files, when the version's
    /// files were in the table's current snapshot; otherwise its Delta
    /// history no longer reads (the old files are gone).
    pub delta_version: Option<i64>,
}

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Key.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// DAG.
    pub dag_id: Option<String>,
    /// Run.
    pub run_id: Option<String>,
    /// Task.
    pub task_id: Option<String>,
    /// Details (JSON).
    pub detail: Option<String>,
}

from_row!(AuditRecord { id, at, actor, action via String, dag_id, run_id, task_id, detail });

/// One version of a dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetVersionRecord {
    /// Key (grows with every write of any dataset).
    pub id: i64,
    /// `zone.name`.
    pub dataset: String,
    /// 1, 2, … per dataset.
    pub version: i64,
    /// The producing DAG.
    pub dag_id: Option<String>,
    /// The producing run.
    pub run_id: Option<String>,
    /// The producing task.
    pub task_id: Option<String>,
    /// The producing try.
    pub try_number: Option<i64>,
    /// Rows written.
    pub rows: Option<i64>,
    /// Where the version is stored.
    pub path: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Its Arrow schema, as JSON `[{"name", "type", "nullable"}]`.
    pub schema: Option<String>,
    /// Bytes on disk.
    pub bytes: Option<i64>,
    /// The dataset versions it was made from (JSON array of keys): lineage.
    pub inputs: String,
    /// When retention deleted its files.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The Delta table version whose snapshot holds its files; `None` when
    /// it was written before the table had a Delta log, or an erasure
    /// rewrote it out of the table's history.
    pub delta_version: Option<i64>,
}

from_row!(DatasetVersionRecord {
    id,
    dataset,
    version,
    dag_id,
    run_id,
    task_id,
    try_number,
    rows,
    path,
    created_at,
    schema,
    bytes,
    inputs,
    deleted_at,
    delta_version
});

impl DatasetVersionRecord {
    /// The keys of the versions it was made from.
    pub fn input_ids(&self) -> Vec<i64> {
        serde_json::from_str(&self.inputs).unwrap_or_default()
    }

    /// Its columns, from the recorded schema (none when none was recorded).
    pub fn columns(&self) -> Vec<SchemaColumn> {
        let fields: Vec<serde_json::Value> = self
            .schema
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        fields
            .iter()
            .map(|f| SchemaColumn {
                name: f["name"].as_str().unwrap_or_default().to_owned(),
                data_type: f["type"]
                    .as_str()
                    .map_or_else(|| f["type"].to_string(), str::to_owned),
                nullable: f["nullable"].as_bool().unwrap_or(true),
            })
            .collect()
    }
}

/// One column of a dataset version's recorded schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaColumn {
    /// Its name.
    pub name: String,
    /// Its Arrow type, as Arrow writes it (`Int64`, `Utf8`).
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// A dataset version to record.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewDatasetVersion {
    /// `zone.name`.
    pub dataset: String,
    /// The try that produced it, if a task did.
    pub producer: Option<TryRef>,
    /// Rows written.
    pub rows: Option<i64>,
    /// Where the version is stored.
    pub path: Option<String>,
    /// Its schema (JSON).
    pub schema: Option<String>,
    /// Bytes on disk.
    pub bytes: Option<i64>,
    /// The versions it was made from.
    pub inputs: Vec<i64>,
    /// The Delta commit that published it, if its table has a Delta log.
    #[serde(default)]
    pub delta_version: Option<i64>,
}

/// What one validate try found, to record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewQuality {
    /// DAG, run, task and try.
    pub producer: TryRef,
    /// The dataset validated (`zone.name`).
    pub dataset: String,
    /// The version read.
    pub input_version: Option<i64>,
    /// Rows read.
    pub rows_in: i64,
    /// Rows that passed every row-level check.
    pub rows_clean: i64,
    /// Rows quarantined.
    pub rows_quarantined: i64,
    /// Every check's result, in contract order.
    pub checks: Vec<CheckResultRecord>,
}

/// A validate try's outcome, recorded in one transaction (write-audit-publish):
/// its quarantine version, its clean version when the checks let it publish,
/// and its quality results naming both. Either all of it becomes visible or
/// none of it does.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewValidation {
    /// What the try found.
    pub quality: NewQuality,
    /// The quarantined rows' version.
    pub quarantine: Option<NewDatasetVersion>,
    /// The clean version; `None` holds it back (not published).
    pub clean: Option<NewDatasetVersion>,
}

/// What [`NewValidation`] recorded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecordedValidation {
    /// The quality record's key.
    pub quality_id: i64,
    /// The quarantine version.
    pub quarantine: Option<DatasetVersionRecord>,
    /// The published clean version.
    pub clean: Option<DatasetVersionRecord>,
}

/// The result of one check of a validate try.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResultRecord {
    /// The check's name (`required`, `min`, a rule's name, …).
    pub name: String,
    /// The check's kind (`type`, `required`, `rule`, `row_count`, …).
    pub kind: CheckResultKind,
    /// The column it concerns, if one.
    pub column_name: Option<String>,
    /// Whether it passed.
    pub passed: bool,
    /// Rows that failed it (row-level checks), or 0/1.
    pub failed: i64,
    /// What was measured (dataset-level checks).
    pub observed: Option<String>,
    /// The limit it was held to.
    pub threshold: Option<String>,
    /// `error` or `warn`.
    pub severity: Severity,
}

from_row!(CheckResultRecord { name, kind via String, column_name, passed, failed, observed, threshold, severity via String });

/// A validate try's outcome as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRecord {
    /// Key.
    pub id: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Try.
    pub try_number: i64,
    /// Dataset validated.
    pub dataset: String,
    /// Version read.
    pub input_version: Option<i64>,
    /// Rows read.
    pub rows_in: i64,
    /// Clean rows.
    pub rows_clean: i64,
    /// Quarantined rows.
    pub rows_quarantined: i64,
    /// Clean version written.
    pub clean_version: Option<i64>,
    /// Quarantine version written.
    pub quarantine_version: Option<i64>,
    /// Whether the clean version was published.
    pub published: bool,
    /// When.
    pub created_at: DateTime<Utc>,
}

from_row!(QualityRecord {
    id,
    dag_id,
    run_id,
    task_id,
    try_number,
    dataset,
    input_version,
    rows_in,
    rows_clean,
    rows_quarantined,
    clean_version,
    quarantine_version,
    published,
    created_at
});

/// Which runs a grid shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GridRuns {
    /// A page of a DAG's runs, newest first before the page is cut.
    Page {
        /// The DAG.
        dag_id: String,
        /// Runs per page.
        limit: i64,
        /// Newer runs skipped.
        offset: i64,
    },
    /// These runs (by key), to follow them while they are active.
    Keys(Vec<i64>),
}

/// One cell of the grid: a task instance's state in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCell {
    /// The run's key.
    pub run_pk: i64,
    /// The task.
    pub task_id: String,
    /// Its state.
    pub state: TaskState,
    /// Its try number (a mapped task's: its instances' highest).
    pub try_number: i64,
    /// How many mapped instances the cell sums up (0: a task's own instance).
    pub mapped: i64,
}

/// Runs and their task instances' states, read in one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GridPage {
    /// The runs, oldest first.
    pub runs: Vec<RunRecord>,
    /// Every task instance of those runs.
    pub cells: Vec<GridCell>,
    /// How many runs the DAG has (for a page; the number of runs for keys).
    pub total_runs: i64,
}

/// A validate try's outcome with how many of its checks passed and failed.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityPoint {
    /// The outcome.
    pub quality: QualityRecord,
    /// Checks that passed.
    pub checks_passed: i64,
    /// Checks that failed (errors and warnings).
    pub checks_failed: i64,
}
