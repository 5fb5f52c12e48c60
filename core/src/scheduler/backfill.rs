//! Backfills: runs for every scheduled interval in a date range, created on
//! demand (paused DAGs too), each once.

use chrono::{DateTime, Utc};

use super::{Error, Result, Scheduler, interval_run, intervals};
use crate::access::{BackfillChange, BackfillFilter, Reprocess};
use crate::state::{RunState, RunType};
use crate::store::{self, AuditAction, AuditEntry, RunFilter, RunRecord};

/// What a backfill request did.
#[derive(Debug, Clone, Default)]
pub struct Backfill {
    /// Every run of the range (new, existing and re-run), oldest first.
    pub runs: Vec<RunRecord>,
    /// How many runs it created.
    pub created: usize,
    /// How many failed runs it cleared to run again.
    pub rerun: usize,
    /// How many intervals the range holds.
    pub intervals: usize,
}

/// A DAG's newest version (key and model), the intervals of a range, and the
/// DAG's runs.
type RangeAndRuns = (
    i64,
    std::sync::Arc<crate::dag::Dag>,
    Vec<(DateTime<Utc>, DateTime<Utc>)>,
    Vec<RunRecord>,
);

/// What a backfill would do (see [`Scheduler::preview_backfill`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillPreview {
    /// Intervals in the range.
    pub intervals: usize,
    /// Runs it would create.
    pub create: usize,
    /// Existing runs it would run again.
    pub rerun: usize,
}

impl Scheduler {
    /// Creates `backfill__<logical date>` runs for the intervals of `dag_id`
    /// whose logical date is in `[from, to]`, both included. A date that
    /// already has a run (of any type) gets no second one; with
    /// `rerun_failed`, its failed tasks are cleared instead. At most `limit`
    /// new runs are created by this call (the rest by later calls), so a
    /// caller can keep a number of backfill runs active.
    pub async fn backfill(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rerun_failed: bool,
        limit: usize,
        actor: &str,
    ) -> Result<Backfill> {
        let range = BackfillRange {
            from,
            to,
            reprocess: if rerun_failed {
                Reprocess::Failed
            } else {
                Reprocess::None
            },
            conf: "{}".into(),
        };
        self.backfill_range(dag_id, &range, limit, actor).await
    }

    /// The newest version of `dag_id`, the intervals `range` holds, and the
    /// DAG's runs (to find the dates that have one).
    async fn range_and_runs(&self, dag_id: &str, range: &BackfillRange) -> Result<RangeAndRuns> {
        let (from, to) = (range.from, range.to);
        if to < from {
            return Err(Error::Invalid(format!("--to {to} is before --from {from}")));
        }
        let (version_id, dag) = self.latest_dag(dag_id).await?;
        let wanted = intervals::between(&dag, from, to).ok_or_else(|| {
            Error::Invalid(format!(
                "DAG `{dag_id}` has no time schedule to backfill; trigger runs instead"
            ))
        })?;
        let (existing, _) = self
            .store()
            .list_runs(&RunFilter {
                dag_id: Some(dag_id.to_owned()),
                ..RunFilter::default()
            })
            .await?;
        Ok((version_id, dag, wanted, existing))
    }

    /// What a backfill of `range` would do now, changing nothing: how many
    /// intervals the range holds, how many runs it would create and how many
    /// existing runs it would run again.
    pub async fn preview_backfill(
        &self,
        dag_id: &str,
        range: &BackfillRange,
    ) -> Result<BackfillPreview> {
        let (_, _, wanted, existing) = self.range_and_runs(dag_id, range).await?;
        let mut preview = BackfillPreview {
            intervals: wanted.len(),
            ..BackfillPreview::default()
        };
        for (start, _) in wanted {
            match existing.iter().find(|r| r.logical_date == Some(start)) {
                None => preview.create += 1,
                Some(run) => {
                    let again = match range.reprocess {
                        Reprocess::Failed => run.state == RunState::Failed,
                        Reprocess::Completed => run.state.is_finished(),
                        Reprocess::None => false,
                    };
                    if again {
                        preview.rerun += 1;
                    }
                }
            }
        }
        Ok(preview)
    }

    /// [`Scheduler::backfill`] with every option: what to do with dates
    /// that have a run, and the conf of the new runs.
    pub async fn backfill_range(
        &self,
        dag_id: &str,
        range: &BackfillRange,
        limit: usize,
        actor: &str,
    ) -> Result<Backfill> {
        let (from, to) = (range.from, range.to);
        let (version_id, dag, wanted, existing) = self.range_and_runs(dag_id, range).await?;
        let mut report = Backfill {
            intervals: wanted.len(),
            ..Backfill::default()
        };
        let now = self.now();
        for (start, end) in wanted {
            if let Some(run) = existing.iter().find(|r| r.logical_date == Some(start)) {
                let only_failed = match range.reprocess {
                    Reprocess::Failed if run.state == RunState::Failed => Some(true),
                    Reprocess::Completed if run.state.is_finished() => Some(false),
                    _ => None,
                };
                if let Some(only_failed) = only_failed {
                    let all = super::ClearSpec {
                        task_ids: dag.tasks.keys().map(ToString::to_string).collect(),
                        only_failed,
                        ..super::ClearSpec::default()
                    };
                    self.clear(dag_id, &run.run_id, &all, actor).await?;
                    report.rerun += 1;
                }
                report.runs.push(self.store().get_run_by_pk(run.id).await?);
                continue;
            }
            if report.created >= limit {
                continue;
            }
            let mut run = interval_run(
                &dag,
                version_id,
                RunType::Backfill,
                (start, end),
                now,
                actor,
            );
            run.conf = range.conf.clone();
            match self.store().create_run(&run).await {
                Ok(r) => {
                    report.created += 1;
                    report.runs.push(r);
                }
                // Another backfill created it a moment ago.
                Err(store::Error::Conflict(_)) => report
                    .runs
                    .push(self.store().get_run(dag_id, &run.run_id).await?),
                Err(e) => return Err(e.into()),
            }
        }
        if report.created > 0 || report.rerun > 0 {
            self.store()
                .audit(&AuditEntry {
                    at: now,
                    actor: actor.to_owned(),
                    action: AuditAction::Backfill,
                    dag_id: Some(dag_id.to_owned()),
                    run_id: None,
                    task_id: None,
                    detail: Some(
                        serde_json::json!({"from": from, "to": to, "created": report.created, "rerun": report.rerun})
                            .to_string(),
                    ),
                })
                .await?;
            self.start_queued_runs(dag_id).await?;
        }
        Ok(report)
    }

    /// Creates the next runs of every unpaused, unfinished backfill recorded
    /// through the API (keeping each within its `max_active_runs`), and marks
    /// a backfill completed once every run of its range has ended.
    pub async fn continue_backfills(&self) -> Result<()> {
        let (active, _) = self
            .store()
            .list_backfills(&BackfillFilter {
                dag_id: None,
                unfinished_only: true,
                limit: i64::MAX,
                offset: 0,
            })
            .await?;
        for b in active.into_iter().filter(|b| !b.is_paused) {
            let running = self.store().count_active_runs(&b.dag_id).await?;
            let limit = usize::try_from(b.max_active_runs - running).unwrap_or(0);
            let range = BackfillRange {
                from: b.from_date,
                to: b.to_date,
                reprocess: Reprocess::None,
                conf: b.dag_run_conf.clone(),
            };
            let report = match self
                .backfill_range(&b.dag_id, &range, limit, &b.created_by)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(backfill = b.id, dag = %b.dag_id, "backfill cannot continue: {e}");
                    continue;
                }
            };
            let done = report.runs.len() == report.intervals
                && report.runs.iter().all(|r| r.state.is_finished());
            if done {
                self.store()
                    .update_backfill(b.id, BackfillChange::Complete, self.now())
                    .await?;
            }
        }
        Ok(())
    }
}

/// The dates a backfill covers and how it treats dates that have a run.
#[derive(Debug, Clone)]
pub struct BackfillRange {
    /// First logical date, included.
    pub from: DateTime<Utc>,
    /// Last logical date, included.
    pub to: DateTime<Utc>,
    /// What to do with dates that already have a run.
    pub reprocess: Reprocess,
    /// Conf of the new runs (a JSON object).
    pub conf: String,
}
