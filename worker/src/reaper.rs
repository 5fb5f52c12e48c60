//! Finding past lives: a worker registered on this host whose process is
//! gone (it crashed, or the machine restarted) left its task processes and
//! running tries behind. Its processes are killed first, then its tries fail
//! through their retry rules, so a try never runs twice at once. A live
//! worker's tries and processes are never touched.

use weir_core::scheduler::Scheduler;
use weir_core::workers::{NewWorker, WorkerRecord, WorkerState};

use crate::life::{self, Liveness};

/// What a pass of [`reap_past_lives`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The worker lives found gone.
    pub workers: Vec<String>,
    /// Task processes they left running, now killed.
    pub processes: usize,
    /// Their running tries, now failed through their retry rules.
    pub tries: usize,
}

/// Finds the worker lives on this host that are gone and cleans up after
/// them. Never fails: a problem with one life is logged and the next one
/// is looked at.
pub async fn reap_past_lives(sched: &Scheduler, me: &NewWorker) -> Reaped {
    let mut reaped = Reaped::default();
    let workers = match sched.active_workers_on(&me.hostname).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("could not list the workers on this host: {e}");
            return reaped;
        }
    };
    for worker in workers.iter().filter(|w| w.name != me.name) {
        if !is_gone(sched, worker, me) {
            continue;
        }
        let marker = worker.name.clone();
        let processes = tokio::task::spawn_blocking(move || crate::shell::kill_orphans(&marker))
            .await
            .unwrap_or(0);
        let tries = match sched.recover_worker(&worker.name).await {
            Ok(r) => r.failed,
            Err(e) => {
                tracing::warn!(worker = %worker.name, "could not fail the tries of a worker that is gone: {e}");
                0
            }
        };
        if let Err(e) = sched.end_worker(&worker.name, WorkerState::Lost).await {
            tracing::warn!(worker = %worker.name, "could not record that the worker is gone: {e}");
        }
        tracing::warn!(
            worker = %worker.name,
            pid = worker.pid,
            "worker {} is gone: stopped {processes} task process(es) it left running; \
             {tries} of its running tries go through their retry rules",
            worker.name
        );
        reaped.workers.push(worker.name.clone());
        reaped.processes += processes;
        reaped.tries += tries;
    }
    reaped
}

/// A life is gone when its process is, or, where this process cannot see
/// it, when it has not been heard of for a whole lease.
fn is_gone(sched: &Scheduler, worker: &WorkerRecord, me: &NewWorker) -> bool {
    match life::liveness(worker, me) {
        Liveness::Running => false,
        Liveness::Gone => true,
        Liveness::Unknown => sched.heartbeat_lapsed(worker),
    }
}
