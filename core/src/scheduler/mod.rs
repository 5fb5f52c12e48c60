//! The event-driven scheduler. Creating a run schedules its ready tasks;
//! finishing a try records it, schedules what became ready and closes the run
//! in the same transaction (see [`plan`]); a timer only handles retries that
//! come due, expired leases and run timeouts.
//!
//! [`Scheduler`] is a cheap handle; [`Scheduler::run`] is its loop.

pub mod backfill;
pub mod clock;
mod commit;
pub mod connections;
pub mod datasets;
pub mod intervals;
mod manual;
pub mod metrics;
pub mod plan;
pub mod remote;
mod timer;
pub mod variables;
pub mod workers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{Report, Slot};
pub use plan::{Action, ClearSpec, Ended, Outcome};

use crate::dag::{Dag, convert};
use crate::loader::{self, ImportError, LoadReport};
use crate::protocol::RunContext;
use crate::state::{RunState, RunType};
use crate::store::{
    self, AuditAction, AuditEntry, Claim, DagSync, HeldTry, ImportErrorRecord, NewRun,
    NewTaskInstance, RunRecord, Store,
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
    /// The secret key is missing, malformed, or not the one a value was
    /// sealed with.
    #[error(transparent)]
    Key(#[from] crate::secret_key::KeyError),
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
    /// The key that seals stored connections' secrets.
    pub secret_key: crate::secret_key::KeySource,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            paused_at_creation: false,
            secret_key: crate::secret_key::KeySource::None,
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
    /// What tries see of their runs (fixed when a run is created), by run key.
    runs: Mutex<HashMap<i64, Arc<RunContext>>>,
    /// Counts the times task instances were queued in this process: every
    /// waiting claimer (the local pool, remote claims) sees it change.
    work_seen: tokio::sync::watch::Sender<u64>,
    /// Reports of ended tries waiting to be committed together.
    pending: Mutex<Vec<commit::Pending>>,
    /// Held by the caller committing a batch of reports.
    committing: tokio::sync::Mutex<()>,
    /// Per DAG (and version): the earliest time a scheduled interval can end.
    next_due: Mutex<HashMap<(String, i64), DateTime<Utc>>>,
    /// Latency and duration histograms.
    metrics: metrics::Metrics,
    /// Variables as tries last read them.
    variables: Mutex<variables::Cached>,
    /// Stored connections' URLs as tries last read them.
    connections: Mutex<connections::Cached>,
    /// The secret key, once loaded.
    secret_key: tokio::sync::OnceCell<crate::secret_key::SecretKey>,
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
                runs: Mutex::new(HashMap::new()),
                work_seen: tokio::sync::watch::Sender::new(0),
                pending: Mutex::new(Vec::new()),
                committing: tokio::sync::Mutex::new(()),
                next_due: Mutex::new(HashMap::new()),
                metrics: metrics::Metrics::default(),
                variables: Mutex::default(),
                connections: Mutex::default(),
                secret_key: tokio::sync::OnceCell::new(),
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

    /// The clock the scheduler reads (workers in this process read it too).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The lease a claim gets.
    pub fn lease(&self) -> Duration {
        self.inner.options.lease
    }

    /// Changes whenever task instances were queued in this process: take it
    /// before claiming, then wait for a change if the claim found nothing
    /// (a change made meanwhile is not missed).
    pub fn work_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.work_seen.subscribe()
    }

    /// Wakes the local pool and every remote claim waiting in this process.
    pub(crate) fn wake_workers(&self) {
        self.inner.work_seen.send_modify(|n| *n = n.wrapping_add(1));
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
                sources: serde_json::to_string(&d.version.sources).unwrap_or_default(),
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
        // Every dataset a DAG names has a lasting asset id.
        let mut names: Vec<String> = Vec::new();
        for d in &report.dags {
            for t in d.tasks.values() {
                names.extend(
                    t.reads()
                        .into_iter()
                        .chain(t.writes())
                        .map(ToString::to_string),
                );
            }
            if let crate::dag::Schedule::Datasets(inputs) = &d.schedule {
                names.extend(inputs.iter().map(ToString::to_string));
            }
        }
        names.sort();
        names.dedup();
        self.inner.store.ensure_assets(&names, now).await?;
        Ok(())
    }

    /// What a try sees of its run: id, dates and conf (cached; they never
    /// change once the run exists).
    pub async fn run_context(&self, run_pk: i64) -> Result<Arc<RunContext>> {
        /// Enough for every run in flight; the cache starts over past it.
        const KEEP: usize = 4096;
        if let Some(r) = self
            .inner
            .runs
            .lock()
            .ok()
            .and_then(|m| m.get(&run_pk).cloned())
        {
            return Ok(r);
        }
        let run = Arc::new(RunContext::from(
            &self.inner.store.get_run_by_pk(run_pk).await?,
        ));
        if let Ok(mut m) = self.inner.runs.lock() {
            if m.len() >= KEEP {
                m.clear();
            }
            m.insert(run_pk, run.clone());
        }
        Ok(run)
    }

    /// The outputs of upstream tasks that a claimed try's templates read
    /// (`tasks.<id>.output`): those of their current tries, in this run.
    pub async fn outputs_for(
        &self,
        dag: &Dag,
        claim: &Claim,
    ) -> Result<crate::outputs::TaskOutputs> {
        let Some(task) = dag.tasks.get(claim.task_id.as_str()) else {
            return Ok(Default::default());
        };
        if task.reads_outputs.is_empty() {
            return Ok(Default::default());
        }
        let ids: Vec<String> = task.reads_outputs.iter().map(|t| t.to_string()).collect();
        let rows = self.inner.store.task_outputs(claim.run_pk, &ids).await?;
        Ok(crate::outputs::gather(rows))
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
        let dag = convert::from_definition(&v.definition, &v.fileloc).map_err(|message| {
            Error::BadVersion {
                version: version_id,
                message,
            }
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

    /// What people should know about `dataset` (owner, description, tags,
    /// columns), as the newest version of `writer`, the DAG that wrote its
    /// newest version, says; `None` when it says nothing or is gone.
    pub async fn dataset_metadata(
        &self,
        dataset: &str,
        writer: Option<&str>,
    ) -> Option<crate::dag::contract::DatasetMeta> {
        self.datasets_metadata(&[(dataset, writer)])
            .await
            .remove(dataset)
    }

    /// [`Scheduler::dataset_metadata`] of many datasets, each given with
    /// the DAG that wrote its newest version; a DAG is read once. Datasets
    /// nothing is said about are left out.
    pub async fn datasets_metadata(
        &self,
        datasets: &[(&str, Option<&str>)],
    ) -> std::collections::HashMap<String, crate::dag::contract::DatasetMeta> {
        let mut dags: std::collections::HashMap<&str, Option<Arc<Dag>>> =
            std::collections::HashMap::new();
        let mut out = std::collections::HashMap::new();
        for &(dataset, writer) in datasets {
            let (Some(writer), Ok(name)) = (writer, dataset.parse::<crate::dag::DatasetName>())
            else {
                continue;
            };
            if !dags.contains_key(writer) {
                let dag = self.latest_dag(writer).await.ok().map(|(_, d)| d);
                dags.insert(writer, dag);
            }
            if let Some(meta) = dags
                .get(writer)
                .and_then(Option::as_ref)
                .and_then(|d| d.dataset_metadata(&name))
            {
                out.insert(dataset.to_owned(), meta);
            }
        }
        out
    }

    /// The columns classified `pii` in what `task_id` of the newest
    /// version of `dag_id` writes (a validate's clean and quarantined rows),
    /// whose values roles below admin see masked.
    pub async fn pii_columns(&self, dag_id: &str, task_id: &str) -> Vec<String> {
        let Ok((_, dag)) = self.latest_dag(dag_id).await else {
            return Vec::new();
        };
        let Some(task) = dag.tasks.get(task_id) else {
            return Vec::new();
        };
        let mut metas: Vec<crate::dag::contract::DatasetMeta> = task
            .writes()
            .into_iter()
            .filter_map(|ds| task.dataset_metadata(ds))
            .collect();
        if let crate::dag::TaskKind::Load {
            contract: Some(c), ..
        } = &task.kind
        {
            metas.push(c.metadata());
        }
        let mut pii: Vec<String> = Vec::new();
        for m in &metas {
            for c in m.pii_columns() {
                if !pii.contains(&c) {
                    pii.push(c);
                }
            }
        }
        pii
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
            self.apply(run.id, run.version_id, &Action::Start, None)
                .await?;
        }
        self.dispatch().await?;
        Ok(())
    }

    /// Queues scheduled task instances within pool and DAG limits and wakes
    /// workers if any were queued.
    pub async fn dispatch(&self) -> Result<usize> {
        let n = self.inner.store.queue_scheduled(self.now()).await?;
        if n > 0 {
            self.wake_workers();
        }
        Ok(n)
    }

    /// Claims queued task instances for a worker, from `queues` (`None`:
    /// every queue).
    pub async fn claim(
        &self,
        worker: &str,
        hostname: &str,
        limit: usize,
        queues: Option<&[String]>,
    ) -> Result<Vec<Claim>> {
        let request = self.claim_request(worker, hostname, limit, queues);
        let claims = self.inner.store.claim(&request).await?;
        self.inner.metrics.claimed(&claims);
        Ok(claims)
    }

    /// Renews the leases of running tries; returns those that must stop.
    pub async fn heartbeat(&self, tries: &[HeldTry]) -> Result<Vec<HeldTry>> {
        let now = self.now();
        Ok(self
            .inner
            .store
            .heartbeat(tries, now, now + self.lease_chrono())
            .await?)
    }

    /// The lease as a `chrono` duration.
    pub(crate) fn lease_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.options.lease)
            .unwrap_or(chrono::Duration::seconds(30))
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
            queue: t.queue.clone(),
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
