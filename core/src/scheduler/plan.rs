//! The scheduling rules as a pure function: given a DAG, a snapshot of one of
//! its runs and what just happened, which task instances move where and
//! whether the run ends. The store applies the result in the same
//! transaction that read the snapshot.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::dag::{Dag, NotifyEvent, TriggerRule};
use crate::state::{RunState, TaskState};
use crate::store::{
    Expansion, FanIn, Notice, Plan, Planned, Refusal, RunSnapshot, Scope, TaskChange,
};

/// The task instances `action` needs to read: for a finished try, the task,
/// the tasks downstream of it (all of them when it failed, since failures and
/// skips cascade; none for a sensor's reschedule) and their upstream tasks;
/// everything otherwise.
pub fn scope(dag: &Dag, action: &Action) -> Scope {
    let Action::Finish {
        task_id,
        map_index,
        outcome,
        ..
    } = action
    else {
        return Scope::All;
    };
    let Some(i) = dag.tasks.get_index_of(task_id.as_str()) else {
        return Scope::All;
    };
    let down = match outcome {
        Outcome::Success | Outcome::Expanded(_) => dag.graph.downstream(i),
        Outcome::Failed => dag.graph.all_downstream(i),
        // A sensor that waits changes no other task.
        Outcome::Reschedule(_) => Vec::new(),
    };
    let mut need: Vec<usize> = vec![i];
    let mut fan_ins = Vec::new();
    for &d in &down {
        need.push(d);
        let upstream = dag.graph.upstream(d);
        if upstream.len() > FAN_IN_ROWS {
            fan_ins.push(FanIn {
                task_id: id_at(dag, d),
                upstream: upstream.into_iter().map(|u| id_at(dag, u)).collect(),
            });
        } else {
            need.extend(upstream);
        }
    }
    need.sort_unstable();
    need.dedup();
    // A mapped instance without `max_active` needs its siblings' states
    // only, not their rows: those can be many more than the DAG's tasks.
    let siblings = (*map_index >= 0
        && dag
            .task_at(i)
            .and_then(|t| t.expand.as_ref())
            .is_some_and(|e| e.max_active.is_none()))
    .then(|| (task_id.clone(), *map_index));
    // Most of the run anyway: one plain read is cheaper than a long key list.
    if siblings.is_none() && need.len() * 2 > dag.tasks.len() {
        return Scope::All;
    }
    Scope::Tasks {
        tasks: need.into_iter().map(|n| id_at(dag, n)).collect(),
        fan_ins,
        siblings,
    }
}

/// Beyond this many upstream tasks, a downstream task's trigger rule is
/// evaluated on counts of their states instead of their rows (see
/// [`crate::store::FanInCounts`]).
pub const FAN_IN_ROWS: usize = 8;

fn id_at(dag: &Dag, i: usize) -> String {
    dag.task_at(i).map(|t| t.id.to_string()).unwrap_or_default()
}

/// How a try ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed (exit code, timeout, error, lost lease).
    Failed,
    /// A sensor's condition is not met yet: poke again at this time.
    Reschedule(DateTime<Utc>),
    /// A mapped task's own try found its items: this many mapped instances
    /// run them (none: the task is skipped). The items are the try's output.
    Expanded(usize),
}

/// How a try ended, as the worker that ran it tells: the one description
/// every layer uses. Workers build it, the planner reads its outcome, and
/// the store records the rest with the try.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// Success, failure, or a sensor's next poke.
    pub outcome: Outcome,
    /// The exit code, when the try ran a process.
    pub exit_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The process id, when the try ran a process.
    pub pid: Option<i64>,
    /// The JSON text of the value the try published (its output), checked
    /// by [`crate::outputs::check`].
    pub output: Option<String>,
}

impl Ended {
    /// A try that succeeded without a process of its own.
    pub fn success() -> Ended {
        Ended {
            outcome: Outcome::Success,
            exit_code: None,
            error: None,
            pid: None,
            output: None,
        }
    }

    /// A try that failed for `error`, without a process of its own.
    pub fn failed(error: impl Into<String>) -> Ended {
        Ended {
            outcome: Outcome::Failed,
            exit_code: None,
            error: Some(error.into()),
            pid: None,
            output: None,
        }
    }

    /// A mapped task's expansion over `items`: its output is the list.
    pub fn expanded(items: Vec<serde_json::Value>) -> Result<Ended, crate::outputs::OutputError> {
        let count = items.len();
        Ok(Ended {
            outcome: Outcome::Expanded(count),
            output: Some(crate::outputs::encode(&serde_json::Value::Array(items))?),
            ..Ended::success()
        })
    }

    /// A sensor whose condition is not met yet: poke again at `at`.
    pub fn reschedule(at: DateTime<Utc>) -> Ended {
        Ended {
            outcome: Outcome::Reschedule(at),
            exit_code: None,
            error: None,
            pid: None,
            output: None,
        }
    }
}

/// Which task instances of a run to clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearSpec {
    /// The tasks asked for.
    pub task_ids: Vec<String>,
    /// Also every task downstream of them.
    pub downstream: bool,
    /// Also every task upstream of them.
    pub upstream: bool,
    /// Only tasks that failed (failed or upstream_failed).
    pub only_failed: bool,
    /// Mapped instances named one by one (task, map index): of a task named
    /// here only these instances are cleared, not the task's expansion.
    pub instances: Vec<(String, i64)>,
}

/// What happened to the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The run may start: `queued → running`, then its ready tasks are scheduled.
    Start,
    /// Nothing new; schedule what is ready (due retries included) and close the run if done.
    Evaluate,
    /// A try ended.
    Finish {
        /// The task.
        task_id: String,
        /// Which of its instances (-1: the task's own).
        map_index: i64,
        /// The try that ended.
        try_number: i64,
        /// How.
        outcome: Outcome,
        /// A factor in [0, 1) spreading exponential retries (jitter).
        jitter: f64,
    },
    /// Clear tasks back to `none` so they run again (a new try), reopening the run.
    Clear(ClearSpec),
    /// Set a task's state by hand (success or failed).
    Mark {
        /// The task.
        task_id: String,
        /// Which of its instances; -1 names the task: all its mapped
        /// instances when it expanded.
        map_index: i64,
        /// The new state.
        state: TaskState,
    },
    /// Set the run's state by hand, or fail it for running too long: unfinished
    /// tasks become success (marking success) or failed/skipped.
    SetRunState(RunState),
}

/// Computes the plan for `action` on `snapshot` of a run of `dag` at `now`.
pub fn plan(
    dag: &Dag,
    snapshot: &RunSnapshot,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<Plan, Refusal> {
    let mut p = Planning::new(dag, snapshot);
    match action {
        Action::Start => {
            // Someone else (another trigger, the timer) started it first: nothing to do.
            if snapshot.run.state != RunState::Queued {
                return Ok(Plan::default());
            }
            p.run_to(RunState::Running);
        }
        Action::Evaluate => {}
        Action::Finish {
            task_id,
            map_index,
            try_number,
            outcome,
            jitter,
        } => {
            let key = p.key(task_id, *map_index)?;
            let (state, current_try, max_tries) = p.get(key)?;
            if state != TaskState::Running || current_try != *try_number {
                return Err(Refusal::NotRunning {
                    task_id: p.shown(key),
                    try_number: *try_number,
                    state,
                    current_try,
                });
            }
            let to = match outcome {
                Outcome::Success => TaskState::Success,
                Outcome::Expanded(n) => p.expand(key.0, *n),
                Outcome::Reschedule(at) => {
                    p.next_try_at = Some(*at);
                    TaskState::UpForReschedule
                }
                Outcome::Failed if *try_number <= max_tries => {
                    let task = dag
                        .tasks
                        .get(task_id.as_str())
                        .ok_or_else(|| Refusal::NoSuchTask(task_id.clone()))?;
                    let base = task
                        .retry
                        .base_wait(u32::try_from(*try_number + 1).unwrap_or(u32::MAX))
                        .as_secs() as f64;
                    let wait = match task.retry.backoff {
                        crate::dag::Backoff::Fixed => base,
                        // Half fixed, half random: spreads retries without ever waiting less than half.
                        crate::dag::Backoff::Exponential => {
                            base * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))
                        }
                    };
                    p.next_try_at =
                        Some(now + chrono::Duration::milliseconds((wait * 1000.0) as i64));
                    TaskState::UpForRetry
                }
                Outcome::Failed => TaskState::Failed,
            };
            // A sensor's poke is not a failed try: it gives the try back.
            let grant = (to == TaskState::UpForReschedule).then_some(max_tries + 1);
            p.set(key, to, grant);
            p.next_try_at = None;
        }
        Action::Clear(ClearSpec {
            task_ids,
            downstream,
            upstream,
            only_failed,
            instances,
        }) => {
            let named = task_ids
                .iter()
                .map(|t| {
                    dag.tasks
                        .get_index_of(t.as_str())
                        .ok_or_else(|| Refusal::NoSuchTask(t.clone()))
                })
                .collect::<Result<Vec<usize>, Refusal>>()?;
            for i in dag.graph.with_relatives(&named, *upstream, *downstream) {
                let Some(task) = dag.task_at(i) else { continue };
                let mut keys = p.instances(i);
                if keys.is_empty() {
                    return Err(Refusal::NoTaskInstance(task.id.to_string()));
                }
                let named: Vec<i64> = instances
                    .iter()
                    .filter(|(t, _)| t.as_str() == task.id.as_str())
                    .map(|(_, i)| *i)
                    .collect();
                if !named.is_empty() {
                    if let Some(i) = named.iter().find(|i| !keys.iter().any(|k| k.1 == **i)) {
                        return Err(Refusal::NoTaskInstance(format!("{}[{i}]", task.id)));
                    }
                    keys.retain(|k| named.contains(&k.1));
                }
                for key in keys {
                    let (state, try_number, _) = p.get(key)?;
                    let skip = matches!(
                        state,
                        TaskState::None | TaskState::Running | TaskState::Removed
                    ) || (*only_failed && !state.is_failure());
                    if !skip {
                        let grant = try_number + i64::from(task.retry.retries);
                        p.set(key, TaskState::None, Some(grant));
                    }
                }
            }
            if p.run_state.is_finished() && !p.changes.is_empty() {
                p.run_to(RunState::Running);
            }
        }
        Action::Mark {
            task_id,
            map_index,
            state,
        } => {
            if !matches!(state, TaskState::Success | TaskState::Failed) {
                return Err(Refusal::BadMark(*state));
            }
            let key = p.key(task_id, *map_index)?;
            p.get(key)?;
            // Marking an expanded task marks its mapped instances.
            let keys = if *map_index < 0 && p.expanded.contains_key(&key.0) {
                p.mapped(key.0)
            } else {
                vec![key]
            };
            let marked: Vec<Key> = keys
                .into_iter()
                .filter(|k| p.state(*k) != *state && p.state(*k) != TaskState::Removed)
                .collect();
            if marked.is_empty() {
                return Err(Refusal::AlreadyIn {
                    task_id: p.shown(key),
                    state: *state,
                });
            }
            for k in marked {
                p.set(k, *state, None);
            }
        }
        Action::SetRunState(state) => {
            if !matches!(state, RunState::Success | RunState::Failed) {
                return Err(Refusal::BadRunState(*state));
            }
            let open: Vec<(Key, TaskState)> = snapshot
                .tasks
                .iter()
                .filter(|t| !t.state.is_finished())
                .filter_map(|t| Some((p.key(&t.task_id, t.map_index).ok()?, t.state)))
                .collect();
            for (key, current) in open {
                let to = match (state, current) {
                    (RunState::Success, _) => TaskState::Success,
                    (_, TaskState::Running) => TaskState::Failed,
                    _ => TaskState::Skipped,
                };
                p.set(key, to, None);
            }
            if p.run_state != *state {
                p.run_to(*state);
            }
            return Ok(p.finish());
        }
    }
    p.evaluate(now);
    Ok(p.finish())
}

/// [`plan`] for a snapshot that may hold only part of the run: when a task
/// this plan finishes has downstream tasks outside the snapshot (a cascade of
/// skips or upstream failures), asks for them instead of planning blind.
pub fn plan_scoped(
    dag: &Dag,
    snapshot: &RunSnapshot,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<Planned, Refusal> {
    let plan = plan(dag, snapshot, action, now)?;
    let in_scope: std::collections::HashSet<&str> =
        snapshot.tasks.iter().map(|t| t.task_id.as_str()).collect();
    let known = |id: &str| in_scope.contains(id);
    let counted = |id: &str| snapshot.fan_ins.iter().any(|f| f.task_id == id);
    let mut missing = Vec::new();
    for change in plan.tasks.iter().filter(|c| c.to.is_finished()) {
        let Some(i) = dag.tasks.get_index_of(change.task_id.as_str()) else {
            continue;
        };
        for d in dag.graph.downstream(i) {
            let Some(down) = dag.task_at(d) else { continue };
            // A counted fan-in needs its own row; its upstream tasks are counted.
            let upstream = if counted(down.id.as_str()) {
                Vec::new()
            } else {
                dag.graph.upstream(d)
            };
            for n in std::iter::once(d).chain(upstream) {
                if let Some(t) = dag.task_at(n)
                    && !known(t.id.as_str())
                {
                    missing.push(t.id.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(Planned::Done(plan))
    } else {
        missing.sort();
        missing.dedup();
        Ok(Planned::NeedTasks(missing))
    }
}

/// A task instance in a plan: its task's index in the DAG and its map
/// index (-1: the task's own). Copied, never allocated.
type Key = (usize, i64);

/// Work a mapped instance holds: it counts against its task's `max_active`.
fn is_active(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Scheduled
            | TaskState::Queued
            | TaskState::Running
            | TaskState::UpForRetry
            | TaskState::UpForReschedule
    )
}

struct Planning<'a> {
    dag: &'a Dag,
    unfinished: i64,
    failed: i64,
    states: HashMap<Key, (TaskState, i64, i64)>,
    next_at: HashMap<Key, Option<DateTime<Utc>>>,
    /// Tasks that expanded into mapped instances, with how many.
    expanded: HashMap<usize, i64>,
    /// Counted upstream states of fan-ins, by downstream task.
    fan_ins: HashMap<String, Vec<(TaskState, i64)>>,
    /// A mapped task's instances outside the rows, counted by state.
    siblings: Option<(usize, Vec<(TaskState, i64)>)>,
    changes: Vec<TaskChange>,
    expansion: Option<Expansion>,
    run_from: RunState,
    run_state: RunState,
    next_try_at: Option<DateTime<Utc>>,
}

impl<'a> Planning<'a> {
    fn new(dag: &'a Dag, s: &RunSnapshot) -> Self {
        // Rows of tasks the run's DAG version does not have cannot change.
        let rows = || {
            s.tasks.iter().filter_map(|t| {
                Some((
                    (dag.tasks.get_index_of(t.task_id.as_str())?, t.map_index),
                    t,
                ))
            })
        };
        Planning {
            dag,
            unfinished: s.unfinished,
            failed: s.failed,
            states: rows()
                .map(|(k, t)| (k, (t.state, t.try_number, t.max_tries)))
                .collect(),
            next_at: rows().map(|(k, t)| (k, t.next_try_at)).collect(),
            expanded: rows()
                .filter(|(k, _)| k.1 < 0)
                .filter_map(|(k, t)| Some((k.0, t.map_count.filter(|n| *n > 0)?)))
                .collect(),
            fan_ins: s
                .fan_ins
                .iter()
                .map(|f| (f.task_id.clone(), f.counts.clone()))
                .collect(),
            siblings: s.siblings.as_ref().and_then(|c| {
                Some((
                    dag.tasks.get_index_of(c.task_id.as_str())?,
                    c.counts.clone(),
                ))
            }),
            changes: Vec::new(),
            expansion: None,
            run_from: s.run.state,
            run_state: s.run.state,
            next_try_at: None,
        }
    }

    /// The key of a task's instance (the run has none of a task its DAG lacks).
    fn key(&self, task_id: &str, map_index: i64) -> Result<Key, Refusal> {
        let i = self
            .dag
            .tasks
            .get_index_of(task_id)
            .ok_or_else(|| Refusal::NoTaskInstance(task_id.to_owned()))?;
        Ok((i, map_index))
    }

    /// A task instance as people name it: `task`, or `task[3]` for a mapped one.
    fn shown(&self, key: Key) -> String {
        let id = id_at(self.dag, key.0);
        if key.1 < 0 {
            id
        } else {
            format!("{id}[{}]", key.1)
        }
    }

    fn get(&self, key: Key) -> Result<(TaskState, i64, i64), Refusal> {
        self.states
            .get(&key)
            .copied()
            .ok_or_else(|| Refusal::NoTaskInstance(self.shown(key)))
    }

    fn state(&self, key: Key) -> TaskState {
        self.states
            .get(&key)
            .map(|s| s.0)
            .unwrap_or(TaskState::Removed)
    }

    /// Every instance of a task in the snapshot, in map index order.
    fn instances(&self, task: usize) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .states
            .keys()
            .filter(|k| k.0 == task)
            .copied()
            .collect();
        keys.sort_unstable_by_key(|k| k.1);
        keys
    }

    /// A task's mapped instances, in map index order.
    fn mapped(&self, task: usize) -> Vec<Key> {
        let mut keys = self.instances(task);
        keys.retain(|k| k.1 >= 0);
        keys
    }

    /// The states a downstream task's trigger rule sees for `task`: its
    /// mapped instances' when it expanded (removed ones left out), else its own.
    fn outcome_states(&self, task: usize, into: &mut Vec<TaskState>) {
        if self.expanded.contains_key(&task) {
            for k in self.mapped(task) {
                let s = self.state(k);
                if s != TaskState::Removed {
                    into.push(s);
                }
            }
            if let Some((t, counts)) = &self.siblings
                && *t == task
            {
                for &(s, n) in counts {
                    into.extend(std::iter::repeat_n(s, usize::try_from(n).unwrap_or(0)));
                }
            }
        } else {
            into.push(self.state((task, -1)));
        }
    }

    /// Records a mapped task's expansion into `count` instances and returns
    /// the state of its own instance: success, or skipped for no items.
    /// Instances from an earlier expansion are reused (those past the new
    /// count removed, removed ones within it back to `none`); the rest are
    /// made (in `none`, scheduled below).
    fn expand(&mut self, task: usize, count: usize) -> TaskState {
        let retries = self.dag.task_at(task).map_or(0, |t| t.retry.retries);
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        for key in self.mapped(task) {
            match self.state(key) {
                TaskState::None if key.1 >= count => self.set(key, TaskState::Removed, None),
                // Removed by a shorter list before, in this list again.
                TaskState::Removed if key.1 < count => self.set(key, TaskState::None, None),
                _ => {}
            }
        }
        let created: Vec<i64> = (0..count)
            .filter(|i| !self.states.contains_key(&(task, *i)))
            .collect();
        let max_tries = i64::from(retries);
        for &i in &created {
            self.states
                .insert((task, i), (TaskState::None, 0, max_tries));
            self.unfinished += 1;
        }
        self.expansion = Some(Expansion {
            task_id: id_at(self.dag, task),
            count,
            created,
            max_tries,
        });
        if count == 0 {
            return TaskState::Skipped;
        }
        self.expanded.insert(task, count);
        TaskState::Success
    }

    fn set(&mut self, key: Key, to: TaskState, max_tries: Option<i64>) {
        let Some(entry) = self.states.get_mut(&key) else {
            return;
        };
        // Keep the run-wide counts true for tasks inside the scope.
        self.unfinished += i64::from(!to.is_finished()) - i64::from(!entry.0.is_finished());
        self.failed += i64::from(to.is_failure()) - i64::from(entry.0.is_failure());
        self.changes.push(TaskChange {
            task_id: id_at(self.dag, key.0),
            map_index: key.1,
            from: entry.0,
            try_number: entry.1,
            to,
            max_tries,
            next_try_at: self.next_try_at,
        });
        entry.0 = to;
        if let Some(m) = max_tries {
            entry.2 = m;
        }
        self.next_at.insert(key, self.next_try_at);
        // A task cleared back to `none` expands again when it runs.
        if key.1 < 0 && to == TaskState::None {
            self.expanded.remove(&key.0);
        }
    }

    fn run_to(&mut self, to: RunState) {
        self.run_state = to;
    }

    /// Schedules due retries and ready tasks in dependency order, resolves
    /// trigger rules that can no longer fire, and closes the run when done.
    fn evaluate(&mut self, now: DateTime<Utc>) {
        if self.run_state == RunState::Queued {
            return;
        }
        if self.run_state == RunState::Running {
            self.schedule_ready(now);
        }
        // A finished run's outcome follows its tasks too (a task marked by hand).
        // The counts cover the whole run, also tasks outside the snapshot's scope.
        if self.unfinished == 0 {
            self.run_to(if self.failed > 0 {
                RunState::Failed
            } else {
                RunState::Success
            });
        }
    }

    fn schedule_ready(&mut self, now: DateTime<Utc>) {
        let dag = self.dag;
        // Only the task instances in the snapshot, in dependency order.
        let mut order: Vec<Key> = self.states.keys().copied().collect();
        order.sort_unstable_by_key(|k| (dag.graph.position(k.0), k.1));
        // Mapped instances at work, by task (for `max_active`).
        let mut active: HashMap<usize, usize> = HashMap::new();
        for (k, s) in &self.states {
            if k.1 >= 0 && is_active(s.0) {
                *active.entry(k.0).or_default() += 1;
            }
        }
        if let Some((t, counts)) = &self.siblings {
            let busy: i64 = counts
                .iter()
                .filter(|(s, _)| is_active(*s))
                .map(|(_, n)| n)
                .sum();
            *active.entry(*t).or_default() += usize::try_from(busy).unwrap_or(0);
        }
        let mut upstream: Vec<TaskState> = Vec::new();
        for key in order {
            let Some(task) = dag.task_at(key.0) else {
                continue;
            };
            match self.state(key) {
                TaskState::UpForRetry | TaskState::UpForReschedule => {
                    let due = self
                        .next_at
                        .get(&key)
                        .copied()
                        .flatten()
                        .is_none_or(|t| t <= now);
                    if due {
                        self.set(key, TaskState::Scheduled, None);
                    }
                }
                // A mapped instance runs once its task expanded, within `max_active`.
                TaskState::None if key.1 >= 0 => {
                    let limit = task
                        .expand
                        .as_ref()
                        .and_then(|e| e.max_active)
                        .map_or(usize::MAX, |m| m as usize);
                    let busy = active.get(&key.0).copied().unwrap_or(0);
                    let expanded = self.expanded.get(&key.0).is_some_and(|n| key.1 < *n);
                    if expanded && busy < limit {
                        self.set(key, TaskState::Scheduled, None);
                        *active.entry(key.0).or_default() += 1;
                    }
                }
                TaskState::None => {
                    let counted = self.fan_ins.get(task.id.as_str());
                    upstream.clear();
                    for u in dag.graph.upstream(key.0) {
                        // A counted fan-in's upstream tasks outside the rows are in its counts.
                        if counted.is_none() || self.states.contains_key(&(u, -1)) {
                            self.outcome_states(u, &mut upstream);
                        }
                    }
                    for &(state, n) in counted.into_iter().flatten() {
                        upstream
                            .extend(std::iter::repeat_n(state, usize::try_from(n).unwrap_or(0)));
                    }
                    if let Some(to) = decide(task.trigger_rule, &upstream) {
                        self.set(key, to, None);
                    }
                }
                _ => {}
            }
        }
    }

    fn finish(self) -> Plan {
        let run = (self.run_from != self.run_state).then_some((self.run_from, self.run_state));
        let notices = notices(self.dag, &self.changes, run);
        Plan {
            tasks: self.changes,
            run,
            notices,
            expansion: self.expansion,
        }
    }
}

/// The notifications `changes` and the run's move fire: a try that ended
/// (failure for good, a retry, success) fires its task's rules and, for a
/// retry, the DAG's; the run ending fires the DAG's.
fn notices(dag: &Dag, changes: &[TaskChange], run: Option<(RunState, RunState)>) -> Vec<Notice> {
    let mut out = Vec::new();
    if !dag.notifies() {
        return out;
    }
    for c in changes.iter().filter(|c| c.from == TaskState::Running) {
        let event = match c.to {
            TaskState::Failed => NotifyEvent::Failure,
            TaskState::UpForRetry => NotifyEvent::Retry,
            TaskState::Success => NotifyEvent::Success,
            _ => continue,
        };
        let notice = |rule: String| Notice {
            task_id: Some(c.task_id.clone()),
            try_number: Some(c.try_number),
            map_index: c.map_index,
            event,
            rule,
        };
        if let Some(task) = dag.tasks.get(c.task_id.as_str()) {
            for (i, n) in task.notify.iter().enumerate() {
                if n.on.contains(&event) {
                    out.push(notice(format!("task:{i}")));
                }
            }
        }
        if event == NotifyEvent::Retry {
            for (i, n) in dag.notify.iter().enumerate() {
                if n.on.contains(&event) {
                    out.push(notice(format!("dag:{i}")));
                }
            }
        }
    }
    let ended = match run {
        Some((_, RunState::Failed)) => Some(NotifyEvent::Failure),
        Some((_, RunState::Success)) => Some(NotifyEvent::Success),
        _ => None,
    };
    if let Some(event) = ended {
        for (i, n) in dag.notify.iter().enumerate() {
            if n.on.contains(&event) {
                out.push(Notice {
                    task_id: None,
                    try_number: None,
                    map_index: -1,
                    event,
                    rule: format!("dag:{i}"),
                });
            }
        }
    }
    out
}

/// What a task waiting in `none` becomes given its upstream states, by its
/// trigger rule (Airflow's semantics), or `None` to keep waiting.
pub fn decide(rule: TriggerRule, upstream: &[TaskState]) -> Option<TaskState> {
    let count = |f: fn(TaskState) -> bool| upstream.iter().filter(|s| f(**s)).count();
    let total = upstream.len();
    let success = count(|s| s == TaskState::Success);
    let failed = count(TaskState::is_failure);
    let skipped = count(|s| s == TaskState::Skipped);
    let done = count(TaskState::is_finished);
    let all_done = done == total;
    let run = Some(TaskState::Scheduled);
    match rule {
        TriggerRule::Always => run,
        TriggerRule::AllSuccess => {
            if failed > 0 {
                Some(TaskState::UpstreamFailed)
            } else if skipped > 0 {
                Some(TaskState::Skipped)
            } else if success == total {
                run
            } else {
                None
            }
        }
        TriggerRule::AllFailed => {
            if success > 0 || skipped > 0 {
                Some(TaskState::Skipped)
            } else if all_done {
                run
            } else {
                None
            }
        }
        TriggerRule::AllDone => all_done.then_some(TaskState::Scheduled),
        TriggerRule::OneSuccess => {
            if success > 0 || total == 0 {
                run
            } else if all_done {
                Some(TaskState::UpstreamFailed)
            } else {
                None
            }
        }
        TriggerRule::OneFailed => {
            if failed > 0 || total == 0 {
                run
            } else if all_done {
                Some(TaskState::Skipped)
            } else {
                None
            }
        }
        TriggerRule::NoneFailed => {
            if failed > 0 {
                Some(TaskState::UpstreamFailed)
            } else if all_done {
                run
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_follow_ended_tries_and_runs_only() {
        use TaskState::*;
        let text = "notify:\n  - {on: [failure, retry], webhook: 'http://h/x'}\n  - {on: [success], command: 'true'}\n\
                    tasks:\n  a: {kind: shell, command: 'true', retries: 1}\n  \
                    b: {kind: shell, command: 'true', depends_on: [a], notify: [{on: [success, failure], command: 'true'}]}\n";
        let dag = match crate::loader::load_str(text, std::path::Path::new("/dags/t.yaml")) {
            Ok(Some((dag, _))) => dag,
            other => panic!("{other:?}"),
        };
        let now = Utc::now();
        let keys = |p: &Plan| -> Vec<(Option<String>, &'static str, String)> {
            p.notices
                .iter()
                .map(|n| (n.task_id.clone(), n.event.as_str(), n.rule.clone()))
                .collect()
        };
        let a = |s| Some(String::from(s));
        // A try of `a` fails with a retry left: the DAG's retry rule.
        let p = plan(
            &dag,
            &at(&dag, RunState::Running, [(Running, 1, 1), (None, 0, 0)]),
            &finish("a", 1, Outcome::Failed, 0.0),
            now,
        )
        .unwrap_or_default();
        assert_eq!(keys(&p), [(a("a"), "retry", "dag:0".to_owned())]);
        // `b` succeeds and the run with it: b's own rule, then the DAG's success rule.
        let p = plan(
            &dag,
            &at(&dag, RunState::Running, [(Success, 2, 1), (Running, 1, 0)]),
            &finish("b", 1, Outcome::Success, 0.0),
            now,
        )
        .unwrap_or_default();
        assert_eq!(
            keys(&p),
            [
                (a("b"), "success", "task:0".to_owned()),
                (Option::None, "success", "dag:1".to_owned())
            ]
        );
        assert_eq!(p.notices[0].try_number, Some(1));
        // Marking by hand ends no try: only the run's end fires.
        let p = plan(
            &dag,
            &at(&dag, RunState::Running, [(Success, 2, 1), (Failed, 1, 0)]),
            &Action::Mark {
                map_index: -1,
                task_id: "b".into(),
                state: Success,
            },
            now,
        )
        .unwrap_or_default();
        assert_eq!(keys(&p), [(Option::None, "success", "dag:1".to_owned())]);
        // A DAG without rules plans no notices.
        let quiet = weir_core_test_dag();
        let p = plan(
            &quiet,
            &at(
                &quiet,
                RunState::Running,
                [(Success, 1, 0), (Running, 1, 0)],
            ),
            &finish("b", 1, Outcome::Failed, 0.0),
            now,
        )
        .unwrap_or_default();
        assert!(p.notices.is_empty() && p.run.is_some());
    }

    #[test]
    fn starting_a_started_run_changes_nothing() {
        let dag = weir_core_test_dag();
        let mut snap = snapshot(&dag);
        snap.run.state = RunState::Running;
        assert_eq!(
            plan(&dag, &snap, &Action::Start, Utc::now()),
            Ok(Plan::default())
        );
        snap.run.state = RunState::Queued;
        let p = plan(&dag, &snap, &Action::Start, Utc::now()).unwrap_or_default();
        assert_eq!(p.run, Some((RunState::Queued, RunState::Running)));
        assert_eq!(p.tasks.len(), 1, "the root task is scheduled");
    }

    fn weir_core_test_dag() -> Dag {
        let text = "tasks:\n  a: {kind: shell, command: 'true'}\n  b: {kind: shell, command: 'true', depends_on: [a]}\n";
        match crate::loader::load_str(text, std::path::Path::new("/dags/t.yaml")) {
            Ok(Some((dag, _))) => dag,
            other => panic!("{other:?}"),
        }
    }

    fn snapshot(dag: &Dag) -> RunSnapshot {
        let now = Utc::now();
        let run = crate::store::RunRecord {
            id: 1,
            dag_id: "t".into(),
            run_id: "r".into(),
            version_id: 1,
            run_type: crate::state::RunType::Manual,
            state: RunState::Queued,
            logical_date: Some(now),
            data_interval_start: None,
            data_interval_end: None,
            run_after: now,
            conf: "{}".into(),
            note: None,
            triggered_by: None,
            trigger_versions: None,
            queued_at: now,
            start_date: None,
            end_date: None,
            unfinished: 0,
            failed: 0,
        };
        let tasks: Vec<crate::store::TaskStateRecord> = dag
            .tasks
            .keys()
            .map(|t| crate::store::TaskStateRecord {
                id: t.to_string(),
                task_id: t.to_string(),
                state: TaskState::None,
                try_number: 0,
                max_tries: 0,
                next_try_at: None,
                map_index: -1,
                map_count: None,
            })
            .collect();
        let unfinished = tasks.len() as i64;
        RunSnapshot {
            run,
            tasks,
            unfinished,
            failed: 0,
            fan_ins: Vec::new(),
            siblings: None,
        }
    }

    /// A DAG `a -> b` with `retry` (YAML keys) on every task.
    fn chain(retry: &str) -> Dag {
        let text = format!(
            "defaults: {{{retry}}}\ntasks:\n  a: {{kind: shell, command: 'true'}}\n  b: {{kind: shell, command: 'true', depends_on: [a]}}\n"
        );
        match crate::loader::load_str(&text, std::path::Path::new("/dags/t.yaml")) {
            Ok(Some((dag, _))) => dag,
            other => panic!("{other:?}"),
        }
    }

    /// A snapshot of a run in `run` with each task at `(state, try,
    /// max_tries)`; `max_tries` counts retries, as Airflow's does.
    fn at(dag: &Dag, run: RunState, tasks: [(TaskState, i64, i64); 2]) -> RunSnapshot {
        let mut snap = snapshot(dag);
        snap.run.state = run;
        for (t, (state, try_number, max_tries)) in snap.tasks.iter_mut().zip(tasks) {
            (t.state, t.try_number, t.max_tries) = (state, try_number, max_tries);
        }
        snap.unfinished = snap.tasks.iter().filter(|t| !t.state.is_finished()).count() as i64;
        snap.failed = snap.tasks.iter().filter(|t| t.state.is_failure()).count() as i64;
        snap
    }

    /// `a -> m -> b` with `m` mapped (`expand` as YAML).
    fn mapped_dag(expand: &str) -> Dag {
        let text = format!(
            "tasks:\n  a: {{kind: shell, command: 'true'}}\n  \
             m: {{kind: shell, command: 'echo {{{{ item }}}}', depends_on: [a], expand: {expand}}}\n  \
             b: {{kind: shell, command: 'true', depends_on: [m]}}\n"
        );
        match crate::loader::load_str(&text, std::path::Path::new("/dags/t.yaml")) {
            Ok(Some((dag, _))) => dag,
            other => panic!("{other:?}"),
        }
    }

    /// A running run's snapshot with these instances: (task, map index,
    /// state, try); `m`'s own instance records `map_count` expanded ones.
    fn mapped_at(rows: &[(&str, i64, TaskState, i64)], map_count: Option<i64>) -> RunSnapshot {
        let mut snap = snapshot(&weir_core_test_dag());
        snap.run.state = RunState::Running;
        snap.tasks = rows
            .iter()
            .map(
                |&(task, map_index, state, try_number)| crate::store::TaskStateRecord {
                    id: format!("{task}{map_index}"),
                    task_id: task.into(),
                    state,
                    try_number,
                    max_tries: 0,
                    next_try_at: None,
                    map_index,
                    map_count: (task == "m" && map_index < 0)
                        .then_some(map_count)
                        .flatten(),
                },
            )
            .collect();
        snap.unfinished = snap.tasks.iter().filter(|t| !t.state.is_finished()).count() as i64;
        snap.failed = snap.tasks.iter().filter(|t| t.state.is_failure()).count() as i64;
        snap
    }

    fn moves(p: &Plan) -> Vec<(String, i64, TaskState)> {
        p.tasks
            .iter()
            .map(|c| (c.task_id.clone(), c.map_index, c.to))
            .collect()
    }

    fn finish_mapped(task: &str, map_index: i64, outcome: Outcome) -> Action {
        Action::Finish {
            task_id: task.into(),
            map_index,
            try_number: 1,
            outcome,
            jitter: 0.0,
        }
    }

    #[test]
    fn an_expansion_makes_instances_and_schedules_up_to_max_active() {
        use TaskState::*;
        let dag = mapped_dag("{items: [1, 2, 3], max_active: 2}");
        let snap = mapped_at(
            &[
                ("a", -1, Success, 1),
                ("m", -1, Running, 1),
                ("b", -1, None, 0),
            ],
            Option::None,
        );
        let p = plan(
            &dag,
            &snap,
            &finish_mapped("m", -1, Outcome::Expanded(3)),
            Utc::now(),
        )
        .unwrap_or_default();
        let x = p.expansion.clone().unwrap_or_default();
        assert_eq!(
            (x.task_id.as_str(), x.count, x.created),
            ("m", 3, vec![0, 1, 2])
        );
        assert_eq!(
            moves(&p),
            [
                ("m".into(), -1, Success),
                ("m".into(), 0, Scheduled),
                ("m".into(), 1, Scheduled),
            ],
            "two of three within max_active; b waits"
        );
        assert_eq!(p.run, Option::None);

        // No items: the task is skipped, and all_success skips what follows.
        let p = plan(
            &dag,
            &snap,
            &finish_mapped("m", -1, Outcome::Expanded(0)),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [("m".into(), -1, Skipped), ("b".into(), -1, Skipped)]
        );
        assert_eq!(p.run, Some((RunState::Running, RunState::Success)));
    }

    #[test]
    fn mapped_instances_are_the_task_outcome_downstream() {
        use TaskState::*;
        let dag = mapped_dag("{items: [1, 2, 3], max_active: 2}");
        let rows = |last: TaskState| {
            mapped_at(
                &[
                    ("a", -1, Success, 1),
                    ("m", -1, Success, 1),
                    ("m", 0, Success, 1),
                    ("m", 1, Running, 1),
                    ("m", 2, last, if last == None { 0 } else { 1 }),
                    ("b", -1, None, 0),
                ],
                Some(3),
            )
        };
        // One ends: the next waiting one starts; b still waits for the rest.
        let p = plan(
            &dag,
            &rows(None),
            &finish_mapped("m", 1, Outcome::Success),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [("m".into(), 1, Success), ("m".into(), 2, Scheduled)]
        );
        // The last one ends: b runs.
        let p = plan(
            &dag,
            &rows(Success),
            &finish_mapped("m", 1, Outcome::Success),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [("m".into(), 1, Success), ("b".into(), -1, Scheduled)]
        );
        // One failed for good: b is upstream_failed and the run fails.
        let p = plan(
            &dag,
            &rows(Success),
            &finish_mapped("m", 1, Outcome::Failed),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [("m".into(), 1, Failed), ("b".into(), -1, UpstreamFailed)]
        );
        assert_eq!(p.run, Some((RunState::Running, RunState::Failed)));
        // Marking the task marks every mapped instance not already so.
        let mark = Action::Mark {
            task_id: "m".into(),
            map_index: -1,
            state: Failed,
        };
        let p = plan(&dag, &rows(Success), &mark, Utc::now()).unwrap_or_default();
        assert_eq!(
            moves(&p)[..3],
            [
                ("m".into(), 0, Failed),
                ("m".into(), 1, Failed),
                ("m".into(), 2, Failed)
            ]
        );
    }

    #[test]
    fn counted_siblings_decide_downstream_as_their_rows_would() {
        use TaskState::*;
        let dag = mapped_dag("{items: [1, 2, 3]}");
        let finish = finish_mapped("m", 1, Outcome::Success);
        assert!(
            matches!(scope(&dag, &finish), Scope::Tasks { siblings: Some((ref t, 1)), .. } if t == "m"),
            "without max_active a mapped instance's siblings are counted"
        );
        let capped = mapped_dag("{items: [1, 2, 3], max_active: 2}");
        assert!(matches!(
            scope(&capped, &finish),
            Scope::All
                | Scope::Tasks {
                    siblings: Option::None,
                    ..
                }
        ));
        let with = |counts: Vec<(TaskState, i64)>| {
            let mut snap = mapped_at(
                &[
                    ("a", -1, Success, 1),
                    ("m", -1, Success, 1),
                    ("m", 1, Running, 1),
                    ("b", -1, None, 0),
                ],
                Some(3),
            );
            snap.siblings = Some(crate::store::SiblingCounts {
                task_id: "m".into(),
                counts,
            });
            plan(&dag, &snap, &finish, Utc::now()).unwrap_or_default()
        };
        assert_eq!(moves(&with(vec![(Success, 1), (Running, 1)]))[1..], []);
        assert_eq!(
            moves(&with(vec![(Success, 2)]))[1..],
            [("b".into(), -1, Scheduled)]
        );
        assert_eq!(
            moves(&with(vec![(Success, 1), (Failed, 1)]))[1..],
            [("b".into(), -1, UpstreamFailed)]
        );
    }

    #[test]
    fn clearing_a_mapped_task_expands_it_again_and_removes_what_is_past_the_list() {
        use TaskState::*;
        let dag = mapped_dag("{items: \"{{ params.xs }}\"}");
        let done = mapped_at(
            &[
                ("a", -1, Success, 1),
                ("m", -1, Success, 1),
                ("m", 0, Success, 1),
                ("m", 1, Failed, 1),
                ("b", -1, UpstreamFailed, 0),
            ],
            Some(2),
        );
        let only_failed = Action::Clear(ClearSpec {
            task_ids: vec!["m".into()],
            downstream: true,
            only_failed: true,
            ..ClearSpec::default()
        });
        let p = plan(&dag, &done, &only_failed, Utc::now()).unwrap_or_default();
        assert_eq!(
            moves(&p),
            [
                ("m".into(), 1, None),
                ("b".into(), -1, None),
                ("m".into(), 1, Scheduled)
            ],
            "only the failed instance runs again, without a new expansion"
        );
        let all = Action::Clear(ClearSpec {
            task_ids: vec!["m".into()],
            ..ClearSpec::default()
        });
        let p = plan(&dag, &done, &all, Utc::now()).unwrap_or_default();
        assert_eq!(
            moves(&p),
            [
                ("m".into(), -1, None),
                ("m".into(), 0, None),
                ("m".into(), 1, None),
                ("m".into(), -1, Scheduled)
            ],
            "the task's own instance runs again to find the items"
        );
        // Expanding again into one item: the second instance is removed.
        let mut again = mapped_at(
            &[
                ("a", -1, Success, 1),
                ("m", -1, Running, 2),
                ("m", 0, None, 1),
                ("m", 1, None, 1),
                ("b", -1, None, 0),
            ],
            Option::None,
        );
        again.tasks[1].try_number = 1;
        let p = plan(
            &dag,
            &again,
            &finish_mapped("m", -1, Outcome::Expanded(1)),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [
                ("m".into(), 1, Removed),
                ("m".into(), -1, Success),
                ("m".into(), 0, Scheduled)
            ]
        );
        assert!(p.expansion.is_some_and(|x| x.created.is_empty()));

        // Longer again: the removed instance comes back and a new one is made.
        let mut longer = again.clone();
        longer.tasks[3].state = Removed;
        let p = plan(
            &dag,
            &longer,
            &finish_mapped("m", -1, Outcome::Expanded(3)),
            Utc::now(),
        )
        .unwrap_or_default();
        assert_eq!(
            moves(&p),
            [
                ("m".into(), 1, None),
                ("m".into(), -1, Success),
                ("m".into(), 0, Scheduled),
                ("m".into(), 1, Scheduled),
                ("m".into(), 2, Scheduled),
            ]
        );
        assert!(p.expansion.is_some_and(|x| x.created == [2]));
    }

    /// The plan's outcome: each changed task's new state (and granted
    /// `max_tries`), seconds to its next try, and the run's new state.
    type Seen = (
        Vec<(String, TaskState, Option<i64>, Option<i64>)>,
        Option<RunState>,
    );

    fn seen(plan: &Plan, now: DateTime<Utc>) -> Seen {
        let tasks = plan
            .tasks
            .iter()
            .map(|c| {
                let wait = c.next_try_at.map(|t| (t - now).num_seconds());
                (c.task_id.clone(), c.to, c.max_tries, wait)
            })
            .collect();
        (tasks, plan.run.map(|(_, to)| to))
    }

    fn finish(task: &str, try_number: i64, outcome: Outcome, jitter: f64) -> Action {
        Action::Finish {
            map_index: -1,
            task_id: task.into(),
            try_number,
            outcome,
            jitter,
        }
    }

    /// Clears `task` and what follows it (`only_failed` as asked).
    fn clear_downstream(task: &str, only_failed: bool) -> Action {
        Action::Clear(ClearSpec {
            task_ids: vec![task.into()],
            downstream: true,
            upstream: false,
            only_failed,
            instances: Vec::new(),
        })
    }

    fn clear_one(task: &str) -> Action {
        Action::Clear(ClearSpec {
            task_ids: vec![task.into()],
            ..ClearSpec::default()
        })
    }

    #[test]
    fn retries_back_off_and_runs_complete() {
        use RunState::{Failed as RunFailed, Running as RunRunning, Success as RunSuccess};
        use TaskState::*;
        let now = Utc::now();
        let fixed = "retries: 2, retry_delay: 30s";
        let exp = "retries: 5, retry_delay: 10s, retry_backoff: exponential, max_retry_delay: 1m";
        let t = |id: &str, to, grant, wait| (id.to_owned(), to, grant, wait);
        // (DAG retry keys, run state, tasks (state, try, max_tries), action, expected)
        type Case = (
            &'static str,
            RunState,
            [(TaskState, i64, i64); 2],
            Action,
            Seen,
        );
        let cases: Vec<Case> = vec![
            // A success schedules what follows; the run goes on.
            (
                fixed,
                RunRunning,
                [(Running, 1, 2), (None, 0, 2)],
                finish("a", 1, Outcome::Success, 0.0),
                (
                    vec![
                        t("a", Success, Option::None, Option::None),
                        t("b", Scheduled, Option::None, Option::None),
                    ],
                    Option::None,
                ),
            ),
            // The last task's success ends the run.
            (
                fixed,
                RunRunning,
                [(Success, 1, 2), (Running, 1, 2)],
                finish("b", 1, Outcome::Success, 0.0),
                (
                    vec![t("b", Success, Option::None, Option::None)],
                    Some(RunSuccess),
                ),
            ),
            // A failure with tries left waits retry_delay (fixed backoff).
            (
                fixed,
                RunRunning,
                [(Running, 1, 2), (None, 0, 2)],
                finish("a", 1, Outcome::Failed, 0.9),
                (
                    vec![t("a", UpForRetry, Option::None, Some(30))],
                    Option::None,
                ),
            ),
            // Exponential: delay × 2^(try-1) before the next try, at least half of it.
            (
                exp,
                RunRunning,
                [(Running, 1, 5), (None, 0, 5)],
                finish("a", 1, Outcome::Failed, 1.0),
                (
                    vec![t("a", UpForRetry, Option::None, Some(10))],
                    Option::None,
                ),
            ),
            (
                exp,
                RunRunning,
                [(Running, 3, 5), (None, 0, 5)],
                finish("a", 3, Outcome::Failed, 1.0),
                (
                    vec![t("a", UpForRetry, Option::None, Some(40))],
                    Option::None,
                ),
            ),
            (
                exp,
                RunRunning,
                [(Running, 3, 5), (None, 0, 5)],
                finish("a", 3, Outcome::Failed, 0.0),
                (
                    vec![t("a", UpForRetry, Option::None, Some(20))],
                    Option::None,
                ),
            ),
            // … capped at max_retry_delay.
            (
                exp,
                RunRunning,
                [(Running, 5, 5), (None, 0, 5)],
                finish("a", 5, Outcome::Failed, 1.0),
                (
                    vec![t("a", UpForRetry, Option::None, Some(60))],
                    Option::None,
                ),
            ),
            // The last try's failure fails the task, its downstream and the run.
            (
                fixed,
                RunRunning,
                [(Running, 3, 2), (None, 0, 2)],
                finish("a", 3, Outcome::Failed, 0.0),
                (
                    vec![
                        t("a", Failed, Option::None, Option::None),
                        t("b", UpstreamFailed, Option::None, Option::None),
                    ],
                    Some(RunFailed),
                ),
            ),
            // A sensor's poke gives its try back.
            (
                fixed,
                RunRunning,
                [(Running, 1, 2), (None, 0, 2)],
                finish(
                    "a",
                    1,
                    Outcome::Reschedule(now + chrono::Duration::seconds(5)),
                    0.0,
                ),
                (
                    vec![t("a", UpForReschedule, Some(3), Some(5))],
                    Option::None,
                ),
            ),
            // Clearing a failed task and its downstream grants its retries
            // again and reopens the run.
            (
                fixed,
                RunFailed,
                [(Failed, 3, 2), (UpstreamFailed, 0, 2)],
                clear_downstream("a", false),
                (
                    vec![
                        t("a", None, Some(5), Option::None),
                        t("b", None, Some(2), Option::None),
                        t("a", Scheduled, Option::None, Option::None),
                    ],
                    Some(RunRunning),
                ),
            ),
            // only_failed leaves a success alone; nothing changes.
            (
                fixed,
                RunSuccess,
                [(Success, 1, 2), (Success, 1, 2)],
                clear_downstream("a", true),
                (vec![], Option::None),
            ),
            // A running try is not cleared.
            (
                fixed,
                RunRunning,
                [(Running, 1, 2), (None, 0, 2)],
                clear_one("a"),
                (vec![], Option::None),
            ),
            // Marking the failed task success lets the run succeed once all is done.
            (
                fixed,
                RunFailed,
                [(Success, 1, 2), (Failed, 3, 2)],
                Action::Mark {
                    map_index: -1,
                    task_id: "b".into(),
                    state: Success,
                },
                (
                    vec![t("b", Success, Option::None, Option::None)],
                    Some(RunSuccess),
                ),
            ),
            // Failing a run by hand fails its running try and skips the rest.
            (
                fixed,
                RunRunning,
                [(Running, 1, 2), (None, 0, 2)],
                Action::SetRunState(RunFailed),
                (
                    vec![
                        t("a", Failed, Option::None, Option::None),
                        t("b", Skipped, Option::None, Option::None),
                    ],
                    Some(RunFailed),
                ),
            ),
        ];
        for (i, (retry, run, tasks, action, want)) in cases.into_iter().enumerate() {
            let dag = chain(retry);
            let snap = at(&dag, run, tasks);
            let got = plan(&dag, &snap, &action, now).map(|p| seen(&p, now));
            assert_eq!(got, Ok(want), "case {i}: {action:?} on {tasks:?}");
        }
    }

    #[test]
    fn impossible_requests_are_refused() {
        use TaskState::*;
        let dag = chain("retries: 1");
        let now = Utc::now();
        let running = at(&dag, RunState::Running, [(Running, 2, 2), (None, 0, 2)]);
        let not_running = |task: &str, state, current_try| Refusal::NotRunning {
            task_id: task.into(),
            try_number: 1,
            state,
            current_try,
        };
        let refused = [
            (
                finish("a", 1, Outcome::Success, 0.0),
                not_running("a", Running, 2),
            ),
            (
                finish("b", 1, Outcome::Success, 0.0),
                not_running("b", None, 0),
            ),
            (
                finish("nope", 1, Outcome::Success, 0.0),
                Refusal::NoTaskInstance("nope".into()),
            ),
            (
                Action::Mark {
                    map_index: -1,
                    task_id: "a".into(),
                    state: Queued,
                },
                Refusal::BadMark(Queued),
            ),
            (clear_one("nope"), Refusal::NoSuchTask("nope".into())),
            (
                Action::SetRunState(RunState::Queued),
                Refusal::BadRunState(RunState::Queued),
            ),
        ];
        for (action, why) in refused {
            assert_eq!(plan(&dag, &running, &action, now), Err(why), "{action:?}");
        }
        assert_eq!(
            not_running("a", Running, 2).to_string(),
            "task `a` try 1 is not running (it is running, try 2)"
        );
        let done = at(&dag, RunState::Success, [(Success, 1, 2), (Success, 1, 2)]);
        let again = Action::Mark {
            map_index: -1,
            task_id: "a".into(),
            state: Success,
        };
        assert_eq!(
            plan(&dag, &done, &again, now),
            Err(Refusal::AlreadyIn {
                task_id: "a".into(),
                state: Success
            })
        );
    }

    #[test]
    fn every_rule_against_every_mix() {
        use TaskState::*;
        let s = Some(Scheduled);
        // (rule, upstream states, expected)
        let cases: Vec<(TriggerRule, Vec<TaskState>, Option<TaskState>)> = vec![
            (TriggerRule::AllSuccess, vec![Success, Success], s),
            (
                TriggerRule::AllSuccess,
                vec![Success, Running],
                Option::None,
            ),
            (
                TriggerRule::AllSuccess,
                vec![Failed, Running],
                Some(UpstreamFailed),
            ),
            (
                TriggerRule::AllSuccess,
                vec![UpstreamFailed, Success],
                Some(UpstreamFailed),
            ),
            (
                TriggerRule::AllSuccess,
                vec![Skipped, Success],
                Some(Skipped),
            ),
            (TriggerRule::AllSuccess, vec![], s),
            (TriggerRule::AllDone, vec![Success, Failed, Skipped], s),
            (
                TriggerRule::AllDone,
                vec![Success, UpForRetry],
                Option::None,
            ),
            (TriggerRule::AllFailed, vec![Failed, UpstreamFailed], s),
            (TriggerRule::AllFailed, vec![Failed, Running], Option::None),
            (TriggerRule::AllFailed, vec![Failed, Success], Some(Skipped)),
            (TriggerRule::AllFailed, vec![Skipped, Failed], Some(Skipped)),
            (TriggerRule::OneSuccess, vec![Success, Running], s),
            (TriggerRule::OneSuccess, vec![Failed, Running], Option::None),
            (
                TriggerRule::OneSuccess,
                vec![Failed, Skipped],
                Some(UpstreamFailed),
            ),
            (TriggerRule::OneFailed, vec![Failed, Running], s),
            (TriggerRule::OneFailed, vec![UpstreamFailed, Running], s),
            (TriggerRule::OneFailed, vec![Success, Running], Option::None),
            (
                TriggerRule::OneFailed,
                vec![Success, Skipped],
                Some(Skipped),
            ),
            (TriggerRule::NoneFailed, vec![Success, Skipped], s),
            (
                TriggerRule::NoneFailed,
                vec![Success, Running],
                Option::None,
            ),
            (
                TriggerRule::NoneFailed,
                vec![Failed, Running],
                Some(UpstreamFailed),
            ),
            (TriggerRule::Always, vec![Running, None], s),
            (TriggerRule::Always, vec![Failed], s),
        ];
        for (rule, up, want) in cases {
            assert_eq!(decide(rule, &up), want, "{} with {up:?}", rule.as_str());
        }
    }

    /// `u0..u9 -> end` under `rule`, plus `other`, which nothing waits on.
    fn wide_fan_in(rule: &str) -> Dag {
        let mut text = String::from("tasks:\n  other: {kind: shell, command: 'true'}\n");
        let ups: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        for u in &ups {
            text.push_str(&format!("  {u}: {{kind: shell, command: 'true'}}\n"));
        }
        text.push_str(&format!(
            "  end: {{kind: shell, command: 'true', trigger_rule: {rule}, depends_on: [{}]}}\n",
            ups.join(", ")
        ));
        match crate::loader::load_str(&text, std::path::Path::new("/dags/t.yaml")) {
            Ok(Some((dag, _))) => dag,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wide_fan_in_is_counted_not_read() {
        let dag = wide_fan_in("all_success");
        let finish = Action::Finish {
            map_index: -1,
            task_id: "u0".into(),
            try_number: 1,
            outcome: Outcome::Success,
            jitter: 0.0,
        };
        let Scope::Tasks { tasks, fan_ins, .. } = scope(&dag, &finish) else {
            panic!("a try of one of ten upstream tasks reads only what it can change");
        };
        assert_eq!(tasks, ["u0", "end"]);
        assert_eq!(fan_ins.len(), 1);
        assert_eq!(fan_ins[0].task_id, "end");
        assert_eq!(fan_ins[0].upstream.len(), 10);
    }

    #[test]
    fn a_counted_fan_in_decides_like_a_read_one() {
        use TaskState::*;
        // (rule, states of the nine other upstream tasks, how u0 ends, what end becomes)
        let cases = [
            (
                "all_success",
                vec![(Success, 9)],
                Outcome::Success,
                Some(Scheduled),
            ),
            (
                "all_success",
                vec![(Success, 8), (Running, 1)],
                Outcome::Success,
                Option::None,
            ),
            (
                "all_success",
                vec![(Success, 9)],
                Outcome::Failed,
                Some(UpstreamFailed),
            ),
            (
                "all_done",
                vec![(Failed, 4), (Skipped, 5)],
                Outcome::Success,
                Some(Scheduled),
            ),
            (
                "all_done",
                vec![(Failed, 4), (Queued, 5)],
                Outcome::Success,
                Option::None,
            ),
            (
                "one_failed",
                vec![(Success, 9)],
                Outcome::Failed,
                Some(Scheduled),
            ),
            (
                "none_failed",
                vec![(UpstreamFailed, 1), (Success, 8)],
                Outcome::Success,
                Some(UpstreamFailed),
            ),
        ];
        for (rule, others, outcome, want) in cases {
            let dag = wide_fan_in(rule);
            let finish = Action::Finish {
                map_index: -1,
                task_id: "u0".into(),
                try_number: 1,
                outcome,
                jitter: 0.0,
            };
            let mut snap = snapshot(&dag);
            snap.run.state = RunState::Running;
            snap.tasks
                .retain(|t| t.task_id == "u0" || t.task_id == "end");
            for t in &mut snap.tasks {
                if t.task_id == "u0" {
                    (t.state, t.try_number) = (Running, 1);
                }
            }
            snap.fan_ins = vec![crate::store::FanInCounts {
                task_id: "end".into(),
                counts: others.clone(),
            }];
            let planned = plan_scoped(&dag, &snap, &finish, Utc::now());
            let Ok(Planned::Done(p)) = planned else {
                panic!("{rule} {others:?}: {planned:?}");
            };
            let end = p.tasks.iter().find(|c| c.task_id == "end").map(|c| c.to);
            assert_eq!(end, want, "{rule} with {others:?} and u0 {outcome:?}");
        }
    }
}
