//! Dataset-triggered DAGs: `schedule: {datasets: [...]}` runs the DAG when
//! every listed dataset has changed since its last dataset-triggered run
//! saw it: a newer version, or a newer update recorded from outside weir
//! (an asset event).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Result, Scheduler, interval_run};
use crate::dag::Schedule;
use crate::state::RunType;
use crate::store::{self, NewRun};

/// How a run's seen-versions map names the newest asset event of a dataset
/// it saw (beside the dataset's own name for its newest version).
const EVENT_PREFIX: &str = "event:";

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
                let event_key = format!("{EVENT_PREFIX}{name}");
                let version = self.store().latest_dataset_version(&name).await?;
                let event = self.store().latest_asset_event(&name).await?;
                let new_version = version
                    .as_ref()
                    .filter(|v| seen.get(&name).is_none_or(|&id| v.id > id));
                let new_event = event
                    .as_ref()
                    .filter(|e| seen.get(&event_key).is_none_or(|&id| e.id > id));
                let changed = [
                    new_version.map(|v| v.created_at),
                    new_event.map(|e| e.created_at),
                ];
                let Some(at) = changed.into_iter().flatten().max() else {
                    all_new = false;
                    continue;
                };
                newest = Some(newest.map_or(at, |n: DateTime<Utc>| n.max(at)));
                // What this run saw of each: the next run needs newer.
                if let Some(v) = &version {
                    latest.insert(name, v.id);
                }
                if let Some(e) = &event {
                    latest.insert(event_key, e.id);
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

    /// Records an update of asset `asset_id` made outside weir (audited),
    /// then creates the dataset-triggered runs it completes. `extra` must be
    /// a JSON object.
    pub async fn record_asset_event(
        &self,
        actor: &str,
        asset_id: i64,
        extra: Option<&serde_json::Value>,
    ) -> Result<store::AssetEventRecord> {
        if extra.is_some_and(|e| !e.is_object()) {
            return Err(super::Error::Invalid("extra must be a JSON object".into()));
        }
        let asset = self
            .store()
            .get_asset(asset_id)
            .await?
            .ok_or_else(|| store::Error::NotFound(format!("asset {asset_id}")))?;
        let now = self.now();
        let audit = store::AuditEntry::about(
            actor,
            store::AuditAction::AssetEvent,
            serde_json::json!({ "asset_id": asset_id, "dataset": asset.name }),
            now,
        );
        let extra = extra.map(serde_json::Value::to_string);
        let event = self
            .store()
            .record_asset_event(asset_id, extra.as_deref(), &audit)
            .await?;
        self.create_dataset_triggered_runs(now).await?;
        Ok(event)
    }
}
