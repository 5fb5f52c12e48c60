//! Turns a parsed [`DagFile`] into a checked [`Dag`], collecting every problem
//! with the YAML path it concerns (the loader turns paths into line and column).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::file::{
    CommandSpec, ContractSpec, DagFile, ExpandSpec, FileFormat, ItemsSpec, KindName, NotifySpec,
    OutputSpec, ScheduleSpec, SourceSpec, TargetSpec, TaskFile,
};
use super::graph::{Cycle, DagGraph, EdgeKind};
use super::ids::{DagId, DatasetName, TaskId, Zone};
use super::{
    Backoff, Channel, Contract, CsvOptions, Dag, DagVersion, Deadline, Duration, Expand, Items,
    Notify, NotifyEvent, OutputChecks, RetryPolicy, Schedule, SensorCondition, Source, Target,
    Task, TaskKind,
};
use crate::template;

/// Where in the YAML a problem points: the key itself or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The mapping key (for keys that do not belong or are missing something).
    Key,
    /// The value (for values that are wrong).
    Value,
    /// The value, `n` lines further down (a line inside a multi-line template).
    ValueLine(usize),
}

/// One problem in a DAG file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The path of keys (and sequence indexes) from the document root.
    pub path: Vec<String>,
    /// Which part of the node the problem points at.
    pub anchor: Anchor,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl Problem {
    fn at(path: &[&str], anchor: Anchor, message: impl Into<String>) -> Self {
        Problem {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            anchor,
            message: message.into(),
        }
    }
}

/// Defaults that apply when neither the task nor `defaults:` says otherwise.
pub mod defaults {
    use super::Duration;
    /// Retries after the first try.
    pub const RETRIES: u32 = 0;
    /// Wait before a retry (Airflow's default: 5 minutes).
    pub const RETRY_DELAY: Duration = Duration::from_secs(300);
    /// Longest wait before a retry.
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);
    /// Active runs per DAG.
    pub const MAX_ACTIVE_RUNS: u32 = 16;
    /// Running tasks per DAG.
    pub const MAX_ACTIVE_TASKS: u32 = 16;
    /// Wait between sensor pokes.
    pub const POKE_INTERVAL: Duration = Duration::from_secs(60);
    /// The pool tasks use unless they name one.
    pub const POOL: &str = "default";
    /// The queue tasks wait in unless they name one.
    pub const QUEUE: &str = "default";
}

/// The DAG of a stored version: its definition (the DAG file as JSON, with
/// contract files inlined) read from `fileloc`.
pub fn from_definition(definition: &str, fileloc: &str) -> Result<Dag, String> {
    let file: DagFile = serde_json::from_str(definition).map_err(|e| e.to_string())?;
    to_dag(&file, Path::new(fileloc)).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| p.message)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Converts `file` (read from `fileloc`) into a [`Dag`]. Contract files must
/// already be inlined ([`ContractSpec::Inline`]).
pub fn to_dag(file: &DagFile, fileloc: &Path) -> Result<Dag, Vec<Problem>> {
    let mut problems = Vec::new();
    let id = match &file.dag {
        Some(id) => Some(id.clone()),
        None => {
            let stem = fileloc
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            match stem.parse::<DagId>() {
                Ok(id) => Some(id),
                Err(e) => {
                    problems.push(Problem::at(
                        &[],
                        Anchor::Key,
                        format!("{e}: the file name is not a valid DAG id; set `dag:`"),
                    ));
                    None
                }
            }
        }
    };
    let tz = file.timezone.unwrap_or_default().0;
    let start_date = file.start_date.as_ref().map(|d| d.resolve(tz));
    let end_date = file.end_date.as_ref().map(|d| d.resolve(tz));
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        problems.push(Problem::at(
            &["end_date"],
            Anchor::Value,
            "end_date is before start_date",
        ));
    }
    let schedule = match &file.schedule {
        ScheduleSpec::Manual => Schedule::Manual,
        ScheduleSpec::Once => Schedule::Once,
        ScheduleSpec::Cron(c) => Schedule::Cron(c.clone()),
        ScheduleSpec::Datasets(d) => Schedule::Datasets(d.clone()),
    };
    if matches!(schedule, Schedule::Once) && start_date.is_none() {
        problems.push(Problem::at(
            &["schedule"],
            Anchor::Value,
            "an @once schedule needs a start_date",
        ));
    }
    if let Some(queue) = &file.defaults.queue {
        if queue.trim().is_empty() {
            problems.push(Problem::at(
                &["defaults", "queue"],
                Anchor::Value,
                "queue must not be empty",
            ));
        }
        check_queue(&["defaults", "queue"], queue, &mut problems);
    }
    for (key, v) in [
        ("max_active_runs", file.max_active_runs),
        ("max_active_tasks", file.max_active_tasks),
    ] {
        if v == Some(0) {
            problems.push(Problem::at(
                &[key],
                Anchor::Value,
                format!("{key} must be at least 1"),
            ));
        }
    }
    if file.tasks.is_empty() {
        problems.push(Problem::at(
            &["tasks"],
            Anchor::Key,
            "a DAG needs at least one task under `tasks`",
        ));
    }

    let dag_notify: Vec<Notify> = file
        .notify
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            to_notify(
                &["notify".to_owned(), i.to_string()],
                n,
                true,
                &mut problems,
            )
        })
        .collect();
    let fires_on_deadline = dag_notify
        .iter()
        .any(|n| n.on.contains(&NotifyEvent::DeadlineMissed));
    if fires_on_deadline && file.deadline.is_none() {
        problems.push(Problem::at(
            &["notify"],
            Anchor::Key,
            "a notification on deadline_missed needs a `deadline:` on the DAG",
        ));
    }
    let mut tasks = indexmap::IndexMap::with_capacity(file.tasks.len());
    for (tid, tf) in &file.tasks {
        if let Some(task) = to_task(file, tid, tf, &mut problems) {
            tasks.insert(tid.clone(), task);
        }
    }
    let graph = if tasks.len() == file.tasks.len() {
        build_graph(&tasks, &mut problems)
    } else {
        None
    };
    if let Some(graph) = &graph {
        resolve_output_reads(file, &mut tasks, graph, &mut problems);
        link_mapped_inputs(&mut tasks);
    }

    let definition = match serde_json::to_string(file) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem::at(
                &[],
                Anchor::Key,
                format!("cannot serialize the DAG: {e}"),
            ));
            String::new()
        }
    };
    match (id, graph) {
        (Some(id), Some(graph)) if problems.is_empty() => Ok(Dag {
            id,
            description: file.description.clone(),
            owner: file.owner.clone(),
            tags: file.tags.clone(),
            schedule,
            timezone: tz,
            start_date,
            end_date,
            catchup: file.catchup,
            paused: file.paused,
            max_active_runs: file.max_active_runs.unwrap_or(defaults::MAX_ACTIVE_RUNS),
            max_active_tasks: file.max_active_tasks.unwrap_or(defaults::MAX_ACTIVE_TASKS),
            dagrun_timeout: file.dagrun_timeout,
            notifies: !dag_notify.is_empty() || tasks.values().any(|t| !t.notify.is_empty()),
            notify: dag_notify,
            deadline: file.deadline.map(|d| Deadline {
                after: d.after,
                within: d.within,
            }),
            params: file.params.clone().into_iter().collect(),
            tasks,
            graph,
            fileloc: fileloc.to_path_buf(),
            version: DagVersion {
                // The file's place is part of the version: relative paths
                // (sources, contract files, shell commands) resolve against it.
                hash: hex(&Sha256::digest(
                    format!("{}\n{definition}", fileloc.display()).as_bytes(),
                )),
                definition,
                sources: Vec::new(),
            },
        }),
        _ => Err(problems),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of a task that belong only to some kinds, with whether they are set.
fn kind_keys(tf: &TaskFile) -> [(&'static str, bool, &'static [KindName]); 17] {
    use KindName::*;
    [
        ("command", tf.command.is_some(), &[Shell]),
        ("source", tf.source.is_some(), &[Extract]),
        (
            "output",
            tf.output.is_some(),
            &[Shell, Extract, Validate, Transform],
        ),
        ("input", tf.input.is_some(), &[Validate, Load]),
        (
            "contract",
            tf.contract.is_some(),
            &[Validate, Transform, Load],
        ),
        (
            "quarantine",
            tf.quarantine.is_some(),
            &[Validate, Transform],
        ),
        (
            "max_quarantined",
            tf.max_quarantined.is_some(),
            &[Validate, Transform],
        ),
        ("inputs", tf.inputs.is_some(), &[Transform]),
        (
            "metadata",
            tf.metadata.is_some(),
            &[Extract, Validate, Transform],
        ),
        (
            "unchecked_inputs",
            tf.unchecked_inputs.is_some(),
            &[Transform, Load],
        ),
        ("sql", tf.sql.is_some(), &[Transform, Sensor]),
        ("target", tf.target.is_some(), &[Load]),
        ("file", tf.file.is_some(), &[Sensor]),
        ("dataset", tf.dataset.is_some(), &[Sensor]),
        ("connection", tf.connection.is_some(), &[Sensor]),
        ("poke_interval", tf.poke_interval.is_some(), &[Sensor]),
        // A mapped data task would write its one dataset once per item.
        ("expand", tf.expand.is_some(), &[Shell]),
    ]
}

fn to_task(
    file: &DagFile,
    tid: &TaskId,
    tf: &TaskFile,
    problems: &mut Vec<Problem>,
) -> Option<Task> {
    let t = tid.as_str();
    let before = problems.len();
    let kind_name = tf.kind.as_str();
    for (key, set, kinds) in kind_keys(tf) {
        if set && !kinds.contains(&tf.kind) {
            let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            problems.push(Problem::at(
                &["tasks", t, key],
                Anchor::Key,
                format!(
                    "`{key}` is not a key of a {kind_name} task (it belongs to {} tasks)",
                    owners.join("/")
                ),
            ));
        }
    }
    let cx = KindContext { t, kind_name, tf };
    let kind = match tf.kind {
        KindName::Shell => shell_kind(&cx, problems),
        KindName::Extract => extract_kind(&cx, problems),
        KindName::Validate => validate_kind(&cx, problems),
        KindName::Transform => transform_kind(&cx, problems),
        KindName::Load => load_kind(&cx, problems),
        KindName::Sensor => sensor_kind(&cx, problems),
    };
    for (name, value) in &tf.env {
        check_template(&["tasks", t, "env", name], value, problems);
    }
    let expand = tf.expand.as_ref().and_then(|e| to_expand(t, e, problems));
    for (key, value) in [("pool", &tf.pool), ("queue", &tf.queue)] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(Problem::at(
                &["tasks", t, key],
                Anchor::Value,
                format!("{key} must not be empty"),
            ));
        }
    }
    if let Some(queue) = &tf.queue {
        check_queue(&["tasks", t, "queue"], queue, problems);
    }
    let d = &file.defaults;
    let retry = RetryPolicy {
        retries: tf.retries.or(d.retries).unwrap_or(defaults::RETRIES),
        delay: tf
            .retry_delay
            .or(d.retry_delay)
            .unwrap_or(defaults::RETRY_DELAY),
        backoff: tf
            .retry_backoff
            .or(d.retry_backoff)
            .unwrap_or(Backoff::Fixed),
        max_delay: tf
            .max_retry_delay
            .or(d.max_retry_delay)
            .unwrap_or(defaults::MAX_RETRY_DELAY),
    };
    if problems.len() > before {
        return None;
    }
    Some(Task {
        id: tid.clone(),
        description: tf.description.clone(),
        kind: kind?,
        depends_on: tf.depends_on.clone(),
        trigger_rule: tf.trigger_rule.unwrap_or_default(),
        retry,
        timeout: tf.timeout.or(d.timeout),
        pool: tf
            .pool
            .clone()
            .or_else(|| d.pool.clone())
            .unwrap_or_else(|| defaults::POOL.to_owned()),
        queue: tf
            .queue
            .clone()
            .or_else(|| d.queue.clone())
            .unwrap_or_else(|| defaults::QUEUE.to_owned()),
        priority: tf.priority.or(d.priority).unwrap_or(0),
        env: tf.env.clone(),
        reads_outputs: Vec::new(),
        metadata: tf.metadata.clone(),
        expand,
        feeds_maps: Vec::new(),
        notify: tf
            .notify
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                to_notify(
                    &["tasks".into(), t.into(), "notify".into(), i.to_string()],
                    n,
                    false,
                    problems,
                )
            })
            .collect(),
    })
}

/// A mapped task's checked expansion, or `None` with its problems recorded.
fn to_expand(t: &str, e: &ExpandSpec, problems: &mut Vec<Problem>) -> Option<Expand> {
    let before = problems.len();
    let at = |key: &'static str| ["tasks", t, "expand", key];
    let max_items = e.max_items.unwrap_or(super::DEFAULT_MAX_ITEMS);
    for (key, value) in [("max_active", e.max_active), ("max_items", e.max_items)] {
        if value == Some(0) {
            problems.push(Problem::at(
                &at(key),
                Anchor::Value,
                format!("{key} must be at least 1"),
            ));
        }
    }
    let items = match &e.items {
        ItemsSpec::List(list) => {
            if list.len() > max_items as usize {
                problems.push(Problem::at(
                    &at("items"),
                    Anchor::Key,
                    format!(
                        "the list has {} items; a mapped task expands into at most {max_items} (raise expand.max_items)",
                        list.len()
                    ),
                ));
            }
            Items::List(list.clone())
        }
        ItemsSpec::Expression(text) => match template::lone_expression(text) {
            Some(expr) => {
                if let Err(e) = template::check_expression(expr) {
                    problems.push(Problem::at(
                        &at("items"),
                        Anchor::Value,
                        format!("template: {}", e.message),
                    ));
                }
                Items::Expression(expr.to_owned())
            }
            None => {
                problems.push(Problem::at(
                    &at("items"),
                    Anchor::Value,
                    "items must be a list, or one expression `{{ … }}` that gives a list, such as `{{ tasks.list_files.output }}` or `{{ params.regions }}`",
                ));
                return None;
            }
        },
    };
    (problems.len() == before).then_some(Expand {
        items,
        max_active: e.max_active,
        max_items,
    })
}

/// Records on each task the mapped tasks that expand over its output.
fn link_mapped_inputs(tasks: &mut indexmap::IndexMap<TaskId, Task>) {
    let mut feeds: Vec<(TaskId, TaskId)> = Vec::new();
    for (id, task) in tasks.iter() {
        let Some(Expand {
            items: Items::Expression(expr),
            ..
        }) = &task.expand
        else {
            continue;
        };
        let mut reads = template::OutputReads::default();
        reads.add(&format!("{{{{ {expr} }}}}"));
        for upstream in reads.named {
            if let Some((up, _)) = tasks.get_key_value(upstream.as_str()) {
                feeds.push((up.clone(), id.clone()));
            }
        }
    }
    for (up, mapped) in feeds {
        if let Some(t) = tasks.get_mut(&up) {
            t.feeds_maps.push(mapped);
        }
    }
}

/// A checked notification rule at `path`, or `None` with its problems
/// recorded; `deadline_missed` is a DAG's event only.
fn to_notify(
    path: &[String],
    n: &NotifySpec,
    on_dag: bool,
    problems: &mut Vec<Problem>,
) -> Option<Notify> {
    fn at<'a>(path: &'a [String], key: &'a str) -> Vec<&'a str> {
        let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
        if !key.is_empty() {
            p.push(key);
        }
        p
    }
    let at = |key: &'static str| at(path, key);
    let before = problems.len();
    if n.on.is_empty() {
        problems.push(Problem::at(
            &at("on"),
            Anchor::Value,
            "`on` names no event (failure, retry, success, deadline_missed)",
        ));
    }
    if !on_dag && n.on.contains(&NotifyEvent::DeadlineMissed) {
        problems.push(Problem::at(
            &at("on"),
            Anchor::Value,
            "deadline_missed is a DAG's event: put this notification under the DAG's `notify`",
        ));
    }
    let channels = [n.webhook.is_some(), n.email.is_some(), n.command.is_some()];
    if channels.iter().filter(|c| **c).count() != 1 {
        problems.push(Problem::at(
            &at(""),
            Anchor::Key,
            "a notification needs exactly one of `webhook`, `email` or `command`",
        ));
    }
    if let Some(m) = &n.message {
        check_template(&at("message"), m, problems);
    }
    let channel = match (&n.webhook, &n.email, &n.command) {
        (Some(url), _, _) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(Problem::at(
                    &at("webhook"),
                    Anchor::Value,
                    format!("webhook `{url}` is not an http:// or https:// URL"),
                ));
            }
            Channel::Webhook(url.clone())
        }
        (_, Some(to), _) => {
            if to.is_empty() {
                problems.push(Problem::at(
                    &at("email"),
                    Anchor::Value,
                    "`email` names no address",
                ));
            }
            for addr in to {
                let ok = addr.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') || host == "localhost"
                }) && !addr.contains([' ', ',', '<', '>', '\r', '\n']);
                if !ok {
                    problems.push(Problem::at(
                        &at("email"),
                        Anchor::Value,
                        format!("`{addr}` is not an e-mail address"),
                    ));
                }
            }
            Channel::Email(to.clone())
        }
        (_, _, Some(c)) => {
            match c {
                CommandSpec::Shell(s) => check_template(&at("command"), s, problems),
                CommandSpec::Exec(args) => {
                    for (i, a) in args.iter().enumerate() {
                        let i = i.to_string();
                        let mut p = at("command");
                        p.push(&i);
                        check_template(&p, a, problems);
                    }
                }
            }
            Channel::Command(c.clone())
        }
        _ => return None,
    };
    (problems.len() == before).then(|| Notify {
        on: n.on.clone(),
        channel,
        message: n.message.clone(),
    })
}

/// Finds the task outputs each task's templates read (`tasks.<id>`) and
/// checks that each names a task that runs before it; `tasks` reached some
/// other way (`tasks['<id>']`, a loop) reads every upstream task.
fn resolve_output_reads(
    file: &DagFile,
    tasks: &mut indexmap::IndexMap<TaskId, Task>,
    graph: &DagGraph,
    problems: &mut Vec<Problem>,
) {
    for (i, (tid, tf)) in file.tasks.iter().enumerate() {
        let mut reads = crate::template::OutputReads::default();
        if let Ok(value) = serde_json::to_value(tf) {
            each_string(&value, &mut |s| reads.add(s));
        }
        // What the task runs (its notifications' text aside, where
        // `map_index` may be asked about) reads an item only when mapped.
        let mut reads_item = false;
        if tf.expand.is_none() {
            let runs = TaskFile {
                notify: Vec::new(),
                ..tf.clone()
            };
            if let Ok(value) = serde_json::to_value(&runs) {
                each_string(&value, &mut |s| {
                    reads_item |= template::reads_any(s, &["item", "map_index"]);
                });
            }
        }
        if reads_item {
            problems.push(Problem::at(
                &["tasks", tid.as_str()],
                Anchor::Key,
                "a template reads `item` or `map_index`, which only a mapped task has (add `expand:`)",
            ));
        }
        if reads.named.is_empty() && !reads.unnamed {
            continue;
        }
        let upstream: std::collections::BTreeSet<usize> =
            graph.all_upstream(i).into_iter().collect();
        let mut read: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
        for name in &reads.named {
            let at = ["tasks", tid.as_str()];
            match tasks.get_index_of(name.as_str()) {
                Some(j) if j == i => problems.push(Problem::at(
                    &at,
                    Anchor::Key,
                    format!("a template reads `tasks.{name}`: a task cannot read its own output"),
                )),
                Some(j) if upstream.contains(&j) => {
                    read.insert(j);
                }
                Some(_) => problems.push(Problem::at(
                    &at,
                    Anchor::Key,
                    format!(
                        "a template reads the output of `{name}`, which does not run before `{tid}` (add `{name}` to depends_on)"
                    ),
                )),
                None => {
                    let hint = crate::suggest::closest(name, tasks.keys().map(TaskId::as_str))
                        .map(|c| format!(" (did you mean `{c}`? an id with `-` or `.` is read as tasks['{c}'])"))
                        .unwrap_or_default();
                    problems.push(Problem::at(
                        &at,
                        Anchor::Key,
                        format!("a template reads `tasks.{name}`, but this DAG has no task `{name}`{hint}"),
                    ));
                }
            }
        }
        if reads.unnamed {
            read.extend(upstream);
        }
        let ids: Vec<TaskId> = read
            .into_iter()
            .filter_map(|j| tasks.get_index(j).map(|(id, _)| id.clone()))
            .collect();
        if let Some(task) = tasks.get_mut(tid) {
            task.reads_outputs = ids;
        }
    }
}

/// Calls `f` with every string inside `value` except descriptions (text
/// for people, never rendered).
fn each_string(value: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| each_string(v, f)),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "description")
            .for_each(|(_, v)| each_string(v, f)),
        _ => {}
    }
}

/// Whether `queue` is a queue name: letters, digits, `-`, `_` and `.` (workers
/// list queues separated by commas).
pub fn is_queue_name(queue: &str) -> bool {
    !queue.is_empty()
        && queue
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_queue(path: &[&str], queue: &str, problems: &mut Vec<Problem>) {
    if !queue.trim().is_empty() && !is_queue_name(queue) {
        problems.push(Problem::at(
            path,
            Anchor::Value,
            format!("queue `{queue}` may use only letters, digits, `-`, `_` and `.`"),
        ));
    }
}

/// What the per-kind conversions share: the task's id, kind and file entry.
struct KindContext<'a> {
    t: &'a str,
    kind_name: &'a str,
    tf: &'a TaskFile,
}

impl KindContext<'_> {
    /// The dataset a data task's `output` names, with whether it is usable
    /// (set, and not a shell task's `last_line`).
    fn dataset_output(&self, problems: &mut Vec<Problem>) -> (bool, Option<&DatasetName>) {
        match &self.tf.output {
            Some(OutputSpec::Dataset(d)) => (true, Some(d)),
            Some(OutputSpec::LastLine) => {
                problems.push(Problem::at(
                    &["tasks", self.t, "output"],
                    Anchor::Value,
                    format!(
                        "`last_line` is for shell tasks; the `output` of {} tasks names the dataset they write (`zone.name`)",
                        self.kind_name
                    ),
                ));
                (false, None)
            }
            None => (self.need(problems, "output", false), None),
        }
    }

    /// Records that the kind needs `key` when it is not `set`; returns `set`.
    fn need(&self, problems: &mut Vec<Problem>, key: &str, set: bool) -> bool {
        if !set {
            problems.push(Problem::at(
                &["tasks", self.t],
                Anchor::Key,
                format!("a {} task needs `{key}`", self.kind_name),
            ));
        }
        set
    }

    /// The quality gate: of `inputs` (values of `inputs` or `input`), those in
    /// a zone no contract has checked (raw, quarantine) must be named under
    /// `unchecked_inputs`, and every name there must be one of them. Returns
    /// the unchecked inputs.
    fn unchecked(&self, problems: &mut Vec<Problem>, inputs: &[DatasetName]) -> Vec<DatasetName> {
        let named = self.tf.unchecked_inputs.as_deref().unwrap_or_default();
        let key = if self.tf.inputs.is_some() {
            "inputs"
        } else {
            "input"
        };
        let mut out = Vec::new();
        for (i, ds) in inputs.iter().enumerate() {
            if !matches!(ds.zone(), Zone::Raw | Zone::Quarantine) {
                continue;
            }
            if named.contains(ds) {
                out.push(ds.clone());
                continue;
            }
            let path: Vec<String> = if key == "inputs" {
                vec!["tasks".into(), self.t.into(), key.into(), i.to_string()]
            } else {
                vec!["tasks".into(), self.t.into(), key.into()]
            };
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            problems.push(Problem::at(
                &path,
                Anchor::Value,
                format!(
                    "a {} task reads `{ds}`, which no contract has checked: read the clean \
                     dataset a validate task writes, or name `{ds}` under `unchecked_inputs` \
                     to read it as it is",
                    self.kind_name
                ),
            ));
        }
        for (i, ds) in named.iter().enumerate() {
            if !inputs.contains(ds) {
                problems.push(Problem::at(
                    &["tasks", self.t, "unchecked_inputs", &i.to_string()],
                    Anchor::Value,
                    format!("`unchecked_inputs` names `{ds}`, which this task does not read"),
                ));
            } else if !matches!(ds.zone(), Zone::Raw | Zone::Quarantine) {
                problems.push(Problem::at(
                    &["tasks", self.t, "unchecked_inputs", &i.to_string()],
                    Anchor::Value,
                    format!("`{ds}` is checked data: only raw and quarantine datasets go under `unchecked_inputs`"),
                ));
            }
        }
        out
    }

    /// The contract of `contract:` (inline by now: the loader reads files);
    /// `None` with its problems recorded.
    fn contract(
        &self,
        problems: &mut Vec<Problem>,
        contract: &ContractSpec,
    ) -> Option<Box<Contract>> {
        match contract {
            ContractSpec::Inline(c) => {
                let before = problems.len();
                for (path, msg) in c.problems() {
                    let mut full =
                        vec!["tasks".to_owned(), self.t.to_owned(), "contract".to_owned()];
                    full.extend(path);
                    problems.push(Problem {
                        path: full,
                        anchor: Anchor::Value,
                        message: msg,
                    });
                }
                (problems.len() == before).then(|| c.clone())
            }
            ContractSpec::File(p) => {
                problems.push(Problem::at(
                    &["tasks", self.t, "contract"],
                    Anchor::Value,
                    format!("contract file `{p}` was not read"),
                ));
                None
            }
        }
    }

    /// The contract a task checks `output` with, its quarantine (default
    /// `quarantine.<output name>`) and its `max_quarantined`; `None` with the
    /// contract's problems recorded.
    fn output_checks(
        &self,
        problems: &mut Vec<Problem>,
        contract: &ContractSpec,
        output: &DatasetName,
    ) -> Option<OutputChecks> {
        let quarantine = self
            .tf
            .quarantine
            .clone()
            .unwrap_or_else(|| output.quarantine_of());
        self.zone(problems, "quarantine", &quarantine, Zone::Quarantine);
        Some(OutputChecks {
            contract: self.contract(problems, contract)?,
            quarantine,
            max_quarantined: self.tf.max_quarantined,
        })
    }

    /// Records a problem when `ds` (the value of `key`) is not in `zone`.
    fn zone(&self, problems: &mut Vec<Problem>, key: &str, ds: &DatasetName, zone: Zone) {
        if ds.zone() != zone {
            problems.push(Problem::at(
                &["tasks", self.t, key],
                Anchor::Value,
                format!(
                    "a {} task's `{key}` must be in the {zone} zone, not `{ds}`",
                    self.kind_name
                ),
            ));
        }
    }
}

/// Records a template syntax error at `path`, on the template's own line.
fn check_template(path: &[&str], src: &str, problems: &mut Vec<Problem>) {
    if let Err(e) = template::check_syntax(src) {
        problems.push(Problem::at(
            path,
            Anchor::ValueLine(e.line - 1),
            format!("template: {}", e.message),
        ));
    }
}
/// The `shell` kind of a task, or `None` with its problems recorded.
fn shell_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    cx.need(problems, "command", cx.tf.command.is_some());
    let last_line = match &cx.tf.output {
        None => false,
        Some(OutputSpec::LastLine) => true,
        Some(OutputSpec::Dataset(d)) => {
            problems.push(Problem::at(
                &["tasks", cx.t, "output"],
                Anchor::Value,
                format!(
                    "a shell task writes no dataset: `output` is `last_line` (or write JSON to $WEIR_OUTPUT), not `{d}`"
                ),
            ));
            false
        }
    };
    match &cx.tf.command {
        Some(CommandSpec::Shell(s)) => {
            check_template(&["tasks", cx.t, "command"], s, problems);
            Some(TaskKind::Shell {
                command: CommandSpec::Shell(s.clone()),
                last_line,
            })
        }
        Some(CommandSpec::Exec(args)) => {
            if args.is_empty() {
                problems.push(Problem::at(
                    &["tasks", cx.t, "command"],
                    Anchor::Value,
                    "the command list is empty",
                ));
            }
            for (i, a) in args.iter().enumerate() {
                check_template(&["tasks", cx.t, "command", &i.to_string()], a, problems);
            }
            Some(TaskKind::Shell {
                command: CommandSpec::Exec(args.clone()),
                last_line,
            })
        }
        None => None,
    }
}

/// The `extract` kind of a task, or `None` with its problems recorded.
fn extract_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    let s = cx.need(problems, "source", cx.tf.source.is_some());
    let (o, output) = cx.dataset_output(problems);
    match (&cx.tf.source, output, s && o) {
        (Some(src), Some(output), true) => {
            cx.zone(problems, "output", output, Zone::Raw);
            to_source(cx.t, src, problems, &mut check_template).map(|source| TaskKind::Extract {
                source,
                output: output.clone(),
            })
        }
        _ => None,
    }
}

/// The `validate` kind of a task, or `None` with its problems recorded.
fn validate_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    let (o, output) = cx.dataset_output(problems);
    let ok = [
        cx.need(problems, "input", cx.tf.input.is_some()),
        cx.need(problems, "contract", cx.tf.contract.is_some()),
        o,
    ];
    match (&cx.tf.input, &cx.tf.contract, output) {
        (Some(input), Some(contract), Some(output)) if ok.iter().all(|b| *b) => {
            cx.zone(problems, "output", output, Zone::Clean);
            Some(TaskKind::Validate {
                input: input.clone(),
                output: output.clone(),
                checks: cx.output_checks(problems, contract, output)?,
            })
        }
        _ => None,
    }
}

/// The `transform` kind of a task, or `None` with its problems recorded.
fn transform_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    let (o, output) = cx.dataset_output(problems);
    let ok = [
        cx.need(problems, "inputs", cx.tf.inputs.is_some()),
        cx.need(problems, "sql", cx.tf.sql.is_some()),
        o,
    ];
    match (&cx.tf.inputs, &cx.tf.sql, output) {
        (Some(inputs), Some(sql), Some(output)) if ok.iter().all(|b| *b) => {
            cx.zone(problems, "output", output, Zone::Curated);
            if inputs.is_empty() {
                problems.push(Problem::at(
                    &["tasks", cx.t, "inputs"],
                    Anchor::Value,
                    "a transform needs at least one input dataset",
                ));
            }
            check_template(&["tasks", cx.t, "sql"], sql, problems);
            let unchecked = cx.unchecked(problems, inputs);
            let checks = match &cx.tf.contract {
                Some(contract) => Some(Box::new(cx.output_checks(problems, contract, output)?)),
                None => {
                    let set = [
                        ("quarantine", cx.tf.quarantine.is_some()),
                        ("max_quarantined", cx.tf.max_quarantined.is_some()),
                    ];
                    for (key, _) in set.into_iter().filter(|(_, set)| *set) {
                        problems.push(Problem::at(
                            &["tasks", cx.t, key],
                            Anchor::Key,
                            format!("`{key}` needs a `contract` to check the output with"),
                        ));
                    }
                    None
                }
            };
            Some(TaskKind::Transform {
                inputs: inputs.clone(),
                unchecked,
                checks,
                sql: sql.clone(),
                output: output.clone(),
            })
        }
        _ => None,
    }
}

/// The `load` kind of a task, or `None` with its problems recorded.
fn load_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    let ok = [
        cx.need(problems, "input", cx.tf.input.is_some()),
        cx.need(problems, "target", cx.tf.target.is_some()),
    ];
    match (&cx.tf.input, &cx.tf.target) {
        (Some(input), Some(target)) if ok.iter().all(|b| *b) => {
            let unchecked = !cx
                .unchecked(problems, std::slice::from_ref(input))
                .is_empty();
            let contract = match &cx.tf.contract {
                Some(c) => Some(cx.contract(problems, c)?),
                None => None,
            };
            to_target(cx.t, target, problems, &mut check_template).map(|target| TaskKind::Load {
                input: input.clone(),
                unchecked,
                contract,
                target,
            })
        }
        _ => None,
    }
}

/// The `sensor` kind of a task, or `None` with its problems recorded.
fn sensor_kind(cx: &KindContext<'_>, problems: &mut Vec<Problem>) -> Option<TaskKind> {
    let set: Vec<&str> = [
        ("file", cx.tf.file.is_some()),
        ("dataset", cx.tf.dataset.is_some()),
        ("sql", cx.tf.sql.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.then_some(k))
    .collect();
    let condition = match (set.as_slice(), &cx.tf.file, &cx.tf.dataset, &cx.tf.sql) {
        (["file"], Some(f), _, _) => {
            check_template(&["tasks", cx.t, "file"], f, problems);
            Some(SensorCondition::File(f.clone()))
        }
        (["dataset"], _, Some(d), _) => Some(SensorCondition::Dataset(d.clone())),
        (["sql"], _, _, Some(sql)) => {
            check_template(&["tasks", cx.t, "sql"], sql, problems);
            match &cx.tf.connection {
                Some(c) => Some(SensorCondition::Sql {
                    sql: sql.clone(),
                    connection: c.clone(),
                }),
                None => {
                    problems.push(Problem::at(
                        &["tasks", cx.t],
                        Anchor::Key,
                        "a sensor with `sql` needs `connection`",
                    ));
                    None
                }
            }
        }
        _ => {
            problems.push(Problem::at(
                &["tasks", cx.t],
                Anchor::Key,
                "a sensor needs exactly one of `file`, `dataset` or `sql`",
            ));
            None
        }
    };
    condition.map(|condition| TaskKind::Sensor {
        condition,
        poke_interval: cx.tf.poke_interval.unwrap_or(defaults::POKE_INTERVAL),
    })
}

type TemplateCheck<'a> = dyn FnMut(&[&str], &str, &mut Vec<Problem>) + 'a;

fn format_of(path: &str) -> Option<FileFormat> {
    let lower = path.to_ascii_lowercase();
    [
        (".csv", FileFormat::Csv),
        (".ndjson", FileFormat::Ndjson),
        (".jsonl", FileFormat::Ndjson),
        (".json", FileFormat::Json),
        (".parquet", FileFormat::Parquet),
    ]
    .into_iter()
    .find(|(ext, _)| lower.ends_with(ext))
    .map(|(_, f)| f)
}

fn to_source(
    t: &str,
    src: &SourceSpec,
    problems: &mut Vec<Problem>,
    check: &mut TemplateCheck<'_>,
) -> Option<Source> {
    let at = |k: &str| ["tasks", t, "source", k].map(str::to_owned).to_vec();
    match (&src.path, &src.sql) {
        (Some(path), None) => {
            check(&["tasks", t, "source", "path"], path, problems);
            let Some(format) = src.format.or_else(|| format_of(path)) else {
                problems.push(Problem { path: at("path"), anchor: Anchor::Value, message: format!("cannot tell the format of `{path}`; set `format:` (csv, json, ndjson or parquet)") });
                return None;
            };
            let ascii =
                |key: &str, c: Option<char>, default: u8, problems: &mut Vec<Problem>| match c {
                    None => Some(default),
                    Some(c) if c.is_ascii() => Some(c as u8),
                    Some(c) => {
                        problems.push(Problem {
                            path: at(key),
                            anchor: Anchor::Value,
                            message: format!("`{c}` is not a single ASCII character"),
                        });
                        None
                    }
                };
            let delimiter = ascii("delimiter", src.delimiter, b',', problems)?;
            let quote = ascii("quote", src.quote, b'"', problems)?;
            Some(Source::Files {
                format,
                path: path.clone(),
                csv: CsvOptions {
                    header: src.header.unwrap_or(true),
                    delimiter,
                    quote,
                    null_values: src
                        .null_values
                        .clone()
                        .unwrap_or_else(|| vec![String::new()]),
                },
            })
        }
        (None, Some(sql)) => {
            check(&["tasks", t, "source", "sql"], sql, problems);
            match &src.connection {
                Some(c) => Some(Source::Query {
                    sql: sql.clone(),
                    connection: c.clone(),
                }),
                None => {
                    problems.push(Problem {
                        path: at("sql"),
                        anchor: Anchor::Key,
                        message: "a SQL source needs `connection`".into(),
                    });
                    None
                }
            }
        }
        _ => {
            problems.push(Problem::at(
                &["tasks", t, "source"],
                Anchor::Key,
                "a source needs exactly one of `path` or `sql`",
            ));
            None
        }
    }
}

fn to_target(
    t: &str,
    tg: &TargetSpec,
    problems: &mut Vec<Problem>,
    check: &mut TemplateCheck<'_>,
) -> Option<Target> {
    match (&tg.connection, &tg.table, &tg.path) {
        (Some(connection), Some(table), None) => {
            if tg.mode == super::LoadMode::Upsert && tg.key.is_empty() {
                problems.push(Problem::at(
                    &["tasks", t, "target", "mode"],
                    Anchor::Value,
                    "mode upsert needs `key` (the key columns)",
                ));
                return None;
            }
            Some(Target::Table {
                connection: connection.clone(),
                table: table.clone(),
                mode: tg.mode,
                key: tg.key.clone(),
            })
        }
        (None, None, Some(path)) => {
            check(&["tasks", t, "target", "path"], path, problems);
            match tg.format.or_else(|| format_of(path)) {
                Some(format) => Some(Target::File {
                    path: path.clone(),
                    format,
                }),
                None => {
                    problems.push(Problem::at(
                        &["tasks", t, "target", "path"],
                        Anchor::Value,
                        format!("cannot tell the format of `{path}`; set `format:`"),
                    ));
                    None
                }
            }
        }
        _ => {
            problems.push(Problem::at(
                &["tasks", t, "target"],
                Anchor::Key,
                "a target needs `connection` and `table`, or `path`",
            ));
            None
        }
    }
}

fn build_graph(
    tasks: &indexmap::IndexMap<TaskId, Task>,
    problems: &mut Vec<Problem>,
) -> Option<DagGraph> {
    let mut edges = Vec::new();
    let mut writers: HashMap<&DatasetName, usize> = HashMap::new();
    for (i, task) in tasks.values().enumerate() {
        for ds in task.writes() {
            if let Some(&other) = writers.get(ds) {
                let (_, first) = tasks.get_index(other)?;
                problems.push(Problem::at(
                    &["tasks", task.id.as_str()],
                    Anchor::Key,
                    format!(
                        "dataset `{ds}` is written by both `{}` and `{}`",
                        first.id, task.id
                    ),
                ));
            } else {
                writers.insert(ds, i);
            }
        }
    }
    for (i, task) in tasks.values().enumerate() {
        for (n, dep) in task.depends_on.iter().enumerate() {
            match tasks.get_index_of(dep) {
                Some(j) => edges.push((j, i, EdgeKind::Explicit)),
                None => {
                    let hint =
                        crate::suggest::closest(dep.as_str(), tasks.keys().map(TaskId::as_str))
                            .map(|c| format!(" (did you mean `{c}`?)"))
                            .unwrap_or_default();
                    problems.push(Problem::at(
                        &["tasks", task.id.as_str(), "depends_on", &n.to_string()],
                        Anchor::Value,
                        format!(
                            "task `{}` depends on `{dep}`, which is not a task of this DAG{hint}",
                            task.id
                        ),
                    ));
                }
            }
        }
        for ds in task.reads() {
            if let Some(&w) = writers.get(ds)
                && w != i
            {
                let kind = if task.reads_unchecked(ds) {
                    EdgeKind::UncheckedDataset
                } else {
                    EdgeKind::Dataset
                };
                edges.push((w, i, kind));
            }
        }
    }
    if !problems.is_empty() {
        return None;
    }
    match DagGraph::build(tasks.len(), &edges) {
        Ok(g) => Some(g),
        Err(Cycle(nodes)) => {
            let names: Vec<&str> = nodes
                .iter()
                .filter_map(|&n| tasks.get_index(n).map(|(k, _)| k.as_str()))
                .collect();
            let first = names.first().copied().unwrap_or_default();
            problems.push(Problem::at(
                &["tasks", first],
                Anchor::Key,
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
            None
        }
    }
}
