//! The in-process worker pool of `weir standalone`: N slots that claim queued
//! task instances, run them, heartbeat their leases and report the results.
//! A slot whose try ends claims its next task in the same transaction that
//! reports the try, so a busy pool needs no separate claims.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_core::scheduler::{Report, Scheduler};
use weir_core::store::Claim;

use crate::context::{self, TryContext};
use crate::execute::{self, Shared};
use crate::logs::LogWriter;
use crate::secrets::Secrets;

/// Settings of a local pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Task slots.
    pub slots: usize,
    /// Where logs go.
    pub logs_dir: PathBuf,
    /// This worker's name.
    pub name: String,
    /// How often to look for work created by other processes.
    pub poll: Duration,
    /// Connection URLs by id (lower case), for SQL sensors and data tasks.
    pub connections: std::collections::HashMap<String, String>,
    /// Where datasets are stored.
    pub data_dir: PathBuf,
    /// How long dataset versions are kept.
    pub retention: weir_core::config::RetentionRules,
}

/// The local worker pool.
#[derive(Debug)]
pub struct LocalPool {
    scheduler: Scheduler,
    options: PoolOptions,
    shared: Shared,
    hostname: String,
}

/// The tries running now, each with the token that stops it.
type Running = Arc<Mutex<HashMap<(String, i64), CancellationToken>>>;

impl LocalPool {
    /// A pool taking work from `scheduler`.
    pub fn new(scheduler: Scheduler, options: PoolOptions, secrets: Secrets) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let sensors = crate::sensor::SensorEnv {
            store: scheduler.store().clone(),
            connections: Arc::new(options.connections.clone()),
        };
        let data = crate::data::DataEnv {
            data_dir: options.data_dir.clone(),
            connections: sensors.connections.clone(),
            store: scheduler.store().clone(),
            retention: Arc::new(options.retention.clone()),
        };
        let shared = Shared {
            logs_dir: options.logs_dir.clone(),
            secrets: Arc::new(secrets),
            worker: options.name.clone(),
            sensors,
            data,
        };
        LocalPool {
            scheduler,
            options,
            shared,
            hostname,
        }
    }

    /// Runs until `cancel` fires; then stops running tries (they are reported
    /// failed, so their retry rules apply) and returns when all have reported.
    pub async fn run(self, cancel: CancellationToken) {
        let env = Arc::new(context::environment(self.shared.secrets.clone()));
        let running: Running = Arc::default();
        let mut slots: JoinSet<()> = JoinSet::new();
        let beat_every = self.scheduler.lease() / 3;
        let mut beat = tokio::time::interval(beat_every.max(Duration::from_millis(100)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let free = self.options.slots.saturating_sub(slots.len());
            if free > 0 {
                match self
                    .scheduler
                    .claim(&self.options.name, &self.hostname, free)
                    .await
                {
                    Ok(claims) => {
                        for claim in claims {
                            let slot = Slot {
                                sched: self.scheduler.clone(),
                                shared: self.shared.clone(),
                                env: env.clone(),
                                running: running.clone(),
                                cancel: cancel.clone(),
                                hostname: self.hostname.clone(),
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
                _ = self.scheduler.work_available(), if !full => {}
                _ = beat.tick() => self.heartbeat(&running).await,
                _ = tokio::time::sleep(self.options.poll), if !full => {}
            }
        }
        if let Ok(r) = running.lock() {
            for stop in r.values() {
                stop.cancel();
            }
        }
        while slots.join_next().await.is_some() {}
    }

    async fn heartbeat(&self, running: &Running) {
        let keys: Vec<(String, i64)> = running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        match self.scheduler.heartbeat(&keys).await {
            Ok(lost) => {
                let r = running.lock();
                for key in lost {
                    if let Some(stop) = r.as_ref().ok().and_then(|r| r.get(&key)) {
                        tracing::info!(ti = %key.0, try_number = key.1, "the try is no longer running in the database; stopping it");
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
    running: Running,
    cancel: CancellationToken,
    hostname: String,
}

impl Slot {
    async fn run(self, first: Claim) {
        let mut next = Some(first);
        while let Some(claim) = next.take() {
            let key = (claim.ti_id.clone(), claim.try_number);
            let stop = self.cancel.child_token();
            if let Ok(mut r) = self.running.lock() {
                r.insert(key.clone(), stop.clone());
            }
            let result = run_try(&self.sched, &self.shared, &self.env, &claim, &stop).await;
            let report = Report {
                claim,
                outcome: result.outcome,
                exit_code: result.exit_code,
                error: result.error,
                pid: result.pid,
            };
            // Keep the slot busy unless the worker is stopping.
            let slot = (!self.cancel.is_cancelled())
                .then_some((self.shared.worker.as_str(), self.hostname.as_str()));
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
}

async fn run_try(
    sched: &Scheduler,
    shared: &Shared,
    env: &minijinja::Environment<'static>,
    claim: &Claim,
    stop: &CancellationToken,
) -> execute::TryResult {
    let ctx = match prepare(sched, claim).await {
        Ok(ctx) => ctx,
        Err(e) => return failed(e),
    };
    match LogWriter::create(&shared.logs_dir, &claim.log_path, shared.secrets.clone()).await {
        Ok(mut log) => execute::execute(&ctx, env, &mut log, stop, shared).await,
        Err(e) => failed(format!("cannot write the log {}: {e}", claim.log_path)),
    }
}

fn failed(error: String) -> execute::TryResult {
    execute::TryResult {
        outcome: weir_core::scheduler::Outcome::Failed,
        exit_code: None,
        error: Some(error),
        pid: None,
    }
}

async fn prepare(sched: &Scheduler, claim: &Claim) -> Result<TryContext, String> {
    let dag = sched
        .dag_version(claim.version_id)
        .await
        .map_err(|e| e.to_string())?;
    let run = sched
        .store()
        .get_run_by_pk(claim.run_pk)
        .await
        .map_err(|e| e.to_string())?;
    Ok(TryContext {
        dag,
        run,
        claim: claim.clone(),
    })
}
