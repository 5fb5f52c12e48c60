//! What people do by hand: clear task instances (and preview it), mark a
//! task or a run, pause and unpause a DAG. Each is audited in the same
//! transaction as the change.

use crate::state::{RunState, TaskState};
use crate::store::{self, AuditAction, AuditEntry, Plan, RunRecord};

use super::{Action, ClearSpec, Error, Result, Scheduler, plan};

/// The tasks a plan clears.
fn cleared(plan: &Plan) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    // A mapped task's instances are cleared together: its id once.
    for c in plan.tasks.iter().filter(|c| c.to == TaskState::None) {
        if !ids.contains(&c.task_id) {
            ids.push(c.task_id.clone());
        }
    }
    ids
}

impl Scheduler {
    /// The task ids [`Scheduler::clear`] would clear now, changing nothing.
    pub async fn preview_clear(
        &self,
        dag_id: &str,
        run_id: &str,
        spec: &ClearSpec,
    ) -> Result<Vec<String>> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let dag = self.dag_version(run.version_id).await?;
        let tasks = self
            .inner
            .store
            .list_task_instances(run.id)
            .await?
            .into_iter()
            .map(|t| store::TaskStateRecord {
                id: t.id,
                task_id: t.task_id,
                state: t.state,
                try_number: t.try_number,
                max_tries: t.max_tries,
                next_try_at: t.next_try_at,
                map_index: t.map_index,
                map_count: t.map_count,
            })
            .collect();
        let snapshot = store::RunSnapshot::of(run, tasks, Vec::new(), None);
        let plan = plan::plan(&dag, &snapshot, &Action::Clear(spec.clone()), self.now())
            .map_err(|r| Error::Invalid(r.to_string()))?;
        Ok(cleared(&plan))
    }

    /// Clears the task instances `spec` names (audited); returns the task ids cleared.
    pub async fn clear(
        &self,
        dag_id: &str,
        run_id: &str,
        spec: &ClearSpec,
        actor: &str,
    ) -> Result<Vec<String>> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let action = Action::Clear(spec.clone());
        let audit = self.audit_entry(actor, AuditAction::Clear, dag_id, run_id, None, serde_json::json!({"task_ids": spec.task_ids, "downstream": spec.downstream, "upstream": spec.upstream, "only_failed": spec.only_failed}));
        let plan = self
            .apply(run.id, run.version_id, &action, Some(&audit))
            .await?;
        self.after_change(dag_id, &plan).await?;
        Ok(cleared(&plan))
    }

    /// Marks a task success or failed by hand (audited): its instance, or
    /// all its mapped instances when it expanded.
    pub async fn mark(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        state: TaskState,
        actor: &str,
    ) -> Result<()> {
        self.mark_instance(dag_id, run_id, task_id, -1, state, actor)
            .await
    }

    /// Marks one task instance (`map_index` -1: the task, as [`Scheduler::mark`])
    /// success or failed by hand (audited).
    pub async fn mark_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
        state: TaskState,
        actor: &str,
    ) -> Result<()> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let action = Action::Mark {
            task_id: task_id.to_owned(),
            map_index,
            state,
        };
        let what = match state {
            TaskState::Success => AuditAction::MarkSuccess,
            TaskState::Failed => AuditAction::MarkFailed,
            other => {
                return Err(Error::Invalid(format!(
                    "a task can be marked success or failed, not {other}"
                )));
            }
        };
        let audit = self.audit_entry(
            actor,
            what,
            dag_id,
            run_id,
            Some(task_id),
            serde_json::json!({}),
        );
        let plan = self
            .apply(run.id, run.version_id, &action, Some(&audit))
            .await?;
        self.after_change(dag_id, &plan).await
    }

    /// Pauses a DAG: it creates no scheduled runs until unpaused (audited).
    pub async fn pause(&self, dag_id: &str, actor: &str) -> Result<()> {
        self.set_paused(dag_id, true, AuditAction::Pause, actor)
            .await
    }

    /// Unpauses a DAG (audited).
    pub async fn unpause(&self, dag_id: &str, actor: &str) -> Result<()> {
        self.set_paused(dag_id, false, AuditAction::Unpause, actor)
            .await
    }

    pub(super) async fn set_paused(
        &self,
        dag_id: &str,
        paused: bool,
        what: AuditAction,
        actor: &str,
    ) -> Result<()> {
        let audit = AuditEntry {
            at: self.now(),
            actor: actor.to_owned(),
            action: what,
            dag_id: Some(dag_id.to_owned()),
            run_id: None,
            task_id: None,
            detail: None,
        };
        self.inner
            .store
            .set_paused(dag_id, paused, Some(&audit))
            .await?;
        Ok(())
    }

    /// Sets a run's state by hand (audited).
    pub async fn set_run_state(
        &self,
        dag_id: &str,
        run_id: &str,
        state: RunState,
        actor: &str,
    ) -> Result<RunRecord> {
        let run = self.inner.store.get_run(dag_id, run_id).await?;
        let what = match state {
            RunState::Success => AuditAction::MarkRunSuccess,
            RunState::Failed => AuditAction::MarkRunFailed,
            other => {
                return Err(Error::Invalid(format!(
                    "a run can be set to success or failed, not {other}"
                )));
            }
        };
        let audit = self.audit_entry(actor, what, dag_id, run_id, None, serde_json::json!({}));
        let plan = self
            .apply(
                run.id,
                run.version_id,
                &Action::SetRunState(state),
                Some(&audit),
            )
            .await?;
        self.after_change(dag_id, &plan).await?;
        Ok(self.inner.store.get_run_by_pk(run.id).await?)
    }

    pub(super) fn audit_entry(
        &self,
        actor: &str,
        action: AuditAction,
        dag_id: &str,
        run_id: &str,
        task_id: Option<&str>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.to_owned(),
            action,
            dag_id: Some(dag_id.to_owned()),
            run_id: Some(run_id.to_owned()),
            task_id: task_id.map(str::to_owned),
            detail: Some(detail.to_string()),
        }
    }
}
