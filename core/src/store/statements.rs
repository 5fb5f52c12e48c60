//! The text of the statements on the engine's hot path (applying a plan,
//! queueing, claiming), written once and used by both ways of running
//! them: sqlx on either backend and SQLite's direct writer. Each macro
//! expands to a string literal; the backend's differences are its arguments.

/// A run, locked for the transaction where the backend locks rows.
macro_rules! select_run {
    ($for_update:literal) => {
        concat!("SELECT * FROM dag_runs WHERE id = $1 ", $for_update)
    };
}

/// Every task instance of a run, as the planner reads them.
macro_rules! select_all_tasks {
    () => {
        "SELECT id, task_id, state, try_number, max_tries, next_try_at, map_index, map_count \
         FROM task_instances WHERE run_pk = $1"
    };
}

/// The named tasks' instances (`$2`, a JSON array); of a task whose mapped
/// instances are counted (`$3`), only its own row and map index `$4`.
macro_rules! select_scoped_tasks {
    ($in_json_open:literal, $in_json_close:literal) => {
        concat!(
            "SELECT id, task_id, state, try_number, max_tries, next_try_at, map_index, map_count \
             FROM task_instances WHERE run_pk = $1 AND task_id ",
            $in_json_open,
            "$2",
            $in_json_close,
            " AND ($3 IS NULL OR task_id <> $3 OR map_index < 0 OR map_index = $4)"
        )
    };
}

/// A mapped task's other instances, counted by state.
macro_rules! count_siblings {
    () => {
        "SELECT state, COUNT(*) FROM task_instances WHERE run_pk = $1 AND task_id = $2 \
         AND map_index >= 0 AND map_index <> $3 AND state <> 'removed' GROUP BY state"
    };
}

/// Upstream tasks (`$2`, a JSON array) counted by state; an expanded task
/// counts by its mapped instances, not its own.
macro_rules! count_upstream {
    ($in_json_open:literal, $in_json_close:literal) => {
        concat!(
            "SELECT state, COUNT(*) FROM task_instances WHERE run_pk = $1 AND task_id ",
            $in_json_open,
            "$2",
            $in_json_close,
            " AND state <> 'removed' AND NOT (map_index < 0 AND COALESCE(map_count, 0) > 0) GROUP BY state"
        )
    };
}

/// One guarded task instance move: `$1` new state, `$2` max tries, `$3` next
/// try, `$4` reset, `$5` ends, `$6` now, then the guard: run `$7`, task `$8`,
/// map index `$11`, state `$9`, try `$10`.
macro_rules! move_task {
    () => {
        "UPDATE task_instances SET state = $1, max_tries = COALESCE($2, max_tries), next_try_at = $3, \
           start_date = CASE WHEN $4 THEN NULL WHEN $5 THEN COALESCE(start_date, $6) ELSE start_date END, \
           end_date = CASE WHEN $4 THEN NULL WHEN $5 THEN $6 ELSE end_date END, \
           queued_at = CASE WHEN $4 THEN NULL ELSE queued_at END, \
           lease_until = CASE WHEN $4 OR $5 THEN NULL ELSE lease_until END, \
           map_count = CASE WHEN $4 THEN NULL ELSE map_count END, \
           updated_at = $6 \
         WHERE run_pk = $7 AND task_id = $8 AND map_index = $11 AND state = $9 AND try_number = $10"
    };
}

/// Closes a running try stopped by hand.
macro_rules! close_stopped_try {
    () => {
        "UPDATE task_tries SET state = $1, end_date = $2, error = $3 \
         WHERE ti_id = $4 AND try_number = $5 AND state = 'running'"
    };
}

/// Ends the reported try.
macro_rules! end_try {
    () => {
        "UPDATE task_tries SET state = $1, end_date = $2, exit_code = $3, error = $4, \
           pid = COALESCE($7, pid), output = $8 \
         WHERE ti_id = $5 AND try_number = $6 AND state = 'running'"
    };
}

/// The run's counters follow its task instances.
macro_rules! count_run {
    () => {
        "UPDATE dag_runs SET unfinished = unfinished + $1, failed = failed + $2 WHERE id = $3"
    };
}

/// One guarded run move.
macro_rules! move_run {
    () => {
        "UPDATE dag_runs SET state = $1, \
           start_date = CASE WHEN $1 = 'running' THEN COALESCE(start_date, $2) ELSE start_date END, \
           end_date = CASE WHEN $1 IN ('success', 'failed') THEN $2 ELSE NULL END \
         WHERE id = $3 AND state = $4"
    };
}

/// A notification a change fires, recorded once (its key).
macro_rules! insert_notice {
    () => {
        "INSERT INTO notifications (key, run_pk, task_id, try_number, event, rule, state, attempts, \
           next_attempt_at, created_at, map_index) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $8) \
         ON CONFLICT (key) DO NOTHING"
    };
}

/// Scheduled work of running runs, best first: `(ti_id, dag_id, pool)`.
macro_rules! queue_candidates {
    () => {
        "SELECT q.ti_id, q.dag_id, q.pool FROM task_queue q JOIN dag_runs r ON r.id = q.run_pk \
         JOIN task_instances ti ON ti.id = q.ti_id \
         WHERE q.state = 'scheduled' AND r.state = 'running' \
         ORDER BY q.priority DESC, r.run_after, ti.updated_at LIMIT 5000"
    };
}

/// Limits and current use of every pool (`'p'`) and of the DAGs with
/// scheduled work (`'d'`), in one read.
macro_rules! queue_limits {
    () => {
        "SELECT 'p', name, slots, (SELECT COUNT(*) FROM task_queue t \
           WHERE t.pool = pools.name AND t.state IN ('queued', 'running')) FROM pools \
         UNION ALL \
         SELECT 'd', dag_id, max_active_tasks, (SELECT COUNT(*) FROM task_queue t \
           WHERE t.dag_id = dags.dag_id AND t.state IN ('queued', 'running')) FROM dags \
           WHERE dag_id IN (SELECT DISTINCT dag_id FROM task_queue WHERE state = 'scheduled')"
    };
}

/// Queues the chosen task instances (`$2`, a JSON array) at `$1`.
macro_rules! queue_chosen {
    ($in_json_open:literal, $in_json_close:literal) => {
        concat!(
            "UPDATE task_instances SET state = 'queued', queued_at = $1, updated_at = $1 \
             WHERE state = 'scheduled' AND id ",
            $in_json_open,
            "$2",
            $in_json_close
        )
    };
}

/// Claims up to `$5` queued task instances of the queues `$6` (a JSON
/// array, or NULL for all) for worker `$3` on host `$2`: each starts a new
/// try under lease `$7` until `$4`. The candidates are picked once, in a
/// materialized CTE: as an `IN (SELECT … LIMIT n)` subquery, PostgreSQL may
/// re-run the pick for every row it updates (a nested-loop semi join), and
/// each re-run skips the rows this statement already took and picks the
/// next: one claim of 1 could take every queued task.
macro_rules! claim_queued {
    ($skip_locked:literal, $in_json_open:literal, $in_json_close:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED (SELECT ti_id AS pick FROM task_queue WHERE state = 'queued' \
               AND ($6 IS NULL OR queue ",
            $in_json_open,
            "$6",
            $in_json_close,
            ") ORDER BY priority DESC, queued_at LIMIT $5 ",
            $skip_locked,
            ") UPDATE task_instances SET state = 'running', try_number = try_number + 1, \
               start_date = CASE WHEN queued_at > $1 THEN queued_at ELSE $1 END, \
               end_date = NULL, next_try_at = NULL, hostname = $2, worker = $3, pid = NULL, lease_until = $4, \
               lease_id = $7, updated_at = $1 \
             WHERE state = 'queued' AND id IN (SELECT pick FROM picked) \
             RETURNING id, run_pk, version_id, dag_id, run_id, task_id, try_number, start_date, queued_at, queue, map_index, map_item"
        )
    };
}

/// The columns of a try's first row, in the order the claim binds them.
macro_rules! try_columns {
    () => {
        "INSERT INTO task_tries (ti_id, try_number, dag_id, run_id, task_id, state, start_date, \
           hostname, worker, log_path) "
    };
}

pub(crate) use {
    claim_queued, close_stopped_try, count_run, count_siblings, count_upstream, end_try,
    insert_notice, move_run, move_task, queue_candidates, queue_chosen, queue_limits,
    select_all_tasks, select_run, select_scoped_tasks, try_columns,
};
