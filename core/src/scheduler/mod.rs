//! The event-driven scheduler. Creating a run schedules its ready tasks;
//! finishing a try records it, schedules what became ready and closes the run
//! in the same transaction (see [`plan`]); a timer only handles retries that
//! come due, expired leases and run timeouts.
//!
//! [`Scheduler`] is a cheap handle; [`Scheduler::run`] is its loop.

pub mod backfill;
pub mod clock;
pub mod datasets;
pub mod intervals;
pub mod metrics;
pub mod plan;
pub mod workers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};
pub use plan::{Action, Outcome};

use crate::dag::file::DagFile;
use crate::dag::{Dag, convert};
use crate::loader::{self, ImportError, LoadReport};
use crate::state::{RunState, RunType, TaskState};
use crate::store::{
    self, AuditAction, AuditEntry, Claim, ClaimRequest, DagSync, ImportErrorRecord, NewRun,
    NewTaskInstance, Plan, RunRecord, Store, TryEnd,
};

/// A scheduler failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A stored DAG version cannot be turned back into a DAG.
    #[error("DAG version {version}: {message}")]
    BadVersion {
        /// The version id.
        version: i64,
        /// What is wrong.
        message: String,
    },
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The DAG folder could not be loaded.
    #[error("loading DAGs: {0}")]
    Load(String),
    /// The store failed for a whole group-committed batch of reports; every
    /// report in it gets this same error (a database failure, never a conflict).
    #[error("committing a batch of reports: {0}")]
    Batch(Arc<store::Error>),
    /// A report was dropped before the batch that held it answered.
    #[error("the report was dropped before it was committed")]
    Unanswered,
}

/// The result type of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of a scheduler.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often the timer runs (retries, leases, timeouts).
    pub tick: Duration,
    /// New DAGs start paused.
    pub paused_at_creation: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            paused_at_creation: false,
        }
    }
}

/// A request to trigger a run.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    /// The run id (default `manual__<logical date>`).
    pub run_id: Option<String>,
    /// The logical date (default now).
    pub logical_date: Option<DateTime<Utc>>,
    /// Conf: a JSON object overriding params.
    pub conf: Option<serde_json::Value>,
    /// A note.
    pub note: Option<String>,
    /// Who asked.
    pub actor: String,
}

/// The tasks a plan clears.
fn cleared(plan: &Plan) -> Vec<String> {
    plan.tasks
        .iter()
        .filter(|c| c.to == TaskState::None)
        .map(|c| c.task_id.clone())
        .collect()
}

/// Which task instances of a run to clear.
#[derive(Debug, Clone, Default)]
pub struct ClearSpec {
    /// The tasks asked for.
    pub task_ids: Vec<String>,
    /// Also every task downstream of them.
    pub downstream: bool,
    /// Also every task upstream of them.
    pub upstream: bool,
    /// Only tasks that failed (failed or upstream_failed).
    pub only_failed: bool,
}

impl ClearSpec {
    fn action(&self) -> Action {
        Action::Clear {
            task_ids: self.task_ids.clone(),
            downstream: self.downstream,
            upstream: self.upstream,
            only_failed: self.only_failed,
        }
    }
}

/// How a worker reports a try that ended.
#[derive(Debug, Clone)]
pub struct Report {
    /// The claim the try started with.
    pub claim: Claim,
    /// How it ended.
    pub outcome: Outcome,
    /// Exit code of the process, if any.
    pub exit_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The process id, if the try ran a process.
    pub pid: Option<i64>,
}

/// The scheduler handle.
#[derive(Debug, Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    options: Options,
    dags: Mutex<HashMap<i64, Arc<Dag>>>,
    /// Woken when task instances were queued: workers should claim.
    work: Notify,
    /// Reports of ended tries waiting to be committed together.
    pending: Mutex<Vec<Pending>>,
    /// Held by the caller committing a batch of reports.
    committing: tokio::sync::Mutex<()>,
    /// Per DAG (and version): the earliest time a scheduled interval can end.
    next_due: Mutex<HashMap<(String, i64), DateTime<Utc>>>,
    /// Latency and duration histograms.
    metrics: metrics::Metrics,
}

/// A reported try waiting for the next group commit.
#[derive(Debug)]
struct Pending {
    dag: Arc<Dag>,
    run_pk: i64,
    action: Action,
    end: TryEnd,
    /// The worker slot (worker, host) to claim the next task for.
    slot: Option<(String, String)>,
    reply: tokio::sync::oneshot::Sender<Result<(Plan, Option<Claim>)>>,
}

impl Scheduler {
    /// A scheduler on `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, options: Options) -> Self {
        Scheduler {
            inner: Arc::new(Inner {
                store,
                clock,
                options,
                dags: Mutex::new(HashMap::new()),
                work: Notify::new(),
                pending: Mutex::new(Vec::new()),
                committing: tokio::sync::Mutex::new(()),
                next_due: Mutex::new(HashMap::new()),
                metrics: metrics::Metrics::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The scheduler's histograms.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Now, by the scheduler's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The lease a claim gets.
    pub fn lease(&self) -> Duration {
        self.inner.options.lease
    }

    /// Resolves when task instances may be waiting to be claimed.
    pub async fn work_available(&self) {
        self.inner.work.notified().await;
    }

    // ---- DAG files --------------------------------------------------------

    /// Loads the DAG folder (off the async runtime) and records the DAGs,
    /// their versions and the import errors.
    pub async fn sync_folder(&self, dir: &Path) -> Result<LoadReport> {
        let dir: PathBuf = dir.to_path_buf();
        let report = tokio::task::spawn_blocking(move || loader::load_folder(&dir))
            .await
            .map_err(|e| Error::Load(e.to_string()))?;
        self.sync_report(&report).await?;
        Ok(report)
    }

    /// Records a load report in the store.
    pub async fn sync_report(&self, report: &LoadReport) -> Result<()> {
        let now = self.now();
        let dags: Vec<DagSync> = report
            .dags
            .iter()
            .map(|d| DagSync {
                dag_id: d.id.to_string(),
                fileloc: d.fileloc.display().to_string(),
                hash: d.version.hash.clone(),
                definition: d.version.definition.clone(),
                paused: d.paused,
                schedule: d.schedule.describe(),
                timezone: d.timezone.name().to_owned(),
                description: d.description.clone(),
                owner: d.owner.clone(),
                tags: d.tags.clone(),
                max_active_runs: i64::from(d.max_active_runs),
                max_active_tasks: i64::from(d.max_active_tasks),
            })
            .collect();
        let errors: Vec<ImportErrorRecord> = report
            .errors
            .iter()
            .map(|e| import_error_record(e, now))
            .collect();
        self.inner
            .store
            .sync_dags(&dags, &errors, self.inner.options.paused_at_creation, now)
            .await?;
        Ok(())
    }

    /// The DAG a stored version describes (cached; versions never change).
    pub async fn dag_version(&self, version_id: i64) -> Result<Arc<Dag>> {
        if let Some(d) = self
            .inner
            .dags
            .lock()
            .ok()
            .and_then(|m| m.get(&version_id).cloned())
        {
            return Ok(d);
        }
        let v = self.inner.store.get_version(version_id).await?;
        let bad = |message: String| Error::BadVersion {
            version: version_id,
            message,
        };
        let file: DagFile = serde_json::from_str(&v.definition).map_err(|e| bad(e.to_string()))?;
        let dag = convert::to_dag(&file, Path::new(&v.fileloc)).map_err(|problems| {
            bad(problems
                .into_iter()
                .map(|p| p.message)
                .collect::<Vec<_>>()
                .join("; "))
        })?;
        let dag = Arc::new(dag);
        if let Ok(mut m) = self.inner.dags.lock() {
            m.insert(version_id, dag.clone());
        }
        Ok(dag)
    }

    /// The newest version of a DAG.
    pub async fn latest_dag(&self, dag_id: &str) -> Result<(i64, Arc<Dag>)> {
        let rec = self.inner.store.get_dag(dag_id).await?;
        Ok((
            rec.latest_version_id,
            self.dag_version(rec.latest_version_id).await?,
        ))
    }

    // ---- runs -------------------------------------------------------------

    /// Triggers a manual run of the DAG's newest version; it starts at once
    /// unless `max_active_runs` runs are already going.
    pub async fn trigger(&self, dag_id: &str, t: Trigger) -> Result<RunRecord> {
        let (version_id, dag) = self.latest_dag(dag_id).await?;
        let now = self.now();
        let logical = t.logical_date.unwrap_or(now);
        let conf = match t.conf {
            None => serde_json::json!({}),
            Some(c @ serde_json::Value::Object(_)) => c,
            Some(_) => return Err(Error::Invalid("conf must be a JSON object".into())),
        };
        let run_id = t.run_id.unwrap_or_else(|| RunType::Manual.run_id(logical));
        if run_id.trim().is_empty() || run_id.len() > 250 {
            return Err(Error::Invalid(
                "a run id must be 1 to 250 characters".into(),
            ));
        }
        // A manual run's data interval is the scheduled interval its logical date falls in, if any.
        let (start, end) = intervals::containing(&dag, logical).unwrap_or((logical, logical));
        let run = NewRun {
            dag_id: dag_id.to_owned(),
            run_id,
            version_id,
            run_type: RunType::Manual,
            logical_date: Some(logical),
            data_interval_start: Some(start),
            data_interval_end: Some(end),
            run_after: now,
            conf: conf.to_string(),
            note: t.note,
            triggered_by: Some(t.actor.clone()),
            trigger_versions: None,
            queued_at: now,
            tasks: new_task_instances(&dag),
        };
        self.check_pools(&dag).await?;
        let record = self.inner.store.create_run(&run).await?;
        self.inner
            .store
            .audit(&AuditEntry {
                at: now,
                actor: t.actor,
                action: AuditAction::Trigger,
                dag_id: Some(dag_id.to_owned()),
                run_id: Some(record.run_id.clone()),
                task_id: None,
                detail: Some(conf.to_string()),
            })
            .await?;
        self.start_queued_runs(dag_id).await?;
        self.inner
            .store
            .get_run_by_pk(record.id)
            .await
            .map_err(Error::from)
    }

    async fn check_pools(&self, dag: &Dag) -> Result<()> {
        let pools = self.inner.store.list_pools().await?;
        for task in dag.tasks.values() {
            if !pools.iter().any(|p| p.name == task.pool) {
                return Err(Error::Invalid(format!(
                    "task `{}` uses pool `{}`, which does not exist",
                    task.id, task.pool
                )));
            }
        }
        Ok(())
    }

    /// Starts queued runs of a DAG, oldest first, while fewer than
    /// `max_active_runs` are running.
    pub async fn start_queued_runs(&self, dag_id: &str) -> Result<()> {
        let dag = self.inner.store.get_dag(dag_id).await?;
        let running = self.inner.store.count_running_runs(dag_id).await?;
        let free = dag.max_active_runs - running;
        if free <= 0 {
            return Ok(());
        }
        let (queued, _) = self
            .inner
            .store
            .list_runs(&store::RunFilter {
                dag_id: Some(dag_id.to_owned()),
                states: vec![RunState::Queued],
                limit: Some(free),
                ..Default::default()
            })
            .await?;
        for run in queued {
            self.apply(run.id, run.version_id, &Action::Start, None, None)
                .await?;
        }
        self.dispatch().await?;
        Ok(())
    }

    /// Applies `action` to a run in one transaction.
    async fn apply(
        &self,
        run_pk: i64,
        version_id: i64,
        action: &Action,
        end: Option<&TryEnd>,
        audit: Option<&AuditEntry>,
    ) -> Result<Plan> {
        Ok(self
            .apply_and_claim(run_pk, version_id, action, end, audit, None)
            .await?
            .plan)
    }

    async fn apply_and_claim(
        &self,
        run_pk: i64,
        version_id: i64,
        action: &Action,
        end: Option<&TryEnd>,
        audit: Option<&AuditEntry>,
        claim: Option<&ClaimRequest>,
    ) -> Result<store::Advanced> {
        let dag = self.dag_version(version_id).await?;
        let now = self.now();
        let scope = plan::scope(&dag, action);
        let planner = move |s: &store::RunSnapshot| plan::plan_scoped(&dag, s, action, now);
        let done = self
            .inner
            .store
            .advance_run(run_pk, &scope, end, audit, claim, &planner)
            .await?;
        if done.queued > done.claims.len() {
            self.inner.work.notify_one();
        }
        Ok(done)
    }

    /// Reports a try that ended: records it and schedules and queues what
    /// follows, in one transaction; then starts waiting runs if this one ended.
    pub async fn finish(&self, report: &Report) -> Result<()> {
        self.finish_and_claim(report, None).await.map(|_| ())
    }

    /// [`Scheduler::finish`], and in the same transaction claims the next
    /// queued task instance for the same worker slot (`worker`, `hostname`):
    /// a worker that keeps its slots busy needs no separate claim.
    ///
    /// Reports that arrive while another batch commits are committed together
    /// (group commit): one transaction, each report in its own savepoint.
    pub async fn finish_and_claim(
        &self,
        report: &Report,
        slot: Option<(&str, &str)>,
    ) -> Result<Option<Claim>> {
        let c = &report.claim;
        let now = self.now();
        let dag = self.dag_version(c.version_id).await?;
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            dag,
            run_pk: c.run_pk,
            action: Action::Finish {
                task_id: c.task_id.clone(),
                try_number: c.try_number,
                outcome: report.outcome,
                jitter: fastrand::f64(),
            },
            end: TryEnd {
                ti_id: c.ti_id.clone(),
                run_pk: c.run_pk,
                try_number: c.try_number,
                exit_code: report.exit_code,
                error: report.error.clone(),
                pid: report.pid,
                at: now,
            },
            slot: slot.map(|(worker, hostname)| (worker.to_owned(), hostname.to_owned())),
            reply,
        };
        // The queue is a plain list: a panic elsewhere while it was locked
        // cannot leave it half-changed, so a poisoned lock is still usable.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pending);
        let answered = |answer: &mut tokio::sync::oneshot::Receiver<_>| match answer.try_recv() {
            Ok(result) => Some(result),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(Error::Unanswered)),
        };
        let (plan, claim) = loop {
            if let Some(result) = answered(&mut answer) {
                break result?;
            }
            let _leader = self.inner.committing.lock().await;
            if let Some(result) = answered(&mut answer) {
                break result?;
            }
            let batch = std::mem::take(
                &mut *self
                    .inner
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            self.commit_batch(batch).await;
        };
        self.inner.metrics.ended(c, now);
        self.inner.metrics.claimed(&claim);
        self.after_change(&c.dag_id, &plan).await?;
        Ok(claim)
    }

    /// Commits a batch of reports in one transaction and answers each.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let now = self.now();
        let scopes: Vec<store::Scope> = batch
            .iter()
            .map(|p| plan::scope(&p.dag, &p.action))
            .collect();
        // Claims start now, after everything the batch queues.
        let claims: Vec<Option<ClaimRequest>> = batch
            .iter()
            .map(|p| {
                p.slot
                    .as_ref()
                    .map(|(worker, hostname)| self.claim_request(worker, hostname, 1))
            })
            .collect();
        let planners: Vec<_> = batch
            .iter()
            .map(|p| {
                let (dag, action) = (p.dag.clone(), p.action.clone());
                move |s: &store::RunSnapshot| plan::plan_scoped(&dag, s, &action, now)
            })
            .collect();
        let items: Vec<store::Advance<'_>> = batch
            .iter()
            .zip(&scopes)
            .zip(&planners)
            .zip(&claims)
            .map(|(((p, scope), planner), claim)| store::Advance {
                run_pk: p.run_pk,
                scope: scope.clone(),
                end: Some(&p.end),
                planner,
                claim: claim.as_ref(),
            })
            .collect();
        let results = self.inner.store.advance_runs(&items).await;
        drop(items);
        match results {
            Ok(results) => {
                let mut wake = false;
                for (p, r) in batch.into_iter().zip(results) {
                    let answer = r.map_err(Error::from).map(|done| {
                        wake |= done.queued > 0;
                        (done.plan, done.claims.into_iter().next())
                    });
                    let _ = p.reply.send(answer);
                }
                if wake {
                    self.inner.work.notify_one();
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in batch {
                    let _ = p.reply.send(Err(Error::Batch(e.clone())));
                }
            }
        }
    }

    fn claim_request(&self, worker: &str, hostname: &str, limit: usize) -> ClaimRequest {
        let now = self.now();
        let lease = chrono::Duration::from_std(self.inner.options.lease)
            .unwrap_or(chrono::Duration::seconds(30));
        ClaimRequest {
            worker: worker.to_owned(),
            hostname: hostname.to_owned(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            lease_until: now + lease,
            now,
        }
    }

    async fn after_change(&self, dag_id: &str, plan: &Plan) -> Result<()> {
        // Ready work was queued in the plan's own transaction; a run that
        // ended may let a waiting run start.
        if plan.run.is_some_and(|(_, to)| to.is_finished()) {
            self.start_queued_runs(dag_id).await?;
        }
        Ok(())
    }

    /// Queues scheduled task instances within pool and DAG limits and wakes
    /// workers if any were queued.
    pub async fn dispatch(&self) -> Result<usize> {
        let n = self.inner.store.queue_scheduled(self.now()).await?;
        if n > 0 {
            self.inner.work.notify_one();
        }
        Ok(n)
    }

    /// Claims queued task instances for a worker.
    pub async fn claim(&self, worker: &str, hostname: &str, limit: usize) -> Result<Vec<Claim>> {
        let request = self.claim_request(worker, hostname, limit);
        let claims = self.inner.store.claim(&request).await?;
        self.inner.metrics.claimed(&claims);
        Ok(claims)
    }

    /// Renews the leases of running tries; returns those that must stop.
    pub async fn heartbeat(&self, tries: &[(String, i64)]) -> Result<Vec<(String, i64)>> {
        let lease = chrono::Duration::from_std(self.inner.options.lease)
            .unwrap_or(chrono::Duration::seconds(30));
        Ok(self
            .inner
            .store
            .heartbeat(tries, self.now() + lease)
            .await?)
    }

    /// Clears task instances of a run (they run again with a new try) and
    /// reopens the run. Returns the task ids cleared.
    pub async fn clear(
        &self,
        dag_id: &str,
        run_id: &str,
        task_ids: Vec<String>,
        downstream: bool,
        only_failed: bool,
        actor: &str,
    ) -> Result<Vec<String>> {
        let spec = ClearSpec {
            task_ids,
            downstream,
            upstream: false,
            only_failed,
        };
        self.clear_spec(dag_id, run_id, &spec, actor).await
    }

    /// The task ids [`Scheduler::clear_spec`] would clear now, changing nothing.
    pub async fn preview_clear(
        &self,
        dag_id: &str,
        run_id: &str,
        spec: &ClearSpec,
    ) -> Result<Vec<String>> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let dag = self.dag_version(run.version_id).await?;
        let tasks = self
            .inner
            .store
            .list_task_instances(run.id)
            .await?
            .into_iter()
            .map(|t| store::TaskStateRecord {
                id: t.id,
                task_id: t.task_id,
                state: t.state,
                try_number: t.try_number,
                max_tries: t.max_tries,
                next_try_at: t.next_try_at,
            })
            .collect();
        let snapshot = store::RunSnapshot {
            unfinished: run.unfinished,
            failed: run.failed,
            run,
            tasks,
        };
        let plan =
            plan::plan(&dag, &snapshot, &spec.action(), self.now()).map_err(Error::Invalid)?;
        Ok(cleared(&plan))
    }

    /// Clears the task instances `spec` names (audited); returns the task ids cleared.
    pub async fn clear_spec(
        &self,
        dag_id: &str,
        run_id: &str,
        spec: &ClearSpec,
        actor: &str,
    ) -> Result<Vec<String>> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let action = spec.action();
        let audit = self.audit_entry(actor, AuditAction::Clear, dag_id, run_id, None, serde_json::json!({"task_ids": spec.task_ids, "downstream": spec.downstream, "upstream": spec.upstream, "only_failed": spec.only_failed}));
        let plan = self
            .apply(run.id, run.version_id, &action, None, Some(&audit))
            .await?;
        self.after_change(dag_id, &plan).await?;
        Ok(cleared(&plan))
    }

    /// Marks a task instance success or failed by hand (audited).
    pub async fn mark(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        state: TaskState,
        actor: &str,
    ) -> Result<()> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let action = Action::Mark {
            task_id: task_id.to_owned(),
            state,
        };
        let what = match state {
            TaskState::Success => AuditAction::MarkSuccess,
            TaskState::Failed => AuditAction::MarkFailed,
            other => {
                return Err(Error::Invalid(format!(
                    "a task can be marked success or failed, not {other}"
                )));
            }
        };
        let audit = self.audit_entry(
            actor,
            what,
            dag_id,
            run_id,
            Some(task_id),
            serde_json::json!({}),
        );
        let plan = self
            .apply(run.id, run.version_id, &action, None, Some(&audit))
            .await?;
        self.after_change(dag_id, &plan).await
    }

    /// Pauses a DAG: it creates no scheduled runs until unpaused (audited).
    pub async fn pause(&self, dag_id: &str, actor: &str) -> Result<()> {
        self.set_paused(dag_id, true, AuditAction::Pause, actor)
            .await
    }

    /// Unpauses a DAG (audited).
    pub async fn unpause(&self, dag_id: &str, actor: &str) -> Result<()> {
        self.set_paused(dag_id, false, AuditAction::Unpause, actor)
            .await
    }

    async fn set_paused(
        &self,
        dag_id: &str,
        paused: bool,
        what: AuditAction,
        actor: &str,
    ) -> Result<()> {
        let audit = AuditEntry {
            at: self.now(),
            actor: actor.to_owned(),
            action: what,
            dag_id: Some(dag_id.to_owned()),
            run_id: None,
            task_id: None,
            detail: None,
        };
        self.inner
            .store
            .set_paused(dag_id, paused, Some(&audit))
            .await?;
        Ok(())
    }

    /// Sets a run's state by hand (audited).
    pub async fn set_run_state(
        &self,
        dag_id: &str,
        run_id: &str,
        state: RunState,
        actor: &str,
    ) -> Result<RunRecord> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let what = match state {
            RunState::Success => AuditAction::MarkRunSuccess,
            RunState::Failed => AuditAction::MarkRunFailed,
            other => {
                return Err(Error::Invalid(format!(
                    "a run can be set to success or failed, not {other}"
                )));
            }
        };
        let audit = self.audit_entry(actor, what, dag_id, run_id, None, serde_json::json!({}));
        let plan = self
            .apply(
                run.id,
                run.version_id,
                &Action::SetRunState(state),
                None,
                Some(&audit),
            )
            .await?;
        self.after_change(dag_id, &plan).await?;
        Ok(self.inner.store.get_run_by_pk(run.id).await?)
    }

    fn audit_entry(
        &self,
        actor: &str,
        action: AuditAction,
        dag_id: &str,
        run_id: &str,
        task_id: Option<&str>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.to_owned(),
            action,
            dag_id: Some(dag_id.to_owned()),
            run_id: Some(run_id.to_owned()),
            task_id: task_id.map(str::to_owned),
            detail: Some(detail.to_string()),
        }
    }

    // ---- the timer --------------------------------------------------------

    /// One pass of the timer: retries that came due, tries whose lease
    /// expired (their worker is gone), runs past `dagrun_timeout`, runs
    /// waiting to start, and queueing.
    pub async fn tick(&self) -> Result<()> {
        let now = self.now();
        for run_pk in self.inner.store.due_retries(now).await? {
            let run = self.inner.store.get_run_by_pk(run_pk).await?;
            self.ignore_conflict(
                self.apply(run_pk, run.version_id, &Action::Evaluate, None, None)
                    .await,
            )?;
        }
        for (run_pk, ti_id, try_number) in self.inner.store.expired_leases(now).await? {
            let error = "the worker stopped heartbeating (lease expired); the try counts as failed";
            self.fail_lost_try(run_pk, &ti_id, try_number, error)
                .await?;
        }
        self.fail_timed_out_runs(now).await?;
        self.create_scheduled_runs(now).await?;
        self.create_dataset_triggered_runs(now).await?;
        self.continue_backfills().await?;
        for dag_id in self.inner.store.dags_with_queued_runs().await? {
            self.start_queued_runs(&dag_id).await?;
        }
        self.dispatch().await?;
        Ok(())
    }

    async fn fail_lost_try(
        &self,
        run_pk: i64,
        ti_id: &str,
        try_number: i64,
        error: &str,
    ) -> Result<()> {
        let run = self.inner.store.get_run_by_pk(run_pk).await?;
        let tis = self.inner.store.list_task_instances(run_pk).await?;
        let Some(ti) = tis.into_iter().find(|t| t.id == ti_id) else {
            return Ok(());
        };
        tracing::warn!(dag = %run.dag_id, run = %run.run_id, task = %ti.task_id, try_number, "{error}");
        let report = Report {
            claim: Claim {
                ti_id: ti_id.to_owned(),
                run_pk,
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: ti.task_id,
                try_number,
                version_id: run.version_id,
                log_path: String::new(),
                queued_at: ti.queued_at,
                started_at: ti.start_date.unwrap_or(run.run_after),
            },
            outcome: Outcome::Failed,
            exit_code: None,
            error: Some(error.to_owned()),
            pid: None,
        };
        self.ignore_conflict(self.finish(&report).await)
    }

    /// Creates the runs whose data interval has ended, for every unpaused DAG
    /// with a time schedule: the latest interval only, or with `catchup` every
    /// missed one (oldest first, no more than `max_active_runs` active at once).
    /// A run that another scheduler created first is skipped (unique run ids).
    pub async fn create_scheduled_runs(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut created = 0;
        for rec in self.inner.store.list_dags().await? {
            if rec.is_paused || rec.is_stale {
                continue;
            }
            // Nothing can be due before the next interval ends: no queries until then.
            let key = (rec.dag_id.clone(), rec.latest_version_id);
            let waiting = self
                .inner
                .next_due
                .lock()
                .ok()
                .and_then(|m| m.get(&key).copied());
            if waiting.is_some_and(|at| now < at) {
                continue;
            }
            let Ok(dag) = self.dag_version(rec.latest_version_id).await else {
                continue;
            };
            let last = self.inner.store.last_scheduled_run(&rec.dag_id).await?;
            let active = self.inner.store.count_active_runs(&rec.dag_id).await?;
            let room = usize::try_from(rec.max_active_runs - active).unwrap_or(0);
            let due = intervals::due(&dag, last.and_then(|r| r.logical_date), now, room);
            // When max_active_runs held catch-up back, look again next tick.
            let held_back = room == 0 || due.len() == room;
            let next = if held_back {
                None
            } else {
                intervals::next_end(&dag, now)
            };
            if let Ok(mut m) = self.inner.next_due.lock() {
                match next {
                    Some(at) => m.insert(key, at),
                    None => m.remove(&key),
                };
            }
            for (start, end) in due {
                let run = interval_run(
                    &dag,
                    rec.latest_version_id,
                    RunType::Scheduled,
                    (start, end),
                    now,
                    "scheduler",
                );
                match self.inner.store.create_run(&run).await {
                    Ok(_) => created += 1,
                    Err(store::Error::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(created)
    }

    async fn fail_timed_out_runs(&self, now: DateTime<Utc>) -> Result<()> {
        for dag in self.inner.store.list_dags().await? {
            let Ok(d) = self.dag_version(dag.latest_version_id).await else {
                continue;
            };
            let Some(limit) = d.dagrun_timeout else {
                continue;
            };
            let before = now
                - chrono::Duration::seconds(i64::try_from(limit.as_secs()).unwrap_or(i64::MAX / 2));
            for run in self
                .inner
                .store
                .running_runs_started_before(&dag.dag_id, before)
                .await?
            {
                tracing::warn!(dag = %run.dag_id, run = %run.run_id, "run exceeded dagrun_timeout {limit}");
                let audit = self.audit_entry(
                    "scheduler",
                    AuditAction::DagrunTimeout,
                    &run.dag_id,
                    &run.run_id,
                    None,
                    serde_json::json!({"timeout": limit.to_string()}),
                );
                let plan = self
                    .apply(
                        run.id,
                        run.version_id,
                        &Action::SetRunState(RunState::Failed),
                        None,
                        Some(&audit),
                    )
                    .await;
                if let Some(plan) = self.ignore_conflict(plan.map(Some))? {
                    self.after_change(&run.dag_id, &plan).await?;
                }
            }
        }
        Ok(())
    }

    fn ignore_conflict<T: Default>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(Error::Store(store::Error::Conflict(msg))) => {
                tracing::debug!("skipped a change someone else made first: {msg}");
                Ok(T::default())
            }
            other => other,
        }
    }

    /// Runs the timer until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.inner.options.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = interval.tick() => {
                    let started = std::time::Instant::now();
                    if let Err(e) = self.tick().await {
                        tracing::error!("scheduler tick failed: {e}");
                    }
                    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "scheduler tick");
                }
            }
        }
    }
}

/// A run of `dag` (pinned to `version_id`) for the data interval `[start, end)`:
/// run id `<type>__<start>`, logical date `start`, due at `end`.
pub(crate) fn interval_run(
    dag: &Dag,
    version_id: i64,
    run_type: RunType,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    by: &str,
) -> NewRun {
    NewRun {
        dag_id: dag.id.to_string(),
        run_id: run_type.run_id(start),
        version_id,
        run_type,
        logical_date: Some(start),
        data_interval_start: Some(start),
        data_interval_end: Some(end),
        run_after: end,
        conf: "{}".into(),
        note: None,
        triggered_by: Some(by.to_owned()),
        trigger_versions: None,
        queued_at: now,
        tasks: new_task_instances(dag),
    }
}

pub(crate) fn new_task_instances(dag: &Dag) -> Vec<NewTaskInstance> {
    dag.tasks
        .values()
        .map(|t| NewTaskInstance {
            task_id: t.id.to_string(),
            max_tries: i64::from(t.retry.retries),
            pool: t.pool.clone(),
            priority: i64::from(t.priority),
        })
        .collect()
}

fn import_error_record(e: &ImportError, now: DateTime<Utc>) -> ImportErrorRecord {
    ImportErrorRecord {
        id: 0,
        filename: e.file.display().to_string(),
        line: i64::try_from(e.line).unwrap_or(0),
        col: i64::try_from(e.column).unwrap_or(0),
        message: e.message.clone(),
        timestamp: now,
    }
}
