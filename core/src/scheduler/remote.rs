//! The server side of the remote-worker protocol ([`crate::protocol`]):
//! claims for a worker's queues, heartbeats that renew leases, log pieces
//! and reports, each fenced by the try number and lease id of its claim.

use super::{Error, Report, Result, Scheduler, Slot};
use crate::protocol::{
    CatalogCall, CatalogRequest, Claimed, ClaimedTry, HeartbeatReply, Lease, TryReport,
};
use crate::state::TaskState;
use crate::store::{self, Claim, HeldTry, NewDatasetVersion, TaskInstanceRecord, TryRef};

/// Why a message about a try is refused.
#[derive(Debug, thiserror::Error)]
pub enum Fenced {
    /// The try moved on: its lease lapsed, another try began, or it was
    /// cleared or marked. The worker must kill it.
    #[error(
        "try {try_number} of {dag_id}.{task_id} (run {run_id}) no longer runs under lease {lease_id}: {why}; kill it"
    )]
    MovedOn {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Task id.
        task_id: String,
        /// The try the message was about.
        try_number: i64,
        /// The lease it named.
        lease_id: String,
        /// What happened instead.
        why: String,
    },
    /// The task instance no longer exists (its run was deleted).
    #[error("task instance {0} no longer exists; kill its try")]
    Gone(String),
    /// The store or scheduler failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl Scheduler {
    /// Claims for a remote worker: up to `limit` tries from `queues`, each
    /// with its run's template values, and whether it must drain (then it
    /// gets none).
    pub async fn claim_remote(
        &self,
        worker: &str,
        queues: &[String],
        limit: usize,
    ) -> Result<Claimed> {
        let life = self.inner.store.get_worker(worker).await?;
        let drain = life.takes_no_work();
        // A worker heartbeats three times a lease. One not heard of for two
        // of those may be stopped or cut off while its claim waits here: what
        // it was handed would only sit until its lease lapsed.
        let late = life.heartbeat_at + self.lease_chrono() * 2 / 3 < self.now();
        if late {
            tracing::debug!(worker, "not claiming for a worker whose heartbeat is late");
        }
        if drain || late || limit == 0 {
            return Ok(Claimed {
                tries: Vec::new(),
                drain,
            });
        }
        let claims = self
            .claim(worker, &life.hostname, limit, Some(queues))
            .await?;
        Ok(Claimed {
            tries: self.with_runs(claims).await?,
            drain,
        })
    }

    /// Adds each claim's run context, the variables, the outputs its
    /// templates read and the stored connections its task names.
    async fn with_runs(&self, claims: Vec<Claim>) -> Result<Vec<ClaimedTry>> {
        let mut tries = Vec::with_capacity(claims.len());
        let variables = if claims.is_empty() {
            Default::default()
        } else {
            self.variables().await?
        };
        for c in claims {
            let run = self.run_context(c.run_pk).await?;
            let dag = self.dag_version(c.version_id).await?;
            let outputs = self.outputs_for(&dag, &c).await?;
            let connections = self.connection_urls_for(&dag, &c).await?;
            tries.push(ClaimedTry {
                claim: c,
                run: (*run).clone(),
                variables: (*variables).clone(),
                outputs,
                connections,
            });
        }
        Ok(tries)
    }

    /// A remote worker's heartbeat: notes it alive and renews the leases it
    /// still holds; the others are named for it to kill.
    pub async fn heartbeat_remote(&self, worker: &str, tries: &[Lease]) -> Result<HeartbeatReply> {
        let registered = match self.worker_heartbeat(worker).await {
            Ok(()) => true,
            Err(Error::Store(store::Error::Conflict(_))) => false,
            Err(e) => return Err(e),
        };
        let held: Vec<HeldTry> = tries.iter().map(Lease::held).collect();
        let lost = self.heartbeat(&held).await?;
        let kill = tries
            .iter()
            .filter(|l| lost.contains(&l.held()))
            .cloned()
            .collect();
        let drain = registered
            && self
                .inner
                .store
                .get_worker(worker)
                .await?
                .draining_at
                .is_some();
        Ok(HeartbeatReply {
            lease_until: self.now() + self.lease_chrono(),
            kill,
            drain,
            registered,
        })
    }

    /// Checks that `lease` still holds: the try runs under it and it has not
    /// lapsed. Returns the task instance.
    pub async fn check_lease(&self, lease: &Lease) -> Result<TaskInstanceRecord, Fenced> {
        let ti = self.lease_target(lease).await?;
        let now = self.now();
        let why = if ti.try_number != lease.try_number {
            Some(format!("try {} began", ti.try_number))
        } else if ti.state != TaskState::Running {
            Some(format!("the task instance is {}", ti.state))
        } else if ti.lease_id.as_deref() != Some(lease.lease_id.as_str()) {
            Some("another claim holds it".to_owned())
        } else if ti.lease_until.is_none_or(|until| until < now) {
            Some("its lease lapsed".to_owned())
        } else {
            None
        };
        match why {
            None => Ok(ti),
            Some(why) => Err(moved_on(lease, why)),
        }
    }

    async fn lease_target(&self, lease: &Lease) -> Result<TaskInstanceRecord, Fenced> {
        match self.inner.store.get_task_instance_by_id(&lease.ti_id).await {
            Ok(ti)
                if ti.dag_id == lease.dag_id
                    && ti.run_id == lease.run_id
                    && ti.task_id == lease.task_id =>
            {
                Ok(ti)
            }
            Ok(_) | Err(store::Error::NotFound(_)) => Err(Fenced::Gone(lease.ti_id.clone())),
            Err(e) => Err(Fenced::Failed(e.into())),
        }
    }

    /// Appends a piece of a remote try's log, if its lease holds.
    pub async fn push_log(&self, lease: &Lease, offset: u64, data: &[u8]) -> Result<u64, Fenced> {
        self.check_lease(lease).await?;
        self.inner
            .store
            .append_log(&lease.ti_id, lease.try_number, offset, data)
            .await
            .map_err(|e| Fenced::Failed(e.into()))
    }

    /// Records a remote try's end, fenced by its lease, and claims the next
    /// try for the freed slot when asked. A report sent again after it was
    /// recorded is answered as such, not applied twice.
    pub async fn report_remote(
        &self,
        report: &TryReport,
    ) -> Result<(bool, Option<ClaimedTry>), Fenced> {
        let worker = report.worker.as_str();
        let ended = report
            .ended()
            .map_err(|e| Fenced::Failed(Error::Invalid(e)))?;
        let lease = &report.lease;
        let ti = match self.check_lease(lease).await {
            Ok(ti) => ti,
            Err(Fenced::MovedOn { why, .. }) => {
                return if self.already_reported(lease, worker, &ended).await? {
                    Ok((false, None))
                } else {
                    Err(moved_on(lease, why))
                };
            }
            Err(e) => return Err(e),
        };
        let run = self
            .inner
            .store
            .get_run_by_pk(ti.run_pk)
            .await
            .map_err(Error::from)?;
        let claim = Claim::of_current_try(&ti, &run);
        let life = self
            .inner
            .store
            .get_worker(worker)
            .await
            .map_err(Error::from)?;
        let slot = report
            .claim_next
            .as_deref()
            .filter(|_| !life.takes_no_work())
            .map(|queues| Slot {
                worker,
                hostname: &life.hostname,
                queues: Some(queues),
            });
        let done = self.finish_and_claim(&Report { claim, ended }, slot).await;
        match done {
            Ok(next) => {
                let next = self.with_runs(next.into_iter().collect()).await?;
                Ok((true, next.into_iter().next()))
            }
            Err(Error::Store(store::Error::Conflict(why))) => Err(moved_on(lease, why)),
            Err(Error::Store(store::Error::Refused(r))) => Err(moved_on(lease, r.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the try under `lease` already ended by this worker's report
    /// saying the same (the report is a repeat, not a late one).
    async fn already_reported(
        &self,
        lease: &Lease,
        worker: &str,
        ended: &super::Ended,
    ) -> Result<bool> {
        let tries = self.inner.store.list_tries(&lease.ti_id).await?;
        Ok(tries.iter().any(|t| {
            t.try_number == lease.try_number
                && t.worker.as_deref() == Some(worker)
                && t.end_date.is_some()
                && t.exit_code == ended.exit_code
                && t.error == ended.error
        }))
    }
}

impl Scheduler {
    /// Answers a remote try's catalog call, if its lease holds. Versions and
    /// quality results it records name the try under the lease, whatever the
    /// call says.
    pub async fn catalog_remote(
        &self,
        request: CatalogRequest,
    ) -> Result<serde_json::Value, Fenced> {
        let lease = &request.lease;
        self.check_lease(lease).await?;
        let store = &self.inner.store;
        let producer = TryRef {
            dag_id: lease.dag_id.clone(),
            run_id: lease.run_id.clone(),
            task_id: lease.task_id.clone(),
            try_number: lease.try_number,
        };
        let pin = |v: &mut NewDatasetVersion| {
            v.producer = Some(producer.clone());
        };
        let now = self.now();
        let answer = match request.call {
            CatalogCall::DatasetVersionOfRun {
                dataset,
                dag_id,
                run_id,
            } => json(
                store
                    .dataset_version_of_run(&dataset, &dag_id, &run_id)
                    .await,
            ),
            CatalogCall::LatestDatasetVersion { dataset } => {
                json(store.latest_dataset_version(&dataset).await)
            }
            CatalogCall::DatasetVersions { dataset } => {
                json(store.dataset_versions(dataset.as_deref()).await)
            }
            CatalogCall::RecordDatasetVersion { mut version } => {
                pin(&mut version);
                json(store.record_dataset_version(&version, now).await)
            }
            CatalogCall::RecordValidation { mut validation } => {
                validation.quality.producer = producer.clone();
                for v in [&mut validation.clean, &mut validation.quarantine]
                    .into_iter()
                    .flatten()
                {
                    pin(v);
                }
                json(store.record_validation(&validation, now).await)
            }
            CatalogCall::MarkVersionDeleted { id } => {
                json(store.mark_version_deleted(id, "retention", now).await)
            }
            CatalogCall::RunFinished { dag_id, run_id } => json(
                store
                    .get_run(&dag_id, &run_id)
                    .await
                    .map(|r| r.state.is_finished()),
            ),
            CatalogCall::Tries => json(store.list_tries(&lease.ti_id).await),
        };
        answer.map_err(|e| Fenced::Failed(e.into()))
    }
}

fn json<T: serde::Serialize>(r: store::Result<T>) -> store::Result<serde_json::Value> {
    r.and_then(|v| serde_json::to_value(v).map_err(|e| store::Error::Corrupt(e.to_string())))
}

fn moved_on(lease: &Lease, why: String) -> Fenced {
    Fenced::MovedOn {
        dag_id: lease.dag_id.clone(),
        run_id: lease.run_id.clone(),
        task_id: lease.task_id.clone(),
        try_number: lease.try_number,
        lease_id: lease.lease_id.clone(),
        why,
    }
}
