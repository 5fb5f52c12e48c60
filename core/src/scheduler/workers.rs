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

    /// The id of this site's catalog: data folders that belong to it hold it
    /// in their `.weir-catalog` marker file. Made once, at first use.
    pub async fn catalog_id(&self) -> Result<String> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        Ok(self
            .inner
            .store
            .setting_or_insert("catalog_id", &fresh)
            .await?)
    }

    /// Asks an active worker to drain: it claims nothing more and its running
    /// tries finish. Audited as `actor`'s.
    pub async fn drain_worker(&self, name: &str, actor: &str) -> Result<()> {
        if !self.inner.store.get_worker(name).await?.remote {
            return Err(super::Error::Invalid(format!(
                "worker `{name}` is the local pool of a weir process: stop that process (SIGTERM) instead"
            )));
        }
        let now = self.now();
        self.inner.store.drain_worker(name, now).await?;
        self.inner
            .store
            .audit(&crate::store::AuditEntry {
                at: now,
                actor: actor.to_owned(),
                action: crate::store::AuditAction::DrainWorker,
                dag_id: None,
                run_id: None,
                task_id: None,
                detail: Some(serde_json::json!({ "worker": name }).to_string()),
            })
            .await?;
        Ok(())
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

/// Where a worker stands, as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Claims and runs tries.
    Active,
    /// Claims nothing more; finishes what it runs.
    Draining,
    /// Not heard of for longer than a lease.
    Lost,
}

crate::named_enum!(Standing, "worker standing", {
    Active => "active",
    Draining => "draining",
    Lost => "lost",
});

/// A worker in the workers view: its life, standing and running tries.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// The worker life.
    pub life: WorkerRecord,
    /// Active, draining or lost.
    pub standing: Standing,
    /// Tries it runs now.
    pub running: i64,
    /// The latest lease it renewed.
    pub lease_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Scheduler {
    /// The workers that run or ran lately, oldest first: the active and
    /// draining ones, and those lost in the last day.
    pub async fn workers_view(&self) -> Result<Vec<WorkerView>> {
        let store = &self.inner.store;
        let now = self.now();
        let filter = |state| WorkerFilter {
            hostname: None,
            state: Some(state),
        };
        let mut lives = store.list_workers(&filter(WorkerState::Active)).await?;
        lives.extend(
            store
                .list_workers(&filter(WorkerState::Lost))
                .await?
                .into_iter()
                .filter(|w| {
                    w.stopped_at
                        .is_some_and(|at| now - at < chrono::Duration::days(1))
                }),
        );
        lives.sort_by(|a, b| (a.started_at, &a.name).cmp(&(b.started_at, &b.name)));
        let (running, _) = store
            .find_task_instances(&crate::store::TaskFilter {
                states: vec![crate::state::TaskState::Running],
                ..Default::default()
            })
            .await?;
        Ok(lives
            .into_iter()
            .map(|w| {
                let tries = running
                    .iter()
                    .filter(|t| t.worker.as_deref() == Some(w.name.as_str()));
                let standing = if w.state == WorkerState::Lost || self.heartbeat_lapsed(&w) {
                    Standing::Lost
                } else if w.draining_at.is_some() {
                    Standing::Draining
                } else {
                    Standing::Active
                };
                WorkerView {
                    running: i64::try_from(tries.clone().count()).unwrap_or(i64::MAX),
                    lease_until: tries.filter_map(|t| t.lease_until).max(),
                    standing,
                    life: w,
                }
            })
            .collect())
    }
}

/// A new name for a worker life: `<role>@<host>:<12 random hex digits>`.
pub fn worker_name(role: &str, hostname: &str) -> String {
    format!("{role}@{hostname}:{:012x}", fastrand::u64(..1 << 48))
}
