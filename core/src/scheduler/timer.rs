//! The timer: what time alone makes happen. Retries that came due, tries
//! whose lease expired, runs past `dagrun_timeout` or their deadline, scheduled runs whose
//! interval ended, dataset-triggered runs, backfills, and runs waiting to
//! start. Everything else is event-driven.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::state::{RunState, RunType};
use crate::store::{self, AuditAction, Claim, TryKey};

use super::{Action, Ended, Report, Result, Scheduler, interval_run, intervals};

impl Scheduler {
    /// One pass of the timer: retries that came due, tries whose lease
    /// expired (their worker is gone), runs past `dagrun_timeout`, runs
    /// waiting to start, and queueing.
    pub async fn tick(&self) -> Result<()> {
        let now = self.now();
        for run_pk in self.inner.store.due_retries(now).await? {
            let run = self.inner.store.get_run_by_pk(run_pk).await?;
            self.ignore_conflict(
                self.apply(run_pk, run.version_id, &Action::Evaluate, None)
                    .await,
            )?;
        }
        for lost in self.inner.store.expired_leases(now).await? {
            let error = "the worker stopped heartbeating (lease expired); the try counts as failed";
            self.fail_lost_try(&lost, error).await?;
        }
        // A remote worker unheard of for two leases is lost: its tries'
        // leases lapsed already, so nothing of it runs under weir any more.
        for name in self
            .inner
            .store
            .lapsed_workers(now - self.lease_chrono() * 2)
            .await?
        {
            tracing::warn!(worker = %name, "the remote worker stopped heartbeating; it counts as lost");
            self.end_worker(&name, crate::workers::WorkerState::Lost)
                .await?;
        }
        // One read of the DAGs for both run-length checks.
        let dags = self.inner.store.list_dags().await?;
        self.fail_timed_out_runs(&dags, now).await?;
        self.fire_missed_deadlines(&dags, now).await?;
        self.create_scheduled_runs(now).await?;
        self.create_dataset_triggered_runs(now).await?;
        self.continue_backfills().await?;
        for dag_id in self.inner.store.dags_with_queued_runs().await? {
            self.start_queued_runs(&dag_id).await?;
        }
        self.dispatch().await?;
        Ok(())
    }

    pub(super) async fn fail_lost_try(&self, lost: &TryKey, error: &str) -> Result<()> {
        let TryKey {
            run_pk,
            ti_id,
            try_number,
        } = lost;
        let (run_pk, try_number) = (*run_pk, *try_number);
        let run = self.inner.store.get_run_by_pk(run_pk).await?;
        let tis = self.inner.store.list_task_instances(run_pk).await?;
        let Some(ti) = tis.into_iter().find(|t| t.id == *ti_id) else {
            return Ok(());
        };
        tracing::warn!(dag = %run.dag_id, run = %run.run_id, task = %ti.task_id, try_number, "{error}");
        let report = Report {
            claim: Claim {
                try_number,
                ..Claim::of_current_try(&ti, &run)
            },
            ended: Ended::failed(error),
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

    /// Fires `deadline_missed` (once per run) for queued and running runs of
    /// DAGs with a `deadline:` that passed it.
    pub(super) async fn fire_missed_deadlines(
        &self,
        dags: &[store::DagRecord],
        now: DateTime<Utc>,
    ) -> Result<()> {
        use crate::dag::{DeadlineFrom, NotifyEvent};
        for dag in dags {
            let Ok(latest) = self.dag_version(dag.latest_version_id).await else {
                continue;
            };
            if latest.deadline.is_none() {
                continue;
            }
            let filter = store::RunFilter {
                dag_id: Some(dag.dag_id.clone()),
                states: vec![RunState::Queued, RunState::Running],
                ..Default::default()
            };
            for run in self.inner.store.list_runs(&filter).await?.0 {
                let Ok(d) = self.dag_version(run.version_id).await else {
                    continue;
                };
                let Some(deadline) = d.deadline else { continue };
                let from = match deadline.after {
                    DeadlineFrom::Queued => run.queued_at,
                    DeadlineFrom::LogicalDate => run.logical_date.unwrap_or(run.run_after),
                };
                let within = chrono::Duration::seconds(
                    i64::try_from(deadline.within.as_secs()).unwrap_or(i64::MAX / 2),
                );
                if now < from + within {
                    continue;
                }
                let notices: Vec<store::Notice> = d
                    .notify
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.on.contains(&NotifyEvent::DeadlineMissed))
                    .map(|(i, _)| store::Notice {
                        task_id: None,
                        try_number: None,
                        map_index: -1,
                        event: NotifyEvent::DeadlineMissed,
                        rule: format!("dag:{i}"),
                    })
                    .collect();
                if notices.is_empty() {
                    continue;
                }
                let fired = self.inner.store.run_notifications(run.id).await?;
                if fired.iter().any(|n| n.event == NotifyEvent::DeadlineMissed) {
                    continue;
                }
                tracing::warn!(dag = %run.dag_id, run = %run.run_id, "the run missed its deadline");
                self.inner
                    .store
                    .record_notices(run.id, &notices, now)
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn fail_timed_out_runs(
        &self,
        dags: &[store::DagRecord],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for dag in dags {
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
