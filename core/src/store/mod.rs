//! The state store: every run, task instance, try and DAG version, in SQLite
//! (embedded default) or PostgreSQL. Only this module speaks SQL.
//!
//! The store applies state changes; it does not decide them. Operations that
//! change a run take a [`Planner`] that the store calls inside the
//! transaction with a fresh [`RunSnapshot`]; every change the planner returns
//! is written guarded by the state and try number it expects, so a change that
//! matches no row fails the whole transaction with [`Error::Conflict`].

mod access_sql;
mod advance_sql;
mod apply;
mod assets_sql;
mod catalog_sql;
mod connections_sql;
mod dags_sql;
mod dispatch_sql;
pub(crate) mod from_row;
mod logs_sql;
mod migrations;
mod notifications_sql;
mod postgres;
mod records;
mod runs_sql;
mod sql;
mod sqlite;
mod sqlite_direct;
mod statements;
mod variables_sql;
mod workers_sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub(crate) use from_row::from_row;
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::SqliteStore;

use crate::access::{
    BackfillChange, BackfillFilter, BackfillRecord, NewBackfill, TokenRecord, UserRecord,
};
use crate::state::{RunState, RunType, TaskState};
use crate::workers::{NewWorker, WorkerRecord, WorkerState};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed or cannot be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite failed on the store's own writer connection (its hot path).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Applying migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A guarded change matched no row: someone else changed the state first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The change is not allowed from the current state.
    #[error("illegal transition: {0}")]
    IllegalTransition(String),
    /// The planner refused (a rule of the scheduler, not of the database).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A plan the store cannot apply (a fault in weir, not in the input).
    #[error("{0}")]
    Plan(String),
    /// The database URL names no supported backend.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A stored value cannot be read back.
    #[error("corrupt value in the database: {0}")]
    Corrupt(String),
    /// A remote worker reached the store through an API server, which failed
    /// or refused.
    #[error("weir's API server: {0}")]
    Remote(String),
}

/// The result type of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decides the changes to a run from its current state, inside the store's
/// transaction. Returning an error rolls the transaction back.
pub type Planner<'a> = &'a (dyn Fn(&RunSnapshot) -> Result<Planned, Refusal> + Send + Sync);

/// Why the planner refuses an action: a rule of the scheduler, not of the
/// database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A report for a try that is not the running one.
    #[error("task `{task_id}` try {try_number} is not running (it is {state}, try {current_try})")]
    NotRunning {
        /// The task.
        task_id: String,
        /// The try reported.
        try_number: i64,
        /// The task instance's state now.
        state: TaskState,
        /// Its try number now.
        current_try: i64,
    },
    /// The DAG version has no such task.
    #[error("no task `{0}` in the DAG")]
    NoSuchTask(String),
    /// The run has no task instance of that name.
    #[error("the run has no task instance `{0}`")]
    NoTaskInstance(String),
    /// Tasks are marked success or failed, nothing else.
    #[error("a task can be marked success or failed, not {0}")]
    BadMark(TaskState),
    /// Marking a task with the state it has.
    #[error("task `{task_id}` is already {state}")]
    AlreadyIn {
        /// The task.
        task_id: String,
        /// Its state.
        state: TaskState,
    },
    /// Runs are set to success or failed, nothing else.
    #[error("a run can be set to success or failed, not {0}")]
    BadRunState(RunState),
}

/// What a planner answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Apply this plan.
    Done(Plan),
    /// The snapshot's scope is too narrow: read these tasks too and ask again.
    NeedTasks(Vec<String>),
}

/// A run and its task instances (all, or those a [`Scope`] names), as the
/// transaction sees them.
#[derive(Debug, Clone)]
pub struct RunSnapshot {
    /// The run.
    pub run: RunRecord,
    /// Its task instances in scope.
    pub tasks: Vec<TaskStateRecord>,
    /// How many task instances of the whole run are not finished.
    pub unfinished: i64,
    /// How many task instances of the whole run ended failed or upstream_failed.
    pub failed: i64,
    /// For each wide fan-in the scope names, how many of its upstream tasks
    /// outside `tasks` are in each state.
    pub fan_ins: Vec<FanInCounts>,
    /// For a mapped instance's report, how many of its siblings (the task's
    /// other mapped instances, removed ones left out) are in each state.
    pub siblings: Option<SiblingCounts>,
}

impl RunSnapshot {
    /// A run as read with its task instances in scope; the whole run's
    /// counts come from the run's own counters.
    pub fn of(
        run: RunRecord,
        tasks: Vec<TaskStateRecord>,
        fan_ins: Vec<FanInCounts>,
        siblings: Option<SiblingCounts>,
    ) -> Self {
        RunSnapshot {
            unfinished: run.unfinished,
            failed: run.failed,
            run,
            tasks,
            fan_ins,
            siblings,
        }
    }
}

/// A mapped task's instances other than the one read as a row, counted by
/// state: downstream trigger rules need no more, and a wide map would
/// otherwise read every sibling each time one of them ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiblingCounts {
    /// The task.
    pub task_id: String,
    /// Its instances per state (states with none are left out).
    pub counts: Vec<(TaskState, i64)>,
}

/// The states of a task's upstream tasks outside a snapshot's rows, counted
/// rather than read one by one: a trigger rule needs only how many are in
/// each state, and a task waiting on hundreds of others would otherwise read
/// them all each time one of them ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanInCounts {
    /// The downstream task.
    pub task_id: String,
    /// Upstream tasks per state (states with none are left out).
    pub counts: Vec<(TaskState, i64)>,
}

/// Which task instances a snapshot reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every task instance of the run.
    All,
    /// Only these tasks (the planner must not need others), plus the
    /// upstream states of each fan-in as counts.
    Tasks {
        /// The tasks read as rows.
        tasks: Vec<String>,
        /// Tasks whose upstream tasks are counted by state, not read.
        fan_ins: Vec<FanIn>,
        /// A mapped task of which only its own instance and this map index
        /// are read as rows, its other instances counted by state.
        siblings: Option<(String, i64)>,
    },
}

/// A task whose upstream tasks a snapshot counts by state (see [`FanInCounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanIn {
    /// The downstream task (read as a row itself).
    pub task_id: String,
    /// Its upstream tasks.
    pub upstream: Vec<String>,
}

/// Changes to one run, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Task instance moves, each guarded by its expected state and try number.
    pub tasks: Vec<TaskChange>,
    /// The run's move, guarded by its expected state.
    pub run: Option<(RunState, RunState)>,
    /// Notifications the moves fire, recorded in the same transaction.
    pub notices: Vec<Notice>,
    /// A mapped task's expansion, when the plan records one.
    pub expansion: Option<Expansion>,
}

/// A mapped task expanded: how many instances it has now and which of them
/// are new rows (made in `none`, before the plan's moves are applied). The
/// items are the expanding try's output, a JSON list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expansion {
    /// The task.
    pub task_id: String,
    /// How many items, so how many mapped instances.
    pub count: i64,
    /// The map indexes to insert (the others exist from an earlier expansion).
    pub created: Vec<i64>,
    /// Tries allowed to each new instance (the task's retries).
    pub max_tries: i64,
}

/// A notification a state change fires: which rule, about what.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The task it is about (`None`: the run).
    pub task_id: Option<String>,
    /// The try it is about.
    pub try_number: Option<i64>,
    /// The task's mapped instance it is about (-1: the task's own, or the run).
    pub map_index: i64,
    /// What happened.
    pub event: crate::dag::NotifyEvent,
    /// The rule: `dag:<i>` (the DAG's i-th `notify`) or `task:<i>` (the
    /// task's).
    pub rule: String,
}

impl Notice {
    /// What makes it one of a kind: the same notice is recorded once.
    pub fn key(&self, run_pk: i64) -> String {
        let mapped = if self.map_index < 0 {
            String::new()
        } else {
            format!("[{}]", self.map_index)
        };
        format!(
            "{run_pk}/{}/{}/{}{mapped}/{}",
            self.rule,
            self.event.as_str(),
            self.task_id.as_deref().unwrap_or(""),
            self.try_number.unwrap_or(0)
        )
    }
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.run.is_none()
    }
}

/// What [`AdvanceStore::advance_run`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advanced {
    /// The plan it applied.
    pub plan: Plan,
    /// How many task instances it queued in the same transaction (a finished
    /// try frees a slot; scheduled tasks take it); in a batch, every item
    /// has the count of the batch's one transaction.
    pub queued: usize,
    /// Task instances claimed in the same transaction, when asked to.
    pub claims: Vec<Claim>,
}

/// A planner an [`Advance`] owns, so the batch can be handed to another
/// thread (SQLite's writer).
pub type SharedPlanner = Arc<dyn Fn(&RunSnapshot) -> Result<Planned, Refusal> + Send + Sync>;

/// One item of [`AdvanceStore::advance_runs`].
pub struct Advance {
    /// The run.
    pub run_pk: i64,
    /// Which task instances the planner needs.
    pub scope: Scope,
    /// The try that ended, closed in the same transaction.
    pub end: Option<TryEnd>,
    /// Decides the changes.
    pub planner: SharedPlanner,
    /// The slot of the try that ended, to claim its next task.
    pub claim: Option<ClaimRequest>,
}

impl std::fmt::Debug for Advance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advance")
            .field("run_pk", &self.run_pk)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// One guarded task-instance move.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskChange {
    /// The task.
    pub task_id: String,
    /// Which of its instances (-1: the task's own; a mapped instance's index).
    pub map_index: i64,
    /// The state it must be in.
    pub from: TaskState,
    /// The try number it must have.
    pub try_number: i64,
    /// The new state.
    pub to: TaskState,
    /// A new `max_tries` (clearing grants the task's retries again).
    pub max_tries: Option<i64>,
    /// When the next try may start (`up_for_retry`, `up_for_reschedule`).
    pub next_try_at: Option<DateTime<Utc>>,
}

/// How a try ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TryEnd {
    /// The task instance.
    pub ti_id: String,
    /// The run it belongs to.
    pub run_pk: i64,
    /// The try that ended.
    pub try_number: i64,
    /// The process exit code, when there was a process.
    pub exit_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The process id, when there was a process.
    pub pid: Option<i64>,
    /// The JSON text the try published, if any.
    pub output: Option<String>,
    /// When it ended.
    pub at: DateTime<Utc>,
}

/// A task instance claimed by a worker.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Claim {
    /// The task instance.
    pub ti_id: String,
    /// Its run.
    pub run_pk: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Which of its instances (-1: the task's own; a mapped instance's index).
    #[serde(default = "unmapped")]
    pub map_index: i64,
    /// The item a mapped instance runs (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_item: Option<String>,
    /// The try this claim starts.
    pub try_number: i64,
    /// The DAG version the run is pinned to.
    pub version_id: i64,
    /// Where the try's log goes (relative to the logs folder).
    pub log_path: String,
    /// When the task instance was queued.
    pub queued_at: Option<DateTime<Utc>>,
    /// When this try started.
    pub started_at: DateTime<Utc>,
    /// The queue it was claimed from.
    pub queue: String,
    /// The claim's lease id: every report, heartbeat and log piece of the
    /// try names it.
    pub lease_id: String,
    /// The lease ends here unless renewed.
    pub lease_until: DateTime<Utc>,
}

/// The map index of a task's own instance (serde's default for claims that name none).
fn unmapped() -> i64 {
    -1
}

impl Claim {
    /// The claim of a task instance's current try, as recorded.
    pub fn of_current_try(ti: &TaskInstanceRecord, run: &RunRecord) -> Claim {
        Claim {
            ti_id: ti.id.clone(),
            run_pk: ti.run_pk,
            dag_id: ti.dag_id.clone(),
            run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            map_index: ti.map_index,
            map_item: ti.map_item.clone(),
            try_number: ti.try_number,
            version_id: run.version_id,
            log_path: log_path(
                &ti.dag_id,
                &ti.run_id,
                &ti.task_id,
                ti.map_index,
                ti.try_number,
            ),
            queued_at: ti.queued_at,
            started_at: ti.start_date.unwrap_or(run.run_after),
            queue: ti.queue.clone(),
            lease_id: ti.lease_id.clone().unwrap_or_default(),
            lease_until: ti.lease_until.unwrap_or(run.run_after),
        }
    }

    /// The try this claim starts, as people name it.
    pub fn try_ref(&self) -> TryRef {
        TryRef {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: self.task_id.clone(),
            try_number: self.try_number,
        }
    }
}

/// The slots a claim may use: worker name, host and lease.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The worker's name.
    pub worker: String,
    /// The worker's host.
    pub hostname: String,
    /// At most this many task instances.
    pub limit: i64,
    /// Only from these queues (`None`: every queue).
    pub queues: Option<Vec<String>>,
    /// The lease id the claimed tries get.
    pub lease_id: String,
    /// The lease ends here unless renewed.
    pub lease_until: DateTime<Utc>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// One DAG, or every DAG.
    pub dag_id: Option<String>,
    /// Only these DAGs (none: every DAG).
    pub dag_ids: Vec<String>,
    /// Only run ids containing this text, case-insensitively (`%` and `_`
    /// are SQL `LIKE` wildcards).
    pub run_id_pattern: Option<String>,
    /// Only these states.
    pub states: Vec<RunState>,
    /// Only these run types.
    pub run_types: Vec<RunType>,
    /// Time ranges (both ends included) on the run's dates.
    pub ranges: Vec<TimeRange<RunTime>>,
    /// Time ranges with both ends excluded (Airflow's `_gt` / `_lt`).
    pub strict_ranges: Vec<TimeRange<RunTime>>,
    /// Bounds on how long the run took (only ended runs have a duration).
    pub duration: DurationRange,
    /// Only runs whose conf (JSON text) contains this, case-insensitively.
    pub conf_contains: Option<String>,
    /// Sort key and whether descending (default: `run_after`, oldest first).
    pub order: Option<(RunOrder, bool)>,
    /// At most this many.
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
}

/// Bounds in seconds on `end_date - start_date`; any may be open. A bound
/// lets through only what has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DurationRange {
    /// At least.
    pub gte: Option<f64>,
    /// More than.
    pub gt: Option<f64>,
    /// At most.
    pub lte: Option<f64>,
    /// Less than.
    pub lt: Option<f64>,
}

/// A `column >= from AND column <= to` filter; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange<C> {
    /// Which date.
    pub column: C,
    /// Lower bound, included.
    pub from: Option<DateTime<Utc>>,
    /// Upper bound, included.
    pub to: Option<DateTime<Utc>>,
}

/// Implements `column()` (the SQL column, a fixed string) for a field-less enum.
macro_rules! columns {
    ($(#[$m:meta])* $ty:ident { $($(#[$vm:meta])* $variant:ident => $col:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty { $($(#[$vm])* $variant),+ }

        impl $ty {
            /// The SQL column.
            pub fn column(self) -> &'static str {
                match self { $($ty::$variant => $col),+ }
            }
        }
    };
}

columns!(
    /// The dates of a run that lists filter on.
    RunTime {
        /// `logical_date`.
        LogicalDate => "logical_date",
        /// `start_date`.
        StartDate => "start_date",
        /// `end_date`.
        EndDate => "end_date",
        /// `run_after`.
        RunAfter => "run_after",
    }
);

columns!(
    /// What runs can be sorted by.
    RunOrder {
        /// Creation order.
        Id => "id",
        /// DAG id.
        DagId => "dag_id",
        /// Run id.
        RunId => "run_id",
        /// State.
        State => "state",
        /// Run type.
        RunType => "run_type",
        /// Logical date.
        LogicalDate => "logical_date",
        /// Start.
        StartDate => "start_date",
        /// End.
        EndDate => "end_date",
        /// When it may start.
        RunAfter => "run_after",
    }
);

columns!(
    /// The dates of a task instance that lists filter on.
    TaskTime {
        /// `start_date`.
        StartDate => "start_date",
        /// `end_date`.
        EndDate => "end_date",
        /// `updated_at`.
        UpdatedAt => "updated_at",
    }
);

columns!(
    /// What task instances can be sorted by.
    TaskOrder {
        /// DAG id.
        DagId => "dag_id",
        /// Run id.
        RunId => "run_id",
        /// Task id.
        TaskId => "task_id",
        /// State.
        State => "state",
        /// Try number.
        TryNumber => "try_number",
        /// Pool.
        Pool => "pool",
        /// Priority.
        Priority => "priority",
        /// Start.
        StartDate => "start_date",
        /// End.
        EndDate => "end_date",
        /// Last change.
        UpdatedAt => "updated_at",
        /// Map index.
        MapIndex => "map_index",
    }
);

/// Filters for listing task instances.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// One DAG, or every DAG.
    pub dag_id: Option<String>,
    /// One run id, or every run.
    pub run_id: Option<String>,
    /// Only these DAGs (with `dag_id`, both must hold).
    pub dag_ids: Vec<String>,
    /// Only these run ids.
    pub run_ids: Vec<String>,
    /// Only these tasks.
    pub task_ids: Vec<String>,
    /// Only these states.
    pub states: Vec<TaskState>,
    /// Only these pools.
    pub pools: Vec<String>,
    /// Only these queues.
    pub queues: Vec<String>,
    /// Time ranges (both ends included).
    pub ranges: Vec<TimeRange<TaskTime>>,
    /// Time ranges (both ends excluded).
    pub strict_ranges: Vec<TimeRange<TaskTime>>,
    /// Ranges of their runs' dates (both ends included).
    pub run_ranges: Vec<TimeRange<RunTime>>,
    /// Ranges of their runs' dates (both ends excluded).
    pub run_strict_ranges: Vec<TimeRange<RunTime>>,
    /// Bounds on how long the task instance's last try took.
    pub duration: DurationRange,
    /// Task ids matching this Airflow pattern (case-insensitive substring,
    /// `|` between alternatives).
    pub task_id_pattern: Option<String>,
    /// Run ids matching this Airflow pattern.
    pub run_id_pattern: Option<String>,
    /// Only task instances whose current try published an output.
    pub with_output: bool,
    /// Only task instances with one of these map indexes (-1: a task's own).
    pub map_indexes: Vec<i64>,
    /// Only mapped instances (map index 0 and up).
    pub mapped_only: bool,
    /// Sort key and whether descending (default: start date, then task id).
    pub order: Option<(TaskOrder, bool)>,
    /// At most this many.
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
}

/// Which audit entries to read; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// About this DAG.
    pub dag_id: Option<String>,
    /// About this task.
    pub task_id: Option<String>,
    /// About this run.
    pub run_id: Option<String>,
    /// Made by this actor.
    pub actor: Option<String>,
    /// Of this kind.
    pub action: Option<AuditAction>,
    /// Strictly before this moment.
    pub before: Option<DateTime<Utc>>,
    /// Strictly after this moment.
    pub after: Option<DateTime<Utc>>,
    /// Oldest first (default: newest first).
    pub oldest_first: bool,
}

/// How many runs, task instances and tries are in each state (states with
/// none are left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateCounts {
    /// Runs by state.
    pub runs: Vec<(RunState, i64)>,
    /// Task instances by state.
    pub task_instances: Vec<(TaskState, i64)>,
    /// Tries (the whole history) by how they ended (`running` while they run).
    pub tries: Vec<(TaskState, i64)>,
}

impl StateCounts {
    /// How many task instances are in `state`.
    pub fn task_instances_in(&self, state: TaskState) -> i64 {
        self.task_instances
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// Users, API tokens, backfills and settings: what the API keeps besides the
/// engine's state.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Adds a user; [`Error::Conflict`] if the name is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    /// One user.
    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    /// How many users exist.
    async fn count_users(&self) -> Result<i64>;
    /// Removes a user.
    async fn delete_user(&self, username: &str) -> Result<()>;
    /// Notes a successful login.
    async fn record_login(&self, username: &str, at: DateTime<Utc>) -> Result<()>;
    /// Adds an API token.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// One API token by id.
    async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Every API token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Revokes a token (it is kept, refused from now on).
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Notes that a token was accepted.
    async fn record_token_use(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// The value of a setting, storing `value` first if there is none.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;
    /// Records a backfill.
    async fn create_backfill(&self, b: &NewBackfill) -> Result<BackfillRecord>;
    /// Backfills matching a filter, oldest first, with the total.
    async fn list_backfills(&self, filter: &BackfillFilter) -> Result<(Vec<BackfillRecord>, i64)>;
    /// One backfill.
    async fn get_backfill(&self, id: i64) -> Result<BackfillRecord>;
    /// Pauses, unpauses, cancels or completes a backfill.
    async fn update_backfill(
        &self,
        id: i64,
        change: BackfillChange,
        now: DateTime<Utc>,
    ) -> Result<BackfillRecord>;
    /// Every pool with its occupancy.
    async fn list_pools(&self) -> Result<Vec<PoolRecord>>;
    /// Creates or updates a pool.
    async fn upsert_pool(&self, name: &str, slots: i64, description: Option<&str>) -> Result<()>;
    /// Deletes a pool (not `default`).
    async fn delete_pool(&self, name: &str) -> Result<()>;
    /// Writes an audit entry on its own.
    async fn audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Audit entries that pass `filter`, in its order, with the total count.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditRecord>, i64)>;
    /// One audit entry.
    async fn get_audit(&self, id: i64) -> Result<AuditRecord>;
}

/// The data catalog: dataset versions and their lineage, quality results,
/// retention.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// The newest live version of `dataset` written by a run.
    async fn dataset_version_of_run(
        &self,
        dataset: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<DatasetVersionRecord>>;
    /// Every version (of one dataset, or of all), by dataset and version.
    async fn dataset_versions(&self, dataset: Option<&str>) -> Result<Vec<DatasetVersionRecord>>;
    /// One version by key.
    async fn get_dataset_version(&self, id: i64) -> Result<DatasetVersionRecord>;
    /// Moves the recorded place of every version under the folder `from` to
    /// the same place under `to` (a restore into another data folder);
    /// answers how many moved.
    async fn move_version_paths(&self, from: &str, to: &str) -> Result<u64>;
    /// Records the Delta commit that holds a version's files (a migration
    /// of a folder written before its table had a Delta log).
    async fn set_delta_version(&self, id: i64, delta_version: Option<i64>) -> Result<()>;
    /// Records that retention deleted a version's files (audited).
    async fn mark_version_deleted(&self, id: i64, actor: &str, at: DateTime<Utc>) -> Result<()>;
    /// Points a kept version at the files it was rewritten to after rows
    /// were erased from it, with its new row count and size; audited with
    /// `what` (the condition, the rows erased). Not found when the version
    /// was deleted meanwhile.
    async fn record_erasure(
        &self,
        id: i64,
        rewritten: &ErasedVersion,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<DatasetVersionRecord>;
    /// Records a validate try's versions, outcome and check results in one
    /// transaction.
    async fn record_validation(
        &self,
        v: &NewValidation,
        at: DateTime<Utc>,
    ) -> Result<RecordedValidation>;
    /// The validate outcomes of a run, oldest first, with their checks.
    async fn quality_of_run(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<(QualityRecord, Vec<CheckResultRecord>)>>;
    /// The newest `limit` validate outcomes of a task, newest first, with
    /// their check counts: its quality history.
    async fn quality_history(
        &self,
        dag_id: &str,
        task_id: &str,
        limit: i64,
    ) -> Result<Vec<QualityPoint>>;
    /// Records a new version of a dataset; returns it.
    async fn record_dataset_version(
        &self,
        v: &NewDatasetVersion,
        at: DateTime<Utc>,
    ) -> Result<DatasetVersionRecord>;
    /// The newest version of a dataset.
    async fn latest_dataset_version(&self, dataset: &str) -> Result<Option<DatasetVersionRecord>>;
}

/// Which worker lives [`WorkerStore::list_workers`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerFilter {
    /// Only those on this host.
    pub hostname: Option<String>,
    /// Only those in this state.
    pub state: Option<WorkerState>,
}

/// The register of worker lives: who runs tries, where, and whether that
/// process is still there.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Registers a worker life as active (again, if it was found lost while
    /// it was in fact alive).
    async fn register_worker(&self, worker: &NewWorker, now: DateTime<Utc>) -> Result<()>;
    /// Notes that an active worker is alive; [`Error::Conflict`] if it is not
    /// registered as active (another process found it lost).
    async fn worker_heartbeat(&self, name: &str, now: DateTime<Utc>) -> Result<()>;
    /// Ends an active worker life as `stopped` or `lost`; [`Error::Conflict`]
    /// if it is not active (someone ended it first).
    async fn end_worker(&self, name: &str, state: WorkerState, now: DateTime<Utc>) -> Result<()>;
    /// Worker lives matching a filter, oldest first.
    async fn list_workers(&self, filter: &WorkerFilter) -> Result<Vec<WorkerRecord>>;
    /// Notes that an active worker drains: it claims nothing more.
    async fn drain_worker(&self, name: &str, now: DateTime<Utc>) -> Result<()>;
    /// One worker life, in any state.
    async fn get_worker(&self, name: &str) -> Result<WorkerRecord>;
    /// Active remote workers last heard of before `heard_before`.
    async fn lapsed_workers(&self, heard_before: DateTime<Utc>) -> Result<Vec<String>>;
}

/// Logs of tries run by remote workers, pushed piece by piece.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends the piece of a try's log that starts at byte `offset`; a piece
    /// sent again adds only what the log lacks. Returns the log's size;
    /// [`Error::Conflict`] if the piece starts past the end (one is missing).
    async fn append_log(
        &self,
        ti_id: &str,
        try_number: i64,
        offset: u64,
        data: &[u8],
    ) -> Result<u64>;
    /// A try's pushed log from byte `offset`, with the offset to continue
    /// from; `None` if nothing was pushed for it.
    async fn read_log(
        &self,
        ti_id: &str,
        try_number: i64,
        offset: u64,
    ) -> Result<Option<(Vec<u8>, u64)>>;
}

/// Which variables [`VariableStore::list_variables`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableFilter {
    /// Keys containing this text (case-insensitive; `%` matches any run of
    /// characters, `_` any one).
    pub key_pattern: Option<String>,
    /// Keys starting with exactly this text.
    pub key_prefix: Option<String>,
}

/// Variables: keys and values templates read, set by people (CLI, API).
#[async_trait]
pub trait VariableStore: Send + Sync {
    /// The variables a filter lets through, by key.
    async fn list_variables(&self, filter: &VariableFilter) -> Result<Vec<VariableRecord>>;
    /// One variable, if set.
    async fn get_variable(&self, key: &str) -> Result<Option<VariableRecord>>;
    /// Sets a variable as `mode` allows, with `audit` in the same transaction.
    async fn save_variable(
        &self,
        key: &str,
        value: &str,
        description: Option<&str>,
        mode: SaveMode,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Deletes a variable, with `audit` in the same transaction;
    /// [`Error::NotFound`] if it is not set.
    async fn delete_variable(&self, key: &str, audit: &AuditEntry) -> Result<()>;
}

/// How a delivery attempt of a notification ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Delivered.
    Sent,
    /// Failed; try again at this time.
    Retry(DateTime<Utc>, String),
    /// Failed for good (no attempts left).
    Failed(String),
}

/// Notifications: the outbox the state changes write and the notifier
/// delivers from.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Records notifications of run `run_pk` (each once, by its key).
    async fn record_notices(
        &self,
        run_pk: i64,
        notices: &[Notice],
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Takes up to `limit` notifications due at `now` for delivery: each
    /// counts an attempt and is not due again before `lease_until` (another
    /// notifier takes it then if this one died).
    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>>;
    /// Records how an attempt ended.
    async fn finish_notification(
        &self,
        id: i64,
        delivery: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The notifications of a run, oldest first.
    async fn run_notifications(&self, run_pk: i64) -> Result<Vec<NotificationRecord>>;
}

/// Datasets as Airflow's assets: lasting ids and updates from outside.
#[async_trait]
pub trait AssetStore: Send + Sync {
    /// Gives each of `names` an id unless it has one.
    async fn ensure_assets(&self, names: &[String], at: DateTime<Utc>) -> Result<()>;
    /// The assets whose name contains `pattern` (case-insensitive), by id.
    async fn list_assets(&self, pattern: Option<&str>) -> Result<Vec<AssetRecord>>;
    /// One asset by id.
    async fn get_asset(&self, id: i64) -> Result<Option<AssetRecord>>;
    /// Records an update of asset `asset_id` from outside, with `audit` in
    /// the same transaction.
    async fn record_asset_event(
        &self,
        asset_id: i64,
        extra: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<AssetEventRecord>;
    /// Recorded updates, newest first (of one asset, or all), with the
    /// total before `limit`/`offset`.
    async fn list_asset_events(
        &self,
        asset_id: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AssetEventRecord>, i64)>;
    /// The newest recorded update of dataset `name`.
    async fn latest_asset_event(&self, name: &str) -> Result<Option<AssetEventRecord>>;
}

/// Connections kept by weir, their secret parts sealed by the caller.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// The connections whose id contains `pattern` (case-insensitive; `%`
    /// and `_` wildcards), or all, by id.
    async fn list_connections(&self, pattern: Option<&str>) -> Result<Vec<ConnectionRecord>>;
    /// One connection, if kept.
    async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>>;
    /// Saves a connection as `mode` allows, with `audit` in the same transaction.
    async fn save_connection(
        &self,
        conn: &ConnectionRecord,
        mode: SaveMode,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Deletes a connection, with `audit` in the same transaction;
    /// [`Error::NotFound`] if it is not kept.
    async fn delete_connection(&self, id: &str, audit: &AuditEntry) -> Result<()>;
}

/// DAG files synced into DAGs and their versions, pausing, import errors.
#[async_trait]
pub trait DagStore: Send + Sync {
    /// Records the DAGs found by a folder load: new versions, DAG rows (new DAGs
    /// start paused if the file or `paused_at_creation` says so), DAGs whose file
    /// is gone marked stale, and the import errors replaced. One transaction.
    async fn sync_dags(
        &self,
        dags: &[DagSync],
        errors: &[ImportErrorRecord],
        paused_at_creation: bool,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Every DAG.
    async fn list_dags(&self) -> Result<Vec<DagRecord>>;
    /// One DAG.
    async fn get_dag(&self, dag_id: &str) -> Result<DagRecord>;
    /// Pauses or unpauses a DAG (with `audit`, audited in the same transaction).
    async fn set_paused(
        &self,
        dag_id: &str,
        paused: bool,
        audit: Option<&AuditEntry>,
    ) -> Result<()>;
    /// One stored DAG version.
    async fn get_version(&self, version_id: i64) -> Result<VersionRecord>;
    /// The versions of a DAG, newest first.
    async fn list_versions(&self, dag_id: &str) -> Result<Vec<VersionRecord>>;
    /// The current import errors.
    async fn list_import_errors(&self) -> Result<Vec<ImportErrorRecord>>;
}

/// Runs, task instances and tries: creating runs and reading them.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run and its task instances (state `none`), queued. Fails with
    /// [`Error::Conflict`] if the run id exists.
    async fn create_run(&self, run: &NewRun) -> Result<RunRecord>;
    /// Runs matching a filter, with the total count before limit/offset.
    async fn list_runs(&self, filter: &RunFilter) -> Result<(Vec<RunRecord>, i64)>;
    /// One run by its DAG and run id.
    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<RunRecord>;
    /// One run by its key.
    async fn get_run_by_pk(&self, run_pk: i64) -> Result<RunRecord>;
    /// Sets a run's note (audited in the same transaction).
    async fn set_run_note(
        &self,
        run_pk: i64,
        note: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<RunRecord>;
    /// The scheduled or backfill run of a DAG with the latest logical date.
    async fn last_scheduled_run(&self, dag_id: &str) -> Result<Option<RunRecord>>;
    /// The DAGs that have runs waiting to start.
    async fn dags_with_queued_runs(&self) -> Result<Vec<String>>;
    /// How many runs of a DAG are queued or running.
    async fn count_active_runs(&self, dag_id: &str) -> Result<i64>;
    /// How many runs of a DAG are running.
    async fn count_running_runs(&self, dag_id: &str) -> Result<i64>;
    /// The task instances of a run, in task order of creation.
    async fn list_task_instances(&self, run_pk: i64) -> Result<Vec<TaskInstanceRecord>>;
    /// Every try of a task instance, oldest first.
    async fn list_tries(&self, ti_id: &str) -> Result<Vec<TryRecord>>;
    /// Every try of every task instance of a run, by start.
    async fn run_tries(&self, run_pk: i64) -> Result<Vec<TryRecord>>;
    /// The outputs of the current tries of `task_ids` in a run, as `(task
    /// id, map index, JSON text)` by task and map index: an expanded task's
    /// mapped instances (each, with or without one) stand for it; a task
    /// of its own without one is left out.
    async fn task_outputs(
        &self,
        run_pk: i64,
        task_ids: &[String],
    ) -> Result<Vec<(String, i64, Option<String>)>>;
    /// Task instances matching a filter, with the total count before limit/offset.
    async fn find_task_instances(
        &self,
        filter: &TaskFilter,
    ) -> Result<(Vec<TaskInstanceRecord>, i64)>;
    /// A task's own instance (map index -1) by DAG, run and task id.
    async fn get_task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<TaskInstanceRecord> {
        self.get_mapped_instance(dag_id, run_id, task_id, -1).await
    }
    /// One task instance by DAG, run, task id and map index (-1: the task's own).
    async fn get_mapped_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<TaskInstanceRecord>;
    /// One task instance by its key.
    async fn get_task_instance_by_id(&self, ti_id: &str) -> Result<TaskInstanceRecord>;
    /// How many runs each DAG has in each state (states without runs left out).
    async fn run_counts_by_dag(&self) -> Result<Vec<(String, RunState, i64)>>;
    /// How many runs, task instances and tries are in each state.
    async fn state_counts(&self) -> Result<StateCounts>;
    /// Runs and the states of all their task instances, in one query: the
    /// grid of the UI.
    async fn grid(&self, runs: &GridRuns) -> Result<GridPage>;
    /// Running runs started before `started_before` of `dag_id`.
    async fn running_runs_started_before(
        &self,
        dag_id: &str,
        started_before: DateTime<Utc>,
    ) -> Result<Vec<RunRecord>>;
    /// The newest run of a DAG of the given type.
    async fn last_run_of_type(
        &self,
        dag_id: &str,
        run_type: crate::state::RunType,
    ) -> Result<Option<RunRecord>>;
}

/// The guarded apply: a planner's changes to a run, written in one transaction.
#[async_trait]
pub trait AdvanceStore: Send + Sync {
    /// Applies `planner`'s plan to a run in one transaction (with `end`, the
    /// try record is closed in the same transaction, and with `audit`, the
    /// audit entry is written in it). Returns the applied plan.
    async fn advance_run(
        &self,
        run_pk: i64,
        scope: &Scope,
        end: Option<&TryEnd>,
        audit: Option<&AuditEntry>,
        claim: Option<&ClaimRequest>,
        planner: Planner<'_>,
    ) -> Result<Advanced>;
    /// Applies several runs' changes in one transaction (group commit): each
    /// item as [`AdvanceStore::advance_run`] would, in a savepoint of its own so one
    /// item's conflict does not undo the others; then queues ready work once
    /// and claims for the items that ask. One result per item, in order.
    async fn advance_runs(&self, items: Vec<Advance>) -> Result<Vec<Result<Advanced>>>;
}

/// Dispatch: queueing scheduled work, claims with leases, heartbeats, lapsed leases and due retries.
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Moves `scheduled` task instances of running runs to `queued`, highest
    /// priority first, within pool slots and each DAG's `max_active_tasks`.
    /// Returns how many were queued.
    async fn queue_scheduled(&self, now: DateTime<Utc>) -> Result<usize>;
    /// Claims up to `req.limit` queued task instances: each starts a new try
    /// (`running`, try number + 1, lease) recorded in the tries history.
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claim>>;
    /// Renews the leases of running tries; returns the ones that are no longer
    /// running under that try and lease (cleared, marked, or their lease
    /// lapsed before `now`: the worker must stop them).
    async fn heartbeat(
        &self,
        tries: &[HeldTry],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<HeldTry>>;
    /// Running tries whose lease ended before `now`.
    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<TryKey>>;
    /// Running tries claimed by `worker`.
    async fn running_for_worker(&self, worker: &str) -> Result<Vec<TryKey>>;
    /// Runs with task instances waiting in `up_for_retry`/`up_for_reschedule` whose time has come.
    async fn due_retries(&self, now: DateTime<Utc>) -> Result<Vec<i64>>;
}

/// The state store. Implemented by [`SqliteStore`] and [`PostgresStore`];
/// one conformance suite runs every case against both.
#[async_trait]
pub trait Store:
    DagStore
    + RunStore
    + DispatchStore
    + AdvanceStore
    + AccessStore
    + CatalogStore
    + WorkerStore
    + LogStore
    + VariableStore
    + ConnectionStore
    + AssetStore
    + NotificationStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
}

/// The kind of database a URL names: weir's own store, or a connection
/// tasks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `sqlite:PATH` or `sqlite://PATH`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend `url` names; [`Error::UnsupportedUrl`] for any other.
    pub fn of(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            // Only the scheme: the rest may hold a password.
            let scheme = url.split_once(':').map_or(url, |(s, _)| s);
            Err(Error::UnsupportedUrl(format!("{scheme}:…")))
        }
    }
}

/// Opens the store a URL names (`sqlite://PATH` or `postgres://…`), creating a
/// SQLite file if needed, and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::of(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
        Backend::Postgres => Arc::new(PostgresStore::connect(url).await?),
    };
    store.migrate().await?;
    Ok(store)
}

/// Where the log of a try is kept, relative to the logs folder:
/// `<dag>/<run>/<task>/<try>.log` (a mapped instance's in `<task>/<map index>/`),
/// with characters unsafe in file names replaced.
pub fn log_path(
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
    try_number: i64,
) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mapped = if map_index < 0 {
        String::new()
    } else {
        format!("/{map_index}")
    };
    format!(
        "{}/{}/{}{mapped}/{try_number}.log",
        safe(dag_id),
        safe(run_id),
        safe(task_id)
    )
}
