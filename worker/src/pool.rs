//! The in-process worker pool of `weir standalone`: N slots that claim queued
//! task instances, run them, heartbeat their leases and report the results.
//! A slot whose try ends claims its next task in the same transaction that
//! reports the try, so a busy pool needs no separate claims.
//!
//! Each pool is one worker life: it registers under a name unique to this
//! start, heartbeats it, looks for past lives on its host on every beat
//! ([`crate::reaper`]) and records its stop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_core::scheduler::{self, Ended, Report, Scheduler};
use weir_core::store::{Claim, HeldTry};
use weir_core::workers::{NewWorker, WorkerState};

use crate::context::{self, TryContext};
use crate::execute::{self, Shared};
use crate::logs::LogWriter;
use crate::secrets::{MaskCache, Secrets};

/// Settings of a local pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Task slots.
    pub slots: usize,
    /// Where logs go.
    pub logs_dir: PathBuf,
    /// What this worker is (`standalone`, `dags-test`, …): the start of its
    /// name, which the pool makes unique to this life.
    pub role: String,
    /// How often to look for work created by other processes.
    pub poll: Duration,
    /// Connection URLs by id (lower case), for SQL sensors and data tasks.
    pub connections: std::collections::HashMap<String, String>,
    /// Where datasets are stored.
    pub home: crate::data::home::Home,
    /// How long dataset versions are kept.
    pub retention: weir_core::config::RetentionRules,
    /// Where OpenLineage events go (off by default).
    pub lineage: crate::lineage::Emitter,
}

/// The local worker pool.
#[derive(Debug)]
pub struct LocalPool {
    scheduler: Scheduler,
    options: PoolOptions,
    shared: Shared,
    life: NewWorker,
}

/// The tries running now, each with the token that stops it.
type Running = Arc<Mutex<HashMap<HeldTry, CancellationToken>>>;

impl LocalPool {
    /// A pool taking work from `scheduler`, registered as a new worker life.
    pub async fn start(
        scheduler: Scheduler,
        options: PoolOptions,
        secrets: Secrets,
    ) -> Result<Self, weir_core::scheduler::Error> {
        let life = crate::life::this_process(&options.role, options.slots, None, false);
        scheduler.register_worker(&life).await?;
        tracing::info!(worker = %life.name, pid = life.pid, "worker {} registered", life.name);
        crate::resources::mark_data_folder(&scheduler, &options.home).await;
        let resources = crate::resources::Resources {
            store: Arc::new(crate::catalog::LocalCatalog(scheduler.store().clone())),
            connections: Arc::new(options.connections.clone()),
            home: options.home.clone(),
            retention: Arc::new(options.retention.clone()),
            clock: scheduler.clock(),
            // The local pool reads the catalog it writes to: nothing to check.
            catalog_id: None,
        };
        let shared = Shared {
            logs_dir: options.logs_dir.clone(),
            secrets: Arc::new(secrets),
            worker: life.name.clone(),
            resources,
            lineage: options.lineage.clone(),
        };
        Ok(LocalPool {
            scheduler,
            options,
            shared,
            life,
        })
    }

    /// This worker life's name (also the marker of its task processes).
    pub fn name(&self) -> &str {
        &self.life.name
    }

    /// Cleans up after the worker lives on this host whose process is gone:
    /// kills their task processes, then fails their running tries through
    /// their retry rules. Call once before the scheduler's timer starts; the
    /// pool repeats it on every heartbeat.
    pub async fn reap_past_lives(&self) -> crate::reaper::Reaped {
        crate::reaper::reap_past_lives(&self.scheduler, &self.life).await
    }

    /// Runs until `cancel` fires; then stops running tries (they are reported
    /// failed, so their retry rules apply) and returns when all have reported.
    pub async fn run(self, cancel: CancellationToken) {
        let env = Arc::new(context::environment(self.shared.secrets.clone()));
        let masks: Arc<MaskCache> = Arc::default();
        let running: Running = Arc::default();
        let mut slots: JoinSet<()> = JoinSet::new();
        let beat_every = self.scheduler.lease() / 3;
        let mut beat = tokio::time::interval(beat_every.max(Duration::from_millis(100)));
        let mut work = self.scheduler.work_signal();
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let free = self.options.slots.saturating_sub(slots.len());
            if free > 0 {
                match self
                    .scheduler
                    .claim(&self.life.name, &self.life.hostname, free, None)
                    .await
                {
                    Ok(claims) => {
                        for claim in claims {
                            let slot = Slot {
                                sched: self.scheduler.clone(),
                                shared: self.shared.clone(),
                                env: env.clone(),
                                masks: masks.clone(),
                                running: running.clone(),
                                cancel: cancel.clone(),
                                hostname: self.life.hostname.clone(),
                            };
                            slots.spawn(slot.run(claim));
                        }
                    }
                    Err(e) => tracing::error!("claiming work failed: {e}"),
                }
            }
            let full = slots.len() >= self.options.slots;
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(_) = slots.join_next() => {}
                _ = work.changed(), if !full => {}
                _ = beat.tick() => {
                    self.heartbeat(&running).await;
                    self.reap_past_lives().await;
                }
                _ = tokio::time::sleep(self.options.poll), if !full => {}
            }
        }
        if let Ok(r) = running.lock() {
            for stop in r.values() {
                stop.cancel();
            }
        }
        while slots.join_next().await.is_some() {}
        if let Err(e) = self
            .scheduler
            .end_worker(&self.life.name, WorkerState::Stopped)
            .await
        {
            tracing::warn!(worker = %self.life.name, "could not record that the worker stopped: {e}");
        }
    }

    /// Renews the leases of running tries (stopping those that are no longer
    /// theirs) and notes that this worker is alive; one found lost by another
    /// process while it was in fact alive registers again.
    async fn heartbeat(&self, running: &Running) {
        match self.scheduler.worker_heartbeat(&self.life.name).await {
            Ok(()) => {}
            Err(weir_core::scheduler::Error::Store(weir_core::store::Error::Conflict(_))) => {
                tracing::warn!(worker = %self.life.name, "another process took this worker for gone; registering again");
                if let Err(e) = self.scheduler.register_worker(&self.life).await {
                    tracing::error!("registering the worker again failed: {e}");
                }
            }
            Err(e) => tracing::error!("worker heartbeat failed: {e}"),
        }
        let keys: Vec<HeldTry> = running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        match self.scheduler.heartbeat(&keys).await {
            Ok(lost) => {
                let r = running.lock();
                for key in lost {
                    if let Some(stop) = r.as_ref().ok().and_then(|r| r.get(&key)) {
                        tracing::info!(ti = %key.ti_id, try_number = key.try_number, "the try is no longer running in the database; stopping it");
                        stop.cancel();
                    }
                }
            }
            Err(e) => tracing::error!("heartbeat failed: {e}"),
        }
    }
}

/// One worker slot: runs a claimed try, reports it and takes the next one.
struct Slot {
    sched: Scheduler,
    shared: Shared,
    env: Arc<minijinja::Environment<'static>>,
    /// Log masking with the secret variables, shared by the pool's slots.
    masks: Arc<MaskCache>,
    running: Running,
    cancel: CancellationToken,
    hostname: String,
}

impl Slot {
    async fn run(self, first: Claim) {
        let mut next = Some(first);
        while let Some(claim) = next.take() {
            let key = HeldTry::of(&claim);
            let stop = self.cancel.child_token();
            if let Ok(mut r) = self.running.lock() {
                r.insert(key.clone(), stop.clone());
            }
            // A panic inside a try (a bug) fails the try instead of leaving
            // it running, its lease renewed forever.
            let attempt = self.run_try(&claim, &stop);
            let result = match std::panic::AssertUnwindSafe(attempt).catch_unwind().await {
                Ok(ended) => ended,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    tracing::error!(dag = %claim.dag_id, task = %claim.task_id, "the try panicked: {what}");
                    Ended::failed(format!("weir failed inside the try: {what}"))
                }
            };
            let report = Report {
                claim,
                ended: result,
            };
            // Keep the slot busy unless the worker is stopping.
            let slot = (!self.cancel.is_cancelled()).then_some(scheduler::Slot {
                worker: &self.shared.worker,
                hostname: &self.hostname,
                queues: None,
            });
            match self.sched.finish_and_claim(&report, slot).await {
                Ok(claimed) => next = claimed,
                Err(e) => tracing::warn!(
                    dag = %report.claim.dag_id, run = %report.claim.run_id, task = %report.claim.task_id,
                    "reporting the try failed: {e}"
                ),
            }
            if let Ok(mut r) = self.running.lock() {
                r.remove(&key);
            }
        }
    }

    /// Prepares and runs one try, its log masking secret variables too.
    async fn run_try(&self, claim: &Claim, stop: &CancellationToken) -> Ended {
        let ctx = match prepare(&self.sched, claim).await {
            Ok(ctx) => ctx,
            Err(e) => return Ended::failed(e),
        };
        let shared = &self.shared;
        let secrets = self.masks.secrets(&shared.secrets, &ctx.variables);
        let mut log = LogWriter::new(&shared.logs_dir, &claim.log_path, secrets);
        execute::execute(&ctx, &self.env, &mut log, stop, shared).await
    }
}

async fn prepare(sched: &Scheduler, claim: &Claim) -> Result<TryContext, String> {
    let dag = sched
        .dag_version(claim.version_id)
        .await
        .map_err(|e| e.to_string())?;
    let run = sched
        .run_context(claim.run_pk)
        .await
        .map_err(|e| e.to_string())?;
    let variables = sched.variables().await.map_err(|e| e.to_string())?;
    let outputs = sched
        .outputs_for(&dag, claim)
        .await
        .map_err(|e| format!("reading the outputs of upstream tasks: {e}"))?;
    let connections = sched
        .connection_urls_for(&dag, claim)
        .await
        .map_err(|e| e.to_string())?;
    Ok(TryContext {
        dag,
        run: (*run).clone(),
        claim: claim.clone(),
        variables,
        outputs: Arc::new(outputs),
        connections: Arc::new(connections),
    })
}
