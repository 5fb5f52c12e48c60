//! Reports of ended tries: a try that ends is closed, what became ready is
//! scheduled and queued, the run closes when every task is final, and the
//! reporting slot claims its next task, all in one transaction. Reports that
//! arrive while a batch commits join the next batch (group commit).

use std::sync::Arc;

use crate::dag::Dag;
use crate::store::{self, AuditEntry, Claim, ClaimRequest, Plan, TryEnd};

use super::{Action, Ended, Error, Result, Scheduler, plan};

/// How a worker reports a try that ended.
#[derive(Debug, Clone)]
pub struct Report {
    /// The claim the try started with.
    pub claim: Claim,
    /// How it ended.
    pub ended: Ended,
}

/// A worker slot that takes its next task as it reports its last.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// The worker's name.
    pub worker: &'a str,
    /// Its host.
    pub hostname: &'a str,
    /// The queues it serves (`None`: every queue).
    pub queues: Option<&'a [String]>,
}

#[derive(Debug)]
pub(super) struct ClaimSlot {
    worker: String,
    hostname: String,
    queues: Option<Vec<String>>,
}

/// A reported try waiting for the next group commit.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) dag: Arc<Dag>,
    pub(super) run_pk: i64,
    pub(super) action: Action,
    pub(super) end: TryEnd,
    /// The worker slot to claim the next task for.
    pub(super) slot: Option<ClaimSlot>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<(Plan, Option<Claim>)>>,
}

impl Scheduler {
    /// Applies `action` (a start, an evaluation or a manual action; tries
    /// end through [`Scheduler::finish_and_claim`]) to a run in one
    /// transaction, with `audit` written in it.
    pub(super) async fn apply(
        &self,
        run_pk: i64,
        version_id: i64,
        action: &Action,
        audit: Option<&AuditEntry>,
    ) -> Result<Plan> {
        let dag = self.dag_version(version_id).await?;
        let now = self.now();
        let scope = plan::scope(&dag, action);
        let planner = move |s: &store::RunSnapshot| plan::plan_scoped(&dag, s, action, now);
        let done = self
            .inner
            .store
            .advance_run(run_pk, &scope, None, audit, None, &planner)
            .await?;
        if done.queued > 0 {
            self.wake_workers();
        }
        Ok(done.plan)
    }

    /// Reports a try that ended: records it and schedules and queues what
    /// follows, in one transaction; then starts waiting runs if this one ended.
    pub async fn finish(&self, report: &Report) -> Result<()> {
        self.finish_and_claim(report, None).await.map(|_| ())
    }

    /// [`Scheduler::finish`], and in the same transaction claims the next
    /// queued task instance for the same worker slot (`worker`, `hostname`):
    /// a worker that keeps its slots busy needs no separate claim.
    ///
    /// Reports that arrive while another batch commits are committed together
    /// (group commit): one transaction, each report in its own savepoint.
    pub async fn finish_and_claim(
        &self,
        report: &Report,
        slot: Option<Slot<'_>>,
    ) -> Result<Option<Claim>> {
        let c = &report.claim;
        let now = self.now();
        let dag = self.dag_version(c.version_id).await?;
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            dag,
            run_pk: c.run_pk,
            action: Action::Finish {
                task_id: c.task_id.clone(),
                map_index: c.map_index,
                try_number: c.try_number,
                outcome: report.ended.outcome,
                jitter: fastrand::f64(),
            },
            end: TryEnd {
                ti_id: c.ti_id.clone(),
                run_pk: c.run_pk,
                try_number: c.try_number,
                exit_code: report.ended.exit_code,
                error: report.ended.error.clone(),
                pid: report.ended.pid,
                output: report.ended.output.clone(),
                at: now,
            },
            slot: slot.map(|s| ClaimSlot {
                worker: s.worker.to_owned(),
                hostname: s.hostname.to_owned(),
                queues: s.queues.map(<[String]>::to_vec),
            }),
            reply,
        };
        // The queue is a plain list: a panic elsewhere while it was locked
        // cannot leave it half-changed, so a poisoned lock is still usable.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pending);
        let answered = |answer: &mut tokio::sync::oneshot::Receiver<_>| match answer.try_recv() {
            Ok(result) => Some(result),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(Error::Unanswered)),
        };
        let (plan, claim) = loop {
            if let Some(result) = answered(&mut answer) {
                break result?;
            }
            let _leader = self.inner.committing.lock().await;
            if let Some(result) = answered(&mut answer) {
                break result?;
            }
            let batch = std::mem::take(
                &mut *self
                    .inner
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            self.commit_batch(batch).await;
        };
        self.inner.metrics.ended(c, now);
        self.inner.metrics.claimed(&claim);
        self.after_change(&c.dag_id, &plan).await?;
        Ok(claim)
    }

    /// Commits a batch of reports in one transaction and answers each.
    pub(super) async fn commit_batch(&self, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let now = self.now();
        let scopes: Vec<store::Scope> = batch
            .iter()
            .map(|p| plan::scope(&p.dag, &p.action))
            .collect();
        // Claims start now, after everything the batch queues.
        let claims: Vec<Option<ClaimRequest>> = batch
            .iter()
            .map(|p| {
                p.slot
                    .as_ref()
                    .map(|s| self.claim_request(&s.worker, &s.hostname, 1, s.queues.as_deref()))
            })
            .collect();
        let items: Vec<store::Advance> = batch
            .iter()
            .zip(scopes)
            .zip(claims)
            .map(|((p, scope), claim)| {
                let (dag, action) = (p.dag.clone(), p.action.clone());
                store::Advance {
                    run_pk: p.run_pk,
                    scope,
                    end: Some(p.end.clone()),
                    planner: Arc::new(move |s: &store::RunSnapshot| {
                        plan::plan_scoped(&dag, s, &action, now)
                    }),
                    claim,
                }
            })
            .collect();
        let results = self.inner.store.advance_runs(items).await;
        match results {
            Ok(results) => {
                // Idle slots are woken only for work the batch's own claims
                // left queued: a chain's next task, queued and claimed by
                // the slot that reported, needs nobody else. (Every item
                // reports what the batch's one transaction queued.)
                let (mut queued, mut claimed) = (0, 0);
                for (p, r) in batch.into_iter().zip(results) {
                    let answer = r.map_err(Error::from).map(|done| {
                        queued = queued.max(done.queued);
                        claimed += done.claims.len();
                        (done.plan, done.claims.into_iter().next())
                    });
                    let _ = p.reply.send(answer);
                }
                if queued > claimed {
                    self.wake_workers();
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in batch {
                    let _ = p.reply.send(Err(Error::Batch(e.clone())));
                }
            }
        }
    }

    pub(super) fn claim_request(
        &self,
        worker: &str,
        hostname: &str,
        limit: usize,
        queues: Option<&[String]>,
    ) -> ClaimRequest {
        let now = self.now();
        ClaimRequest {
            worker: worker.to_owned(),
            hostname: hostname.to_owned(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            queues: queues.map(<[String]>::to_vec),
            lease_id: uuid::Uuid::new_v4().simple().to_string(),
            lease_until: now + self.lease_chrono(),
            now,
        }
    }

    pub(super) async fn after_change(&self, dag_id: &str, plan: &Plan) -> Result<()> {
        // Ready work was queued in the plan's own transaction; a run that
        // ended may let a waiting run start.
        if plan.run.is_some_and(|(_, to)| to.is_finished()) {
            self.start_queued_runs(dag_id).await?;
        }
        Ok(())
    }
}
