//! SQLite's writer for the engine's hot path: reports (apply each plan,
//! queue, claim the next task), claims and queueing run as one job each on
//! a connection of their own, owned by one thread. With sqlx every
//! statement is a round trip to its connection's thread, and a report is
//! about a dozen statements; here the whole transaction is one hand-over,
//! and the prepared statements stay cached on the connection.
//!
//! The statements' text and the decisions between them are the ones the
//! sqlx path uses ([`super::statements`], [`super::apply`]). A plan that
//! expands a mapped task is left to the sqlx path (the job rolls back and
//! answers that it did nothing). Being one thread, the writer also orders
//! these transactions among themselves; other writes of the process wait
//! for its lock through SQLite's busy timeout, as another process's would.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, Statement, ToSql, TransactionBehavior};

use super::from_row::DirectRow;
use super::statements as st;
use super::{
    Advance, Advanced, Claim, ClaimRequest, Error, FanIn, FanInCounts, Plan, Planned, Result,
    RunRecord, RunSnapshot, Scope, SiblingCounts, TaskStateRecord, apply,
};
use crate::state::TaskState;

/// How SQLite (this store) turns a JSON array parameter into a list.
macro_rules! in_json {
    ($statement:ident $(, $before:literal)?) => {
        st::$statement!($($before,)? "IN (SELECT value FROM json_each(", "))")
    };
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer thread and its connection.
pub(super) struct DirectWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter").finish_non_exhaustive()
    }
}

impl DirectWriter {
    /// Opens a connection to the database file at `path` (which exists:
    /// sqlx created it) and starts its thread.
    pub(super) async fn open(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.busy_handler(Some(wait_for_lock))?;
            conn.pragma_update(None, "foreign_keys", true)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        })
        .await
        .map_err(|e| Error::Plan(format!("opening SQLite's writer: {e}")))??;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("weir-sqlite-writer".into())
            .spawn(move || serve(conn, &queue))
            .map_err(|e| Error::Plan(format!("starting SQLite's writer thread: {e}")))?;
        Ok(DirectWriter { jobs })
    }

    /// Runs `job` on the writer's connection and returns what it answers.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(job(conn));
            }))
            .map_err(|_| Error::Plan("SQLite's writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Plan("SQLite's writer dropped a job (it panicked)".into()))?
    }
}

/// The writer thread: one job at a time until the store is dropped. A job
/// that panics (a bug) fails only itself; its transaction is rolled back.
fn serve(mut conn: Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
        if ran.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Waits for another connection's write lock in short steps, 50 µs at first
/// (SQLite's own handler starts at a millisecond, longer than a report's
/// whole transaction), for about 30 seconds in all, as sqlx's writer does.
fn wait_for_lock(attempt: i32) -> bool {
    let step = u32::try_from(attempt.clamp(0, 8)).unwrap_or(8);
    if attempt > 2400 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(50 << step));
    true
}

/// A time stamp bound as sqlx binds one, so stored stamps compare as text.
struct Stamp(DateTime<Utc>);

impl ToSql for Stamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(
            self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        ))
    }
}

fn stamp(at: Option<DateTime<Utc>>) -> Option<Stamp> {
    at.map(Stamp)
}

/// Binds `args` to `$1`, `$2`, … by name (a statement may name them in any
/// order, and SQLite numbers named parameters as they first appear).
fn bind(stmt: &mut Statement<'_>, args: &[&dyn ToSql]) -> Result<()> {
    const NAMES: [&str; 12] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12",
    ];
    for (name, arg) in NAMES.iter().zip(args) {
        if let Some(index) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(index, arg)?;
        }
    }
    Ok(())
}

/// Runs a statement that changes rows; returns how many.
fn execute(conn: &Connection, sql: &str, args: &[&dyn ToSql]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    Ok(stmt.raw_execute()?)
}

/// Runs a query, reading each row with `read`.
fn query<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

fn counts(conn: &Connection, sql: &str, args: &[&dyn ToSql]) -> Result<Vec<(String, i64)>> {
    query(conn, sql, args, |r| Ok((r.get(0)?, r.get(1)?)))
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Plan(format!("encoding a parameter: {e}")))
}

/// Applies a batch of reports (see [`super::AdvanceStore::advance_runs`]);
/// `None` when a plan expands a mapped task, which the sqlx path applies.
pub(super) fn advance_batch(
    conn: &mut Connection,
    items: &[Advance],
) -> Result<Option<Vec<Result<Advanced>>>> {
    // Runs in key order, as the sqlx path locks them.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].run_pk);
    let mut now = Utc::now();
    for e in items.iter().filter_map(|i| i.end.as_ref()) {
        now = now.max(e.at);
    }
    // First without savepoints: conflicts are rare, and after one the batch
    // is applied again with each item in a savepoint of its own.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results: Vec<Option<Result<Plan>>> = (0..items.len()).map(|_| None).collect();
    let mut conflict = false;
    let mut cache = CountCache::default();
    for &i in &order {
        match apply_one(&tx, &items[i], &mut cache) {
            Ok(Some(plan)) => results[i] = Some(Ok(plan)),
            Ok(None) => return Ok(None),
            Err(e) if items.len() == 1 => return Ok(Some(vec![Err(e)])),
            Err(_) => {
                conflict = true;
                break;
            }
        }
    }
    let tx = if conflict {
        drop(tx);
        results = (0..items.len()).map(|_| None).collect();
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut cache = CountCache::default();
        for &i in &order {
            let sp = tx.savepoint()?;
            // The counts may follow only the moves that stand.
            let mut tentative = cache.clone();
            match apply_one(&sp, &items[i], &mut tentative) {
                Ok(Some(plan)) => {
                    sp.commit()?;
                    cache = tentative;
                    results[i] = Some(Ok(plan));
                }
                Ok(None) => return Ok(None),
                // Dropped, the savepoint rolls back: the others stand.
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        tx
    } else {
        tx
    };
    let dispatch = results.iter().flatten().flatten().any(apply::dispatches);
    let queued = if dispatch { queue_in(&tx, now)? } else { 0 };
    // Claims for the slots that asked, one statement per worker, handed out in order.
    let mut claims: Vec<Vec<Claim>> = (0..items.len()).map(|_| Vec::new()).collect();
    let mut groups: Vec<(&ClaimRequest, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(req) = &item.claim else { continue };
        if !matches!(results[i], Some(Ok(_))) {
            continue;
        }
        match groups.iter_mut().find(|(r, _)| {
            r.worker == req.worker && r.hostname == req.hostname && r.queues == req.queues
        }) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((req, vec![i])),
        }
    }
    for (req, idx) in groups {
        let request = ClaimRequest {
            limit: i64::try_from(idx.len()).unwrap_or(i64::MAX),
            ..req.clone()
        };
        let got = claim_in(&tx, &request)?;
        for (slot, claim) in idx.into_iter().zip(got) {
            claims[slot].push(claim);
        }
    }
    tx.commit()?;
    Ok(Some(
        results
            .into_iter()
            .zip(claims)
            .map(|(r, c)| match r {
                Some(Ok(plan)) => Ok(Advanced {
                    plan,
                    queued,
                    claims: c,
                }),
                Some(Err(e)) => Err(e),
                None => Err(Error::Plan("item was not applied".into())),
            })
            .collect(),
    ))
}

/// Reads one run's snapshot, asks its planner and writes the plan, guarded
/// (the sqlx path's `apply_in`); `None` for a plan that expands a mapped task.
fn apply_one(conn: &Connection, item: &Advance, cache: &mut CountCache) -> Result<Option<Plan>> {
    let run_pk = item.run_pk;
    let run = query(
        conn,
        st::select_run!(""),
        &[&run_pk],
        RunRecord::from_direct,
    )?
    .pop()
    .ok_or_else(|| Error::NotFound(format!("run {run_pk}")))?;
    let mut scope = Cow::Borrowed(&item.scope);
    let mut rounds = 0;
    let (snapshot, plan) = loop {
        let snapshot = snapshot(conn, &run, &scope, cache)?;
        match (item.planner)(&snapshot)? {
            Planned::Done(plan) => break (snapshot, plan),
            Planned::NeedTasks(more) => {
                rounds += 1;
                scope = Cow::Owned(apply::widen(&scope, more, rounds));
            }
        }
    };
    if plan.expansion.is_some() {
        return Ok(None);
    }
    let end = item.end.as_ref();
    let now = end.map_or_else(Utc::now, |e| e.at);
    for c in &plan.tasks {
        let (reset, ends) = apply::task_move(c)?;
        let done = execute(
            conn,
            st::move_task!(),
            &[
                &c.to.as_str(),
                &c.max_tries,
                &stamp(c.next_try_at),
                &reset,
                &ends,
                &Stamp(now),
                &run_pk,
                &c.task_id,
                &c.from.as_str(),
                &c.try_number,
                &c.map_index,
            ],
        )?;
        if done != 1 {
            return Err(apply::task_conflict(c, run_pk));
        }
        if let Some((ti_id, state)) = apply::stopped_try(&snapshot, c, end) {
            execute(
                conn,
                st::close_stopped_try!(),
                &[
                    &state,
                    &Stamp(now),
                    &apply::stopped_error(c),
                    &ti_id,
                    &c.try_number,
                ],
            )?;
        }
    }
    if let Some(e) = end {
        let state = apply::try_end_state(&snapshot, &plan, e)?;
        let done = execute(
            conn,
            st::end_try!(),
            &[
                &state.as_str(),
                &Stamp(e.at),
                &e.exit_code,
                &e.error,
                &e.ti_id,
                &e.try_number,
                &e.pid,
                &e.output,
            ],
        )?;
        if done != 1 {
            return Err(apply::try_conflict(e));
        }
    }
    let (d_unfinished, d_failed) = apply::counter_deltas(&plan);
    if d_unfinished != 0 || d_failed != 0 {
        execute(conn, st::count_run!(), &[&d_unfinished, &d_failed, &run_pk])?;
    }
    if let Some((from, to)) = plan.run {
        apply::run_move(run_pk, from, to)?;
        let done = execute(
            conn,
            st::move_run!(),
            &[&to.as_str(), &Stamp(now), &run_pk, &from.as_str()],
        )?;
        if done != 1 {
            return Err(apply::run_conflict(run_pk, from));
        }
    }
    for n in &plan.notices {
        execute(
            conn,
            st::insert_notice!(),
            &[
                &n.key(run_pk),
                &run_pk,
                &n.task_id,
                &n.try_number,
                &n.event.as_str(),
                &n.rule,
                &Stamp(now),
                &n.map_index,
            ],
        )?;
    }
    cache.follow(run_pk, &snapshot, &plan);
    Ok(Some(plan))
}

/// Fan-in counts read in one transaction — over all of a fan-in's upstream
/// tasks, by state — kept up to date with the transaction's own moves, so a
/// batch of reports from one wide fan-out reads its fan-in once, not once per
/// report. Only plain tasks are kept (no mapped instances: they are counted
/// by rules of their own); anything else is read from the database.
#[derive(Debug, Clone, Default)]
struct CountCache {
    /// By run and downstream task: its upstream tasks and their counts.
    entries: HashMap<(i64, String), Counted>,
}

/// A fan-in's upstream tasks and how many of them are in each state.
type Counted = (Arc<HashSet<String>>, HashMap<TaskState, i64>);

impl CountCache {
    /// The counts of `fan_in`'s upstream tasks other than those read as
    /// rows (`ids`, `rows`), when they can be derived from what is kept
    /// (reading the whole fan-in once if needed); `None` to read them.
    fn others(
        &mut self,
        conn: &Connection,
        run_pk: i64,
        fan_in: &FanIn,
        ids: &[String],
        rows: &[TaskStateRecord],
    ) -> Result<Option<Vec<(TaskState, i64)>>> {
        let read: Vec<&TaskStateRecord> = rows
            .iter()
            .filter(|r| fan_in.upstream.contains(&r.task_id))
            .collect();
        if read.iter().any(|r| plain(r).is_none()) {
            return Ok(None);
        }
        let (_, all) = match self.entries.entry((run_pk, fan_in.task_id.clone())) {
            Entry::Occupied(kept) => kept.into_mut(),
            Entry::Vacant(new) => {
                let all = counts(
                    conn,
                    in_json!(count_upstream),
                    &[&run_pk, &json(&fan_in.upstream)?],
                )?;
                let upstream: HashSet<String> = fan_in.upstream.iter().cloned().collect();
                let by_state = super::sql::parsed(all)?.into_iter().collect();
                new.insert((Arc::new(upstream), by_state))
            }
        };
        let mut others = all.clone();
        for r in read.iter().filter(|r| ids.contains(&r.task_id)) {
            if r.state != TaskState::Removed {
                *others.entry(r.state).or_default() -= 1;
            }
        }
        let mut out: Vec<(TaskState, i64)> = others.into_iter().filter(|(_, n)| *n != 0).collect();
        out.sort_by_key(|(state, _)| state.as_str());
        Ok(Some(out))
    }

    /// Follows a plan just applied to run `run_pk`: each move of a plain
    /// upstream task moves one count; a move of anything else forgets the
    /// counts it touches.
    fn follow(&mut self, run_pk: i64, snapshot: &RunSnapshot, plan: &Plan) {
        for c in &plan.tasks {
            let row = snapshot
                .tasks
                .iter()
                .find(|t| t.task_id == c.task_id && t.map_index == c.map_index);
            let simple = c.map_index < 0 && row.and_then(plain).is_some();
            self.entries.retain(|(run, _), (upstream, by_state)| {
                if *run != run_pk || !upstream.contains(&c.task_id) {
                    return true;
                }
                if !simple {
                    return false;
                }
                if c.from != TaskState::Removed {
                    *by_state.entry(c.from).or_default() -= 1;
                }
                if c.to != TaskState::Removed {
                    *by_state.entry(c.to).or_default() += 1;
                }
                true
            });
        }
    }
}

/// A task instance of a plain task (not mapped, not expanded).
fn plain(r: &TaskStateRecord) -> Option<&TaskStateRecord> {
    (r.map_index < 0 && r.map_count.unwrap_or(0) == 0).then_some(r)
}

/// The run's task instances in `scope`, with the counts it asks for.
fn snapshot(
    conn: &Connection,
    run: &RunRecord,
    scope: &Scope,
    cache: &mut CountCache,
) -> Result<RunSnapshot> {
    let run_pk = run.id;
    let (tasks, fan_ins, siblings) = match scope {
        Scope::All => (
            query(
                conn,
                st::select_all_tasks!(),
                &[&run_pk],
                TaskStateRecord::from_direct,
            )?,
            Vec::new(),
            None,
        ),
        Scope::Tasks {
            tasks: ids,
            fan_ins,
            siblings,
        } => {
            let (counted_task, read_index) = match siblings {
                Some((t, i)) => (Some(t.as_str()), *i),
                None => (None, -1),
            };
            let rows = query(
                conn,
                in_json!(select_scoped_tasks),
                &[&run_pk, &json(ids)?, &counted_task, &read_index],
                TaskStateRecord::from_direct,
            )?;
            let siblings = match counted_task {
                Some(task_id) => Some(SiblingCounts {
                    task_id: task_id.to_owned(),
                    counts: super::sql::parsed(counts(
                        conn,
                        st::count_siblings!(),
                        &[&run_pk, &task_id, &read_index],
                    )?)?,
                }),
                None => None,
            };
            let mut counted = Vec::with_capacity(fan_ins.len());
            for f in fan_ins {
                let counts = match cache.others(conn, run_pk, f, ids, &rows)? {
                    Some(counts) => counts,
                    None => {
                        let others: Vec<&String> =
                            f.upstream.iter().filter(|u| !ids.contains(u)).collect();
                        super::sql::parsed(counts(
                            conn,
                            in_json!(count_upstream),
                            &[&run_pk, &json(&others)?],
                        )?)?
                    }
                };
                counted.push(FanInCounts {
                    task_id: f.task_id.clone(),
                    counts,
                });
            }
            (rows, counted, siblings)
        }
    };
    Ok(RunSnapshot::of(run.clone(), tasks, fan_ins, siblings))
}

/// Queues scheduled work in a transaction of its own.
pub(super) fn queue(conn: &mut Connection, now: DateTime<Utc>) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let queued = queue_in(&tx, now)?;
    tx.commit()?;
    Ok(queued)
}

/// Claims queued work in a transaction of its own.
pub(super) fn claim(conn: &mut Connection, req: &ClaimRequest) -> Result<Vec<Claim>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let claims = claim_in(&tx, req)?;
    tx.commit()?;
    Ok(claims)
}

/// The sqlx path's `queue_in`: scheduled work within pool and DAG limits.
fn queue_in(conn: &Connection, now: DateTime<Utc>) -> Result<usize> {
    let candidates: Vec<(String, String, String)> =
        query(conn, st::queue_candidates!(), &[], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let limits = query(conn, st::queue_limits!(), &[], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let chosen = apply::choose_queued(&candidates, limits);
    if !chosen.is_empty() {
        let done = execute(
            conn,
            in_json!(queue_chosen),
            &[&Stamp(now), &json(&chosen)?],
        )?;
        if done != chosen.len() {
            return Err(Error::Conflict(
                "scheduled task instances changed while queueing".into(),
            ));
        }
    }
    Ok(chosen.len())
}

/// The sqlx path's `claim_in`: each claimed task instance starts a try,
/// recorded in the history.
fn claim_in(conn: &Connection, req: &ClaimRequest) -> Result<Vec<Claim>> {
    let queues = req.queues.as_ref().map(json).transpose()?;
    let rows = query(
        conn,
        in_json!(claim_queued, ""),
        &[
            &Stamp(req.now),
            &req.hostname,
            &req.worker,
            &Stamp(req.lease_until),
            &req.limit,
            &queues,
            &req.lease_id,
        ],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                super::from_row::parse_stamp(&r.get::<_, String>(7)?)?,
                r.get::<_, Option<String>>(8)?
                    .as_deref()
                    .map(super::from_row::parse_stamp)
                    .transpose()?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        },
    )?;
    let claims: Vec<Claim> = rows.into_iter().map(|r| apply::claim_of(r, req)).collect();
    for c in &claims {
        execute(
            conn,
            concat!(
                st::try_columns!(),
                "VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9)"
            ),
            &[
                &c.ti_id,
                &c.try_number,
                &c.dag_id,
                &c.run_id,
                &c.task_id,
                &Stamp(c.started_at),
                &req.hostname,
                &req.worker,
                &c.log_path,
            ],
        )?;
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps the writer binds are the text sqlx binds, so a stamp written
    /// one way compares (as text) with one written the other.
    #[tokio::test]
    async fn stamps_are_bound_as_sqlx_binds_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stamps.db");
        let url = format!("sqlite://{}", file.display());
        let store = super::super::SqliteStore::connect(&url).await.unwrap();
        let writer = DirectWriter::open(&file).await.unwrap();
        for at in [
            Utc::now(),
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05.120Z")
                .unwrap()
                .to_utc(),
        ] {
            let by_sqlx: String = sqlx::query_scalar("SELECT $1")
                .bind(at)
                .fetch_one(store.reader())
                .await
                .unwrap();
            let direct: String = writer
                .run(move |conn| {
                    Ok(query(conn, "SELECT $1", &[&Stamp(at)], |r| Ok(r.get(0)?))?
                        .pop()
                        .unwrap_or_default())
                })
                .await
                .unwrap();
            assert_eq!(direct, by_sqlx);
            assert_eq!(super::super::from_row::parse_stamp(&direct).unwrap(), at);
        }
    }

    /// Parameters are bound by their number, whatever order the statement
    /// names them in.
    #[tokio::test]
    async fn parameters_bind_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bind.db");
        let _store = super::super::SqliteStore::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let writer = DirectWriter::open(&file).await.unwrap();
        let got: Vec<(i64, i64, i64)> = writer
            .run(|conn| {
                query(conn, "SELECT $3, $1, $2", &[&1_i64, &2_i64, &3_i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
            })
            .await
            .unwrap();
        assert_eq!(got, vec![(3, 1, 2)]);
    }
}
