//! Backfills: runs for every scheduled interval in a date range, created on
//! demand (paused DAGs too), each once.

use chrono::{DateTime, Utc};

use super::{Error, Result, Scheduler, interval_run, intervals};
use crate::state::{RunState, RunType};
use crate::store::{self, AuditEntry, RunFilter, RunRecord};

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
        let mut report = Backfill {
            intervals: wanted.len(),
            ..Backfill::default()
        };
        let now = self.now();
        for (start, end) in wanted {
            if let Some(run) = existing.iter().find(|r| r.logical_date == Some(start)) {
                if rerun_failed && run.state == RunState::Failed {
                    let all: Vec<String> = dag.tasks.keys().map(ToString::to_string).collect();
                    self.clear(dag_id, &run.run_id, all, false, true, actor)
                        .await?;
                    report.rerun += 1;
                }
                report.runs.push(self.store().get_run_by_pk(run.id).await?);
                continue;
            }
            if report.created >= limit {
                continue;
            }
            let run = interval_run(
                &dag,
                version_id,
                RunType::Backfill,
                (start, end),
                now,
                actor,
            );
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
                    action: "backfill".into(),
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
}
