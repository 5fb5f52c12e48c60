//! Worker lives: registering this process's worker, its heartbeat and its
//! end, and failing the running tries of a worker found gone.

use super::{Result, Scheduler};
use crate::store::WorkerFilter;
use crate::workers::{NewWorker, WorkerRecord, WorkerState};

/// What became of the running tries of a worker found gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Tries failed through their retry rules.
    pub failed: usize,
    /// Tries that could not be failed (logged); their leases still expire.
    pub skipped: usize,
}

impl Scheduler {
    /// Registers a worker life as active.
    pub async fn register_worker(&self, worker: &NewWorker) -> Result<()> {
        Ok(self.inner.store.register_worker(worker, self.now()).await?)
    }

    /// Notes that a worker is alive. A worker another process found lost gets
    /// [`crate::store::Error::Conflict`].
    pub async fn worker_heartbeat(&self, name: &str) -> Result<()> {
        Ok(self.inner.store.worker_heartbeat(name, self.now()).await?)
    }

    /// Ends a worker life as `stopped` (it says so itself) or `lost` (found
    /// gone). Ending one that someone else ended first is not an error.
    pub async fn end_worker(&self, name: &str, state: WorkerState) -> Result<()> {
        self.ignore_conflict(
            self.inner
                .store
                .end_worker(name, state, self.now())
                .await
                .map_err(Into::into),
        )
    }

    /// The active worker lives on a host, oldest first.
    pub async fn active_workers_on(&self, hostname: &str) -> Result<Vec<WorkerRecord>> {
        Ok(self
            .inner
            .store
            .list_workers(&WorkerFilter {
                hostname: Some(hostname.to_owned()),
                state: Some(WorkerState::Active),
            })
            .await?)
    }

    /// Whether a worker's heartbeat is older than a lease: nobody has heard
    /// of it for as long as its tries may run unheard.
    pub fn heartbeat_lapsed(&self, worker: &WorkerRecord) -> bool {
        let lease = chrono::Duration::from_std(self.lease()).unwrap_or(chrono::Duration::MAX);
        worker.heartbeat_at + lease < self.now()
    }

    /// Fails the tries a worker that is gone left running: they go through
    /// their retry rules at once instead of waiting for their leases to
    /// expire. A try that cannot be failed is logged and skipped (its lease
    /// still expires); one that someone else finished first is not counted.
    pub async fn recover_worker(&self, worker: &str) -> Result<Recovered> {
        let lost = self.inner.store.running_for_worker(worker).await?;
        let mut recovered = Recovered::default();
        for key in &lost {
            let error = format!(
                "the worker {worker} is gone (its process ended) while the try was running; \
                 the try counts as failed"
            );
            match self.fail_lost_try(key, &error).await {
                Ok(()) => recovered.failed += 1,
                Err(e) => {
                    tracing::warn!(
                        worker,
                        ti = %key.ti_id,
                        try_number = key.try_number,
                        "could not fail a try of a worker that is gone: {e}; its lease will expire"
                    );
                    recovered.skipped += 1;
                }
            }
        }
        Ok(recovered)
    }
}

/// A new name for a worker life: `<role>@<host>:<12 random hex digits>`.
pub fn worker_name(role: &str, hostname: &str) -> String {
    format!("{role}@{hostname}:{:012x}", fastrand::u64(..1 << 48))
}
