//! The DAG model: what a loaded, checked DAG is. No IO happens here.

pub mod contract;
pub mod convert;
pub mod duration;
pub mod file;
pub mod graph;
pub mod ids;
pub mod schedule;
pub(crate) mod text;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use indexmap::IndexMap;

pub use contract::{Contract, Threshold};
pub use duration::Duration;
pub use file::{
    Backoff, CommandSpec, DeadlineFrom, FileFormat, KindName, LoadMode, NotifyEvent, TriggerRule,
};
pub use graph::DagGraph;
pub use ids::{DagId, DatasetName, TaskId, Zone};
pub use schedule::{CronExpr, Schedule};

/// A loaded and checked DAG, pinned to one version of its definition.
#[derive(Debug, Clone)]
pub struct Dag {
    /// The DAG id.
    pub id: DagId,
    /// What it does.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// When runs are created.
    pub schedule: Schedule,
    /// The time zone schedules are evaluated in.
    pub timezone: Tz,
    /// The first data interval starts here.
    pub start_date: Option<DateTime<Utc>>,
    /// No interval starts after this.
    pub end_date: Option<DateTime<Utc>>,
    /// Create runs for missed intervals.
    pub catchup: bool,
    /// Paused in the file (the state store has the final word at run time).
    pub paused: bool,
    /// How many runs may be active at once.
    pub max_active_runs: u32,
    /// How many task instances may run at once.
    pub max_active_tasks: u32,
    /// A run going longer fails.
    pub dagrun_timeout: Option<Duration>,
    /// Who to tell when a run fails or succeeds, a task retries, or the
    /// deadline passes.
    pub notify: Vec<Notify>,
    /// When a run must have ended.
    pub deadline: Option<Deadline>,
    /// The DAG or a task has a `notify` rule (see [`Dag::notifies`]).
    pub notifies: bool,
    /// Parameter defaults.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The tasks, in file order.
    pub tasks: IndexMap<TaskId, Task>,
    /// Task dependencies.
    pub graph: DagGraph,
    /// The file the DAG came from.
    pub fileloc: PathBuf,
    /// The version of the definition this DAG was built from.
    pub version: DagVersion,
}

impl Dag {
    /// What people should know about `ds` from the task of this DAG that
    /// writes it ([`Task::dataset_metadata`]).
    pub fn dataset_metadata(&self, ds: &DatasetName) -> Option<contract::DatasetMeta> {
        self.tasks.values().find_map(|t| t.dataset_metadata(ds))
    }

    /// Whether the DAG or any of its tasks has a `notify` rule (known at
    /// load, so a plan of a quiet DAG looks at no task for it).
    pub fn notifies(&self) -> bool {
        self.notifies
    }

    /// When the next scheduled run will be created after `now` (the end of its
    /// data interval), or `None` for manual and dataset-triggered DAGs.
    pub fn next_run_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.schedule {
            Schedule::Manual | Schedule::Datasets(_) => None,
            Schedule::Once => self.start_date.filter(|s| *s > now),
            Schedule::Cron(cron) => {
                let first_start = match self.start_date {
                    Some(s) => cron.next_after(s - chrono::Duration::seconds(1), self.timezone)?,
                    None => now,
                };
                let from = now.max(first_start);
                let end = cron.next_after(from, self.timezone)?;
                let start =
                    cron.last_at_or_before(end - chrono::Duration::seconds(1), self.timezone)?;
                match self.end_date {
                    Some(limit) if start > limit => None,
                    _ => Some(end),
                }
            }
        }
    }

    /// The task at index `i` of [`Dag::tasks`] (the graph's node numbering).
    pub fn task_at(&self, i: usize) -> Option<&Task> {
        self.tasks.get_index(i).map(|(_, t)| t)
    }
}

/// An immutable version of a DAG's definition: the self-contained definition
/// (contract files inlined) and its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagVersion {
    /// SHA-256 of `definition`, hex.
    pub hash: String,
    /// The definition as JSON (a [`file::DagFile`] with contract files inlined).
    pub definition: String,
    /// The text of the DAG file and of its contract files, as read (empty
    /// for a DAG rebuilt from a stored definition). Not part of the hash:
    /// comments and formatting make no new version.
    pub sources: Vec<SourceText>,
}

/// One file a DAG version was read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceText {
    /// The path as written: the DAG file's name, or a contract's path
    /// relative to it.
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// One task of a DAG.
#[derive(Debug, Clone)]
pub struct Task {
    /// The task id.
    pub id: TaskId,
    /// What it does.
    pub description: Option<String>,
    /// What it runs.
    pub kind: TaskKind,
    /// Explicit upstream tasks (dataset edges are in the graph).
    pub depends_on: Vec<TaskId>,
    /// When it runs given its upstream outcomes.
    pub trigger_rule: TriggerRule,
    /// What happens when a try fails.
    pub retry: RetryPolicy,
    /// A try running longer is killed.
    pub timeout: Option<Duration>,
    /// The pool whose slots it uses.
    pub pool: String,
    /// The queue it waits in; only workers serving it run it.
    pub queue: String,
    /// Queue order when slots are short (higher first).
    pub priority: i32,
    /// Extra environment variables (templates).
    pub env: IndexMap<String, String>,
    /// The upstream tasks whose outputs its templates read (`tasks.<id>`),
    /// in task order: a claim carries those outputs.
    pub reads_outputs: Vec<TaskId>,
    /// What people should know about the dataset it writes (its own
    /// `metadata:`, without its contract's).
    pub metadata: Option<contract::DatasetMeta>,
    /// Who to tell when it fails, retries or succeeds.
    pub notify: Vec<Notify>,
    /// The list it expands over, for a mapped task.
    pub expand: Option<Expand>,
    /// The mapped tasks downstream whose items are read from this task's
    /// output: a try that publishes something they cannot expand over fails.
    pub feeds_maps: Vec<TaskId>,
}

/// A mapped task's expansion: one task instance per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    /// Where the items come from.
    pub items: Items,
    /// At most this many of its instances run at once.
    pub max_active: Option<u32>,
    /// The longest list it expands over.
    pub max_items: u32,
}

/// Where a mapped task's items come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Items {
    /// A list written in the DAG file.
    List(Vec<serde_json::Value>),
    /// An expression (the text inside `{{ … }}`) evaluated when the task
    /// expands, with the try's template values.
    Expression(String),
}

/// The longest list a mapped task expands over unless its `max_items` says otherwise.
pub const DEFAULT_MAX_ITEMS: u32 = 1024;

/// A checked notification rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// The events it fires on.
    pub on: Vec<NotifyEvent>,
    /// Where it goes.
    pub channel: Channel,
    /// The text (a template), or the default.
    pub message: Option<String>,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Channel {
    /// A JSON POST to a URL.
    Webhook(String),
    /// An e-mail to these addresses.
    Email(Vec<String>),
    /// A command with `WEIR_NOTIFY_*` set.
    Command(CommandSpec),
}

/// A run's deadline: it must end `within` after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// What it counts from.
    pub after: DeadlineFrom,
    /// How long.
    pub within: Duration,
}

/// Retry settings of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    /// The base wait.
    pub delay: Duration,
    /// How the wait grows.
    pub backoff: Backoff,
    /// The longest wait.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before try `next_try` (2, 3, …), before jitter: `delay` for
    /// fixed backoff, `delay × 2^(next_try-2)` capped at `max_delay` for exponential.
    pub fn base_wait(&self, next_try: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let exp = next_try.saturating_sub(2).min(32);
                let secs = self.delay.as_secs().saturating_mul(1u64 << exp);
                Duration::from_secs(secs.min(self.max_delay.as_secs()))
            }
        }
    }
}

/// What a task runs, by kind.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// A command.
    Shell {
        /// `sh -c` string or exec list (templates).
        command: CommandSpec,
        /// The last line of stdout is the task's output (`output: last_line`).
        last_line: bool,
    },
    /// Files or a query into a raw dataset.
    Extract {
        /// Where the data comes from.
        source: Source,
        /// The raw dataset written.
        output: DatasetName,
    },
    /// A dataset checked against a contract.
    Validate {
        /// The dataset read.
        input: DatasetName,
        /// Clean rows.
        output: DatasetName,
        /// The contract, where failing rows go, and how many may.
        checks: OutputChecks,
    },
    /// One SQL query over datasets.
    Transform {
        /// The datasets read, registered as tables.
        inputs: Vec<DatasetName>,
        /// Inputs read without a contract's check (`unchecked_inputs`).
        unchecked: Vec<DatasetName>,
        /// The contract the output is checked with before it is published.
        checks: Option<Box<OutputChecks>>,
        /// The query (template).
        sql: String,
        /// The dataset written.
        output: DatasetName,
    },
    /// A dataset into a table or a file.
    Load {
        /// The dataset read.
        input: DatasetName,
        /// Whether it is read without a contract's check (`unchecked_inputs`).
        unchecked: bool,
        /// A contract every row must pass before anything is written.
        contract: Option<Box<Contract>>,
        /// Where it goes.
        target: Target,
    },
    /// A wait for a condition.
    Sensor {
        /// What is waited for.
        condition: SensorCondition,
        /// The wait between pokes.
        poke_interval: Duration,
    },
}

impl TaskKind {
    /// The kind's name.
    pub fn name(&self) -> KindName {
        match self {
            TaskKind::Shell { .. } => KindName::Shell,
            TaskKind::Extract { .. } => KindName::Extract,
            TaskKind::Validate { .. } => KindName::Validate,
            TaskKind::Transform { .. } => KindName::Transform,
            TaskKind::Load { .. } => KindName::Load,
            TaskKind::Sensor { .. } => KindName::Sensor,
        }
    }
}

impl Task {
    /// Whether this task reads `ds` without a contract's check, on purpose.
    pub fn reads_unchecked(&self, ds: &DatasetName) -> bool {
        match &self.kind {
            TaskKind::Transform { unchecked, .. } => unchecked.contains(ds),
            TaskKind::Load {
                input, unchecked, ..
            } => *unchecked && input == ds,
            _ => false,
        }
    }

    /// The datasets this task reads.
    pub fn reads(&self) -> Vec<&DatasetName> {
        match &self.kind {
            TaskKind::Validate { input, checks, .. } => std::iter::once(input)
                .chain(checks.contract.referenced_datasets())
                .collect(),
            TaskKind::Load {
                input, contract, ..
            } => std::iter::once(input)
                .chain(contract.iter().flat_map(|c| c.referenced_datasets()))
                .collect(),
            TaskKind::Transform { inputs, checks, .. } => inputs
                .iter()
                .chain(checks.iter().flat_map(|c| c.contract.referenced_datasets()))
                .collect(),
            TaskKind::Sensor {
                condition: SensorCondition::Dataset(d),
                ..
            } => vec![d],
            _ => Vec::new(),
        }
    }

    /// The connections this task names (a query extract, a table load, a
    /// SQL sensor).
    pub fn connection_ids(&self) -> Vec<&str> {
        match &self.kind {
            TaskKind::Extract {
                source: Source::Query { connection, .. },
                ..
            }
            | TaskKind::Load {
                target: Target::Table { connection, .. },
                ..
            }
            | TaskKind::Sensor {
                condition: SensorCondition::Sql { connection, .. },
                ..
            } => vec![connection.as_str()],
            _ => Vec::new(),
        }
    }

    /// What people should know about `ds`, which this task writes: its
    /// contract's metadata (a validate's, a transform's checks') under the
    /// task's own `metadata:`. `None` when neither says anything.
    pub fn dataset_metadata(&self, ds: &DatasetName) -> Option<contract::DatasetMeta> {
        if !self.writes().contains(&ds) {
            return None;
        }
        let contract = match &self.kind {
            TaskKind::Validate { checks, .. } => Some(checks.contract.metadata()),
            TaskKind::Transform {
                checks: Some(c), ..
            } => Some(c.contract.metadata()),
            _ => None,
        };
        let meta = match (contract, &self.metadata) {
            (Some(c), Some(own)) => c.overlay(own),
            (Some(c), None) => c,
            (None, Some(own)) => own.clone(),
            (None, None) => return None,
        };
        (!meta.is_empty()).then_some(meta)
    }

    /// The datasets this task writes.
    pub fn writes(&self) -> Vec<&DatasetName> {
        match &self.kind {
            TaskKind::Extract { output, .. } => vec![output],
            TaskKind::Transform { output, checks, .. } => std::iter::once(output)
                .chain(checks.as_ref().map(|c| &c.quarantine))
                .collect(),
            TaskKind::Validate { output, checks, .. } => vec![output, &checks.quarantine],
            _ => Vec::new(),
        }
    }
}

/// How a task's output is checked before it is published: like a validate
/// task's input (failing rows quarantined, error-severity dataset checks hold
/// the version back).
#[derive(Debug, Clone)]
pub struct OutputChecks {
    /// The contract.
    pub contract: Box<Contract>,
    /// Where failing rows go.
    pub quarantine: DatasetName,
    /// More quarantined rows fail the task.
    pub max_quarantined: Option<Threshold>,
}

/// Where an extract reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Files matching a path or glob (template, relative to the DAG's folder).
    Files {
        /// The format.
        format: FileFormat,
        /// The path or glob.
        path: String,
        /// CSV reading options.
        csv: CsvOptions,
    },
    /// A query on a connection.
    Query {
        /// The query (template).
        sql: String,
        /// The connection id.
        connection: String,
    },
}

/// CSV reading options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first line is a header.
    pub header: bool,
    /// The field separator.
    pub delimiter: u8,
    /// The quote character.
    pub quote: u8,
    /// Values read as missing.
    pub null_values: Vec<String>,
}

/// Where a load writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A database table.
    Table {
        /// The connection id.
        connection: String,
        /// The table.
        table: String,
        /// How rows are written.
        mode: LoadMode,
        /// Upsert key columns.
        key: Vec<String>,
    },
    /// A file (template path, relative to the DAG's folder).
    File {
        /// The path.
        path: String,
        /// The format.
        format: FileFormat,
    },
}

/// What a sensor waits for.
#[derive(Debug, Clone)]
pub enum SensorCondition {
    /// A file matching a glob (template).
    File(String),
    /// A version of the dataset newer than the run's logical date.
    Dataset(DatasetName),
    /// A query whose first cell is truthy.
    Sql {
        /// The query (template).
        sql: String,
        /// The connection id.
        connection: String,
    },
}
