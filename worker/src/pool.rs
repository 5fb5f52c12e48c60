//! The in-process worker pool of `weir standalone`: N slots that claim queued
//! task instances, run them, heartbeat their leases and report the results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
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
}

/// The local worker pool.
#[derive(Debug)]
pub struct LocalPool {
    scheduler: Scheduler,
    options: PoolOptions,
    shared: Shared,
    hostname: String,
}

impl LocalPool {
    /// A pool taking work from `scheduler`.
    pub fn new(scheduler: Scheduler, options: PoolOptions, secrets: Secrets) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let shared = Shared {
            logs_dir: options.logs_dir.clone(),
            secrets: Arc::new(secrets),
            worker: options.name.clone(),
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
        let mut tries: JoinSet<(String, i64)> = JoinSet::new();
        let mut stops: HashMap<(String, i64), CancellationToken> = HashMap::new();
        let beat_every = self.scheduler.lease() / 3;
        let mut beat = tokio::time::interval(beat_every.max(Duration::from_millis(100)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let free = self.options.slots.saturating_sub(tries.len());
            if free > 0 {
                match self
                    .scheduler
                    .claim(&self.options.name, &self.hostname, free)
                    .await
                {
                    Ok(claims) => {
                        for claim in claims {
                            let stop = cancel.child_token();
                            stops.insert((claim.ti_id.clone(), claim.try_number), stop.clone());
                            let (sched, shared, env) =
                                (self.scheduler.clone(), self.shared.clone(), env.clone());
                            tries.spawn(async move {
                                let key = (claim.ti_id.clone(), claim.try_number);
                                run_try(&sched, &shared, &env, claim, &stop).await;
                                key
                            });
                        }
                    }
                    Err(e) => tracing::error!("claiming work failed: {e}"),
                }
            }
            let full = tries.len() >= self.options.slots;
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = tries.join_next() => {
                    if let Ok(key) = done { stops.remove(&key); }
                }
                _ = self.scheduler.work_available(), if !full => {}
                _ = beat.tick() => {
                    let running: Vec<(String, i64)> = stops.keys().cloned().collect();
                    match self.scheduler.heartbeat(&running).await {
                        Ok(lost) => for key in lost {
                            if let Some(s) = stops.get(&key) {
                                tracing::info!(ti = %key.0, try_number = key.1, "the try is no longer running in the database; stopping it");
                                s.cancel();
                            }
                        },
                        Err(e) => tracing::error!("heartbeat failed: {e}"),
                    }
                }
                _ = tokio::time::sleep(self.options.poll), if !full => {}
            }
        }
        for stop in stops.values() {
            stop.cancel();
        }
        while tries.join_next().await.is_some() {}
    }
}

async fn run_try(
    sched: &Scheduler,
    shared: &Shared,
    env: &minijinja::Environment<'static>,
    claim: Claim,
    stop: &CancellationToken,
) {
    let result = match prepare(sched, &claim).await {
        Ok(ctx) => {
            match LogWriter::create(&shared.logs_dir, &claim.log_path, shared.secrets.clone()).await
            {
                Ok(mut log) => execute::execute(&ctx, env, &mut log, stop, &shared.worker).await,
                Err(e) => failed(format!("cannot write the log {}: {e}", claim.log_path)),
            }
        }
        Err(e) => failed(e),
    };
    let report = Report {
        claim,
        outcome: result.outcome,
        exit_code: result.exit_code,
        error: result.error,
        pid: result.pid,
    };
    if let Err(e) = sched.finish(&report).await {
        tracing::warn!(dag = %report.claim.dag_id, run = %report.claim.run_id, task = %report.claim.task_id, "reporting the try failed: {e}");
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
