//! Dataset-triggered DAGs: `schedule: {datasets: [...]}` runs the DAG when
//! every listed dataset has a version newer than the ones its last
//! dataset-triggered run saw.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Result, Scheduler, interval_run};
use crate::dag::Schedule;
use crate::state::RunType;
use crate::store::{self, NewRun};

impl Scheduler {
    /// Creates the dataset-triggered runs that are due. The run id comes from
    /// the newest triggering version, so two schedulers create it once.
    /// Returns how many runs were created.
    pub async fn create_dataset_triggered_runs(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut created = 0;
        for rec in self.store().list_dags().await? {
            if rec.is_paused || rec.is_stale {
                continue;
            }
            let Ok(dag) = self.dag_version(rec.latest_version_id).await else {
                continue;
            };
            let Schedule::Datasets(inputs) = &dag.schedule else {
                continue;
            };
            let seen: BTreeMap<String, i64> = self
                .store()
                .last_run_of_type(&rec.dag_id, RunType::DatasetTriggered)
                .await?
                .and_then(|r| r.trigger_versions)
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or_default();
            let mut latest = BTreeMap::new();
            let mut newest: Option<DateTime<Utc>> = None;
            let mut all_new = true;
            for ds in inputs {
                let name = ds.to_string();
                match self.store().latest_dataset_version(&name).await? {
                    Some(v) if seen.get(&name).is_none_or(|&id| v.id > id) => {
                        newest = Some(
                            newest.map_or(v.created_at, |n: DateTime<Utc>| n.max(v.created_at)),
                        );
                        latest.insert(name, v.id);
                    }
                    _ => all_new = false,
                }
            }
            let Some(at) = newest.filter(|_| all_new) else {
                continue;
            };
            let run = NewRun {
                run_after: now,
                trigger_versions: Some(serde_json::to_string(&latest).unwrap_or_default()),
                ..interval_run(
                    &dag,
                    rec.latest_version_id,
                    RunType::DatasetTriggered,
                    (at, at),
                    now,
                    "datasets",
                )
            };
            match self.store().create_run(&run).await {
                Ok(_) => created += 1,
                Err(store::Error::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(created)
    }
}
