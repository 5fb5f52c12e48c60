//! The DAG file format as written in YAML: the wire types behind `dags/schema.json`.
//!
//! These types only describe what a file may say; [`super::convert`] turns a
//! [`DagFile`] into the checked domain model ([`super::Dag`]).

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::contract::{Contract, DatasetMeta, Threshold};
use super::duration::Duration;
use super::ids::{DagId, DatasetName, TaskId};
use super::schedule::{CronExpr, DateSpec, TimeZone};

/// What a task's `output` names: the dataset it writes (extract, validate,
/// transform), or `last_line` (shell: its last stdout line is its output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// The last non-empty line of a shell task's stdout.
    LastLine,
    /// A dataset.
    Dataset(DatasetName),
}

impl std::str::FromStr for OutputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "last_line" {
            return Ok(OutputSpec::LastLine);
        }
        s.parse()
            .map(OutputSpec::Dataset)
            .map_err(|e| format!("{e} (or `last_line` for a shell task)"))
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSpec::LastLine => f.write_str("last_line"),
            OutputSpec::Dataset(d) => d.fmt(f),
        }
    }
}

super::text::text_value!(
    OutputSpec,
    "a dataset name `zone.name` (extract, validate, transform), or `last_line` (shell: the last line of stdout is the task's output)",
    "^(last_line|(raw|clean|curated|quarantine)\\.[A-Za-z0-9_]+)$"
);

/// One DAG file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "weir DAG file")]
pub struct DagFile {
    /// The DAG id; defaults to the file name without its extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagId>,
    /// What the DAG does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who to ask about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels for filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When runs are created: a 5-field cron expression, a preset (`@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`, `@once`), null for manual
    /// runs only, or `{datasets: [...]}`.
    #[serde(default, skip_serializing_if = "ScheduleSpec::is_manual")]
    pub schedule: ScheduleSpec,
    /// The IANA time zone the schedule is evaluated in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<TimeZone>,
    /// The first data interval starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<DateSpec>,
    /// No interval starts after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<DateSpec>,
    /// Create runs for every missed interval.
    #[serde(default, skip_serializing_if = "is_false")]
    pub catchup: bool,
    /// A paused DAG creates no runs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// How many runs may be active at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    /// How many task instances of the DAG may run at once (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tasks: Option<u32>,
    /// A run still going after this long fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dagrun_timeout: Option<Duration>,
    /// Parameters with their defaults; a trigger's `conf` overrides them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub params: IndexMap<String, serde_json::Value>,
    /// Settings applied to every task unless the task says otherwise.
    #[serde(default, skip_serializing_if = "TaskDefaults::is_empty")]
    pub defaults: TaskDefaults,
    /// Who to tell when a run fails or succeeds, a task retries, or the
    /// deadline passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifySpec>,
    /// A run not ended this long after it was queued (or after its logical
    /// date) fires `deadline_missed`, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineSpec>,
    /// The tasks, by id.
    pub tasks: IndexMap<TaskId, TaskFile>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The value of `schedule:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ScheduleSpec {
    /// `null` or absent: manual runs only.
    #[default]
    Manual,
    /// `@once`.
    Once,
    /// A cron expression or preset.
    Cron(CronExpr),
    /// `{datasets: [...]}`.
    Datasets(Vec<DatasetName>),
}

impl ScheduleSpec {
    fn is_manual(&self) -> bool {
        matches!(self, ScheduleSpec::Manual)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetTrigger {
    datasets: Vec<DatasetName>,
}

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a cron expression, a preset such as @daily, @once, null, or {datasets: [...]}",
                )
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Manual)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Manual)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScheduleSpec, E> {
                match v.trim() {
                    "@once" => Ok(ScheduleSpec::Once),
                    "" | "manual" => Ok(ScheduleSpec::Manual),
                    _ => v.parse().map(ScheduleSpec::Cron).map_err(E::custom),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ScheduleSpec, A::Error> {
                let t =
                    DatasetTrigger::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                if t.datasets.is_empty() {
                    return Err(serde::de::Error::custom(
                        "a dataset schedule needs at least one dataset",
                    ));
                }
                Ok(ScheduleSpec::Datasets(t.datasets))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ScheduleSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ScheduleSpec::Manual => s.serialize_none(),
            ScheduleSpec::Once => s.serialize_str("@once"),
            ScheduleSpec::Cron(c) => s.collect_str(c),
            ScheduleSpec::Datasets(ds) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("datasets", ds)?;
                m.end()
            }
        }
    }
}

impl JsonSchema for ScheduleSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Schedule".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ds = g.subschema_for::<Vec<DatasetName>>();
        schemars::json_schema!({
            "description": "a 5-field cron expression, @hourly/@daily/@weekly/@monthly/@yearly/@once, null (manual only), or {datasets: [...]}",
            "oneOf": [
                {"type": "null"},
                {"type": "string"},
                {"type": "object", "additionalProperties": false, "required": ["datasets"],
                 "properties": {"datasets": ds}}
            ]
        })
    }
}

/// Settings under `defaults:` that every task inherits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    /// How many times a failed try is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The wait before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Duration>,
    /// `fixed` or `exponential` (doubling, with jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<Backoff>,
    /// The longest wait before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_delay: Option<Duration>,
    /// A try running longer than this is killed and counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The pool whose slots the task uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The queue the task waits in: only workers serving it run the task
    /// (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Higher runs first when slots are short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl TaskDefaults {
    fn is_empty(&self) -> bool {
        self.retries.is_none()
            && self.retry_delay.is_none()
            && self.retry_backoff.is_none()
            && self.max_retry_delay.is_none()
            && self.timeout.is_none()
            && self.pool.is_none()
            && self.queue.is_none()
            && self.priority.is_none()
    }
}

/// How the wait between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The same `retry_delay` every time.
    #[default]
    Fixed,
    /// `retry_delay × 2^(try-1)` with jitter, capped at `max_retry_delay`.
    Exponential,
}

/// The kinds of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// Runs a command.
    Shell,
    /// Reads files or a SQL query into a raw dataset.
    Extract,
    /// Checks a dataset against a contract; clean and quarantined rows.
    Validate,
    /// One SQL query over datasets.
    Transform,
    /// Writes a dataset into a database table or a file.
    Load,
    /// Waits for a file, a dataset version or a SQL condition.
    Sensor,
}

impl KindName {
    /// The name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            KindName::Shell => "shell",
            KindName::Extract => "extract",
            KindName::Validate => "validate",
            KindName::Transform => "transform",
            KindName::Load => "load",
            KindName::Sensor => "sensor",
        }
    }
}

/// When a task runs, given the states of its upstream tasks (Airflow's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded.
    #[default]
    AllSuccess,
    /// Every upstream finished, whatever the outcome.
    AllDone,
    /// Every upstream failed.
    AllFailed,
    /// At least one upstream succeeded.
    OneSuccess,
    /// At least one upstream failed.
    OneFailed,
    /// No upstream failed (skipped is fine).
    NoneFailed,
    /// Regardless of upstream outcomes.
    Always,
}

impl TriggerRule {
    /// The name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::Always => "always",
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run failed (on a DAG), or a task failed for good (on a task).
    Failure,
    /// A try failed and the task will be tried again.
    Retry,
    /// A run succeeded (on a DAG), or a task did (on a task).
    Success,
    /// A run had not ended by its deadline (on a DAG).
    DeadlineMissed,
}

impl NotifyEvent {
    /// The name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Retry => "retry",
            NotifyEvent::Success => "success",
            NotifyEvent::DeadlineMissed => "deadline_missed",
        }
    }
}

impl std::str::FromStr for NotifyEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            NotifyEvent::Failure,
            NotifyEvent::Retry,
            NotifyEvent::Success,
            NotifyEvent::DeadlineMissed,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
        .ok_or_else(|| format!("unknown notification event `{s}`"))
    }
}

impl TryFrom<String> for NotifyEvent {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// What a mapped task expands over, and how far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpandSpec {
    /// The items: a list, or one expression that gives a list at run time,
    /// such as `{{ tasks.list_files.output }}` or `{{ params.regions }}`.
    pub items: ItemsSpec,
    /// At most this many of its instances run at once (default: no limit
    /// beyond pools and the DAG's `max_active_tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// A list longer than this fails (default 1024): the upstream task whose
    /// output it is, or the expansion itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
}

/// The items of a mapped task as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ItemsSpec {
    /// The items themselves.
    List(Vec<serde_json::Value>),
    /// One expression in `{{ … }}` that gives a JSON list.
    Expression(String),
}

/// One notification rule: on which events, through which channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// The events: `failure`, `retry`, `success`, `deadline_missed`.
    pub on: Vec<NotifyEvent>,
    /// POST a JSON body (`text` and the details) to this URL; a Slack
    /// incoming webhook takes it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Send an e-mail to these addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Vec<String>>,
    /// Run this command (in the DAG file's folder) with `WEIR_NOTIFY_*` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// The text (a template: `event`, `dag_id`, `run_id`, `task_id`,
    /// `try_number`, `state`, `error`, `log_url`, `ds`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a deadline counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineFrom {
    /// When the run was queued.
    Queued,
    /// The run's logical date.
    LogicalDate,
}

/// A run's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSpec {
    /// `queued` or `logical_date`.
    pub after: DeadlineFrom,
    /// How long after it the run must have ended.
    pub within: Duration,
}

/// A shell command: one string for `sh -c`, or a list exec'd directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandSpec {
    /// Run with `sh -c`.
    Shell(String),
    /// Program and arguments, exec'd without a shell.
    Exec(Vec<String>),
}

/// One task as written in a file. Which keys a task may use depends on its
/// `kind`; the loader reports keys that do not belong to the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// What the task does.
    pub kind: KindName,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tasks of this DAG that must finish first (besides dataset edges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<TaskId>,
    /// When the task runs given its upstream outcomes (default all_success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_rule: Option<TriggerRule>,
    /// How many times a failed try is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The wait before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Duration>,
    /// `fixed` or `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<Backoff>,
    /// The longest wait before a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_delay: Option<Duration>,
    /// A try running longer is killed (a sensor fails after waiting this long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The pool whose slots the task uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The queue the task waits in: only workers serving it run the task
    /// (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Higher runs first when slots are short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Environment variables (templates) for the task's process.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Who to tell when this task fails, retries or succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifySpec>,
    /// shell: run once per item of a list known only at run time (dynamic
    /// task mapping); templates read the item as `{{ item }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<ExpandSpec>,

    /// shell: the command (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,

    /// extract: where the data comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// extract, validate, transform: what people should know about the
    /// dataset written (owner, description, tags, columns' descriptions and
    /// classifications), over what its contract says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<DatasetMeta>,
    /// extract, validate, transform: the dataset written; shell:
    /// `last_line` publishes the last line of stdout as the task's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,

    /// validate, load: the dataset read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<DatasetName>,
    /// validate: the contract, inline or a file path relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<ContractSpec>,
    /// validate: where failing rows go (default `quarantine.<output name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<DatasetName>,
    /// validate: more quarantined rows than this fails the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_quarantined: Option<Threshold>,

    /// transform: the datasets the query reads, registered as tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<DatasetName>>,
    /// transform, load: inputs in the raw or quarantine zone read as they
    /// are, on purpose (no contract has checked them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked_inputs: Option<Vec<DatasetName>>,
    /// transform: the query; sensor: a query whose first cell must be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,

    /// load: where the data goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,

    /// sensor: a file glob to wait for (relative to this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// sensor: a dataset to wait for a version of newer than the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetName>,
    /// sensor: the connection `sql` runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// sensor: the wait between pokes (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poke_interval: Option<Duration>,
}

/// File formats weir reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with a header.
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

/// `source:` of an extract task: files (`path`) or a query (`sql` + `connection`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The file format (default: from the path's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// A path or glob (template), relative to the DAG file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A query (template) to run on `connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The connection id the query runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// CSV: whether the first line is a header (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV: the field separator, one character (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// CSV: the quote character (default `"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<char>,
    /// CSV: values read as missing (default: the empty string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
}

/// `contract:`: a file path or the contract itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ContractSpec {
    /// A contract file, relative to the DAG file's folder.
    File(String),
    /// The contract written inline.
    Inline(Box<Contract>),
}

impl<'de> Deserialize<'de> for ContractSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ContractSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a contract file path or an inline contract (columns, primary_key, checks)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ContractSpec, E> {
                Ok(ContractSpec::File(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ContractSpec, A::Error> {
                Contract::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|c| ContractSpec::Inline(Box::new(c)))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ContractSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ContractSpec".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let inline = g.subschema_for::<Contract>();
        schemars::json_schema!({
            "description": "a contract file path (relative to the DAG file) or an inline contract",
            "oneOf": [{"type": "string"}, inline]
        })
    }
}

/// How a load writes into its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Add the rows (rows of an earlier try of the same run are replaced).
    #[default]
    Append,
    /// Replace the table's contents.
    Replace,
    /// Insert or update by `key`.
    Upsert,
}

/// `target:` of a load task: a table on a connection, or a file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The connection id of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The table written (created from the dataset's schema if missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// append, replace or upsert.
    #[serde(default)]
    pub mode: LoadMode,
    /// The key columns of an upsert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// A file path (template) to write instead of a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file format (default: from the path's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
}
