//! The decisions inside the store's guarded apply, queueing and claiming
//! that need no database: which moves are legal, how a reported try ends,
//! how the run's counters change, which scheduled work fits its limits.
//! Both ways of writing them (sqlx on either backend, and SQLite's direct
//! writer) call these, so they cannot drift apart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Claim, ClaimRequest, Error, Plan, Result, RunSnapshot, Scope, TaskChange, TryEnd};
use crate::state::{RunState, TaskState};

/// How a task instance move touches its dates: `(reset, ends)` — a reset
/// clears them all, an end stamps `end_date`. Fails for a move the state
/// machine does not allow.
pub(super) fn task_move(c: &TaskChange) -> Result<(bool, bool)> {
    if !c.from.can_move_to(c.to) {
        return Err(Error::IllegalTransition(format!(
            "task `{}` cannot go from {} to {}",
            c.task_id, c.from, c.to
        )));
    }
    let reset = c.to == TaskState::None;
    let ends =
        c.to.is_finished() || matches!(c.to, TaskState::UpForRetry | TaskState::UpForReschedule);
    Ok((reset, ends))
}

/// The error of a guarded task move that matched no row.
pub(super) fn task_conflict(c: &TaskChange, run_pk: i64) -> Error {
    Error::Conflict(format!(
        "task `{}` (map index {}) of run {} is no longer {} (try {})",
        c.task_id, c.map_index, run_pk, c.from, c.try_number
    ))
}

/// A running try the plan stops by hand (mark, clear, timeout), not the one
/// being reported: the task instance whose try to close and the state the
/// try ends in.
pub(super) fn stopped_try(
    snapshot: &RunSnapshot,
    c: &TaskChange,
    end: Option<&TryEnd>,
) -> Option<(Option<String>, &'static str)> {
    let row = snapshot
        .tasks
        .iter()
        .find(|t| t.task_id == c.task_id && t.map_index == c.map_index);
    let reported = end.is_some_and(|e| row.is_some_and(|t| t.id == e.ti_id));
    if c.from != TaskState::Running || reported {
        return None;
    }
    let state = if c.to == TaskState::Success {
        "success"
    } else {
        "failed"
    };
    Some((row.map(|t| t.id.clone()), state))
}

/// What a try stopped by hand records as its error.
pub(super) fn stopped_error(c: &TaskChange) -> String {
    format!("stopped: task instance set to {}", c.to)
}

/// The state the reported try ends in: the one the plan gives its task
/// instance (an expansion over no items skips the task; its try succeeded).
pub(super) fn try_end_state(snapshot: &RunSnapshot, plan: &Plan, e: &TryEnd) -> Result<TaskState> {
    let key = snapshot
        .tasks
        .iter()
        .find(|t| t.id == e.ti_id)
        .map(|t| (t.task_id.as_str(), t.map_index));
    let state = plan
        .tasks
        .iter()
        .find(|c| Some((c.task_id.as_str(), c.map_index)) == key && c.from == TaskState::Running)
        .map(|c| c.to)
        .ok_or_else(|| {
            Error::Plan(format!(
                "the plan does not end try {} of {}",
                e.try_number, e.ti_id
            ))
        })?;
    Ok(if state == TaskState::Skipped {
        TaskState::Success
    } else {
        state
    })
}

/// The error of a reported try that is not running any more.
pub(super) fn try_conflict(e: &TryEnd) -> Error {
    Error::Conflict(format!(
        "try {} of task instance {} is not running",
        e.try_number, e.ti_id
    ))
}

/// How the run's `unfinished` and `failed` counters change with the plan.
pub(super) fn counter_deltas(plan: &Plan) -> (i64, i64) {
    let made = plan.expansion.as_ref().map_or(0, |x| x.created.len());
    let (mut unfinished, mut failed) = (i64::try_from(made).unwrap_or(i64::MAX), 0_i64);
    for c in &plan.tasks {
        unfinished += i64::from(!c.to.is_finished()) - i64::from(!c.from.is_finished());
        failed += i64::from(c.to.is_failure()) - i64::from(c.from.is_failure());
    }
    (unfinished, failed)
}

/// Checks the run's move is allowed.
pub(super) fn run_move(run_pk: i64, from: RunState, to: RunState) -> Result<()> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(Error::IllegalTransition(format!(
            "run {run_pk} cannot go from {from} to {to}"
        )))
    }
}

/// The error of a guarded run move that matched no row.
pub(super) fn run_conflict(run_pk: i64, from: RunState) -> Error {
    Error::Conflict(format!("run {run_pk} is no longer {from}"))
}

/// The scope to read again when the planner asks for more tasks: the tasks
/// added, or the whole run after a few rounds. (Until then the caller reads
/// the scope it was given, without copying it: a wide fan-in's list is long.)
pub(super) fn widen(scope: &Scope, more: Vec<String>, rounds: u32) -> Scope {
    match scope {
        Scope::Tasks {
            tasks,
            fan_ins,
            siblings,
        } if rounds < 4 => {
            let mut ids = tasks.clone();
            ids.extend(more);
            ids.sort();
            ids.dedup();
            Scope::Tasks {
                tasks: ids,
                fan_ins: fan_ins.clone(),
                siblings: siblings.clone(),
            }
        }
        _ => Scope::All,
    }
}

/// Whether a plan gives the dispatcher something to do: new work, or a slot
/// freed for work already waiting.
pub(super) fn dispatches(plan: &Plan) -> bool {
    plan.tasks
        .iter()
        .any(|c| c.to == TaskState::Scheduled || c.from == TaskState::Running)
}

/// Of the scheduled candidates (`(ti_id, dag_id, pool)`, best first), those
/// that fit their pool's and DAG's free slots, given each limit and its use
/// (`('p' | 'd', name, limit, used)`).
pub(super) fn choose_queued(
    candidates: &[(String, String, String)],
    limits: Vec<(String, String, i64, i64)>,
) -> Vec<&str> {
    let mut pools: HashMap<String, (i64, i64)> = HashMap::new();
    let mut dags: HashMap<String, (i64, i64)> = HashMap::new();
    for (kind, name, limit, used) in limits {
        let map = if kind == "p" { &mut pools } else { &mut dags };
        map.insert(name, (limit, used));
    }
    let mut chosen = Vec::new();
    for (id, dag_id, pool) in candidates {
        let p = pools.entry(pool.clone()).or_insert((0, 0));
        if p.1 >= p.0 {
            continue;
        }
        let d = dags.entry(dag_id.clone()).or_insert((i64::MAX, 0));
        if d.1 >= d.0 {
            continue;
        }
        p.1 += 1;
        d.1 += 1;
        chosen.push(id.as_str());
    }
    chosen
}

/// A claimed row as the claim statement returns it.
pub(super) type ClaimedRow = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    String,
    i64,
    Option<String>,
);

/// The claim a claimed row becomes.
pub(super) fn claim_of(row: ClaimedRow, req: &ClaimRequest) -> Claim {
    let (
        ti_id,
        run_pk,
        version_id,
        dag_id,
        run_id,
        task_id,
        try_number,
        started_at,
        queued_at,
        queue,
        map_index,
        map_item,
    ) = row;
    let log_path = super::log_path(&dag_id, &run_id, &task_id, map_index, try_number);
    Claim {
        ti_id,
        run_pk,
        dag_id,
        run_id,
        task_id,
        map_index,
        map_item,
        try_number,
        version_id,
        log_path,
        queued_at,
        started_at,
        queue,
        lease_id: req.lease_id.clone(),
        lease_until: req.lease_until,
    }
}
