//! Retention: after a new version of a dataset, versions beyond its rule's
//! `keep` or older than its `max_age` are deleted. The newest version and
//! versions written by runs still going are never deleted. A deletion is
//! recorded in the catalog (and the audit log) before the files go, so a
//! crash leaves unreferenced files, never a version without its files.
//! The files go by Delta's vacuum, told the Delta versions weir keeps (a
//! quarantine version's files first leave the table's snapshot in a
//! commit of their own); then the emptied version folders are removed.

use weir_core::dag::DatasetName;
use weir_core::store::DatasetVersionRecord;

use super::home::Place;
use super::{DataError, delta};
use crate::resources::Resources;

/// Applies `dataset`'s rule; returns the versions deleted.
pub async fn apply(env: &Resources, dataset: &DatasetName) -> Result<Vec<i64>, DataError> {
    let Some(rule) = env.retention.rule_for(dataset) else {
        return Ok(Vec::new());
    };
    let mut live: Vec<_> = env
        .store
        .dataset_versions(Some(&dataset.to_string()))
        .await?
        .into_iter()
        .filter(|v| v.deleted_at.is_none())
        .collect();
    live.sort_by_key(|v| std::cmp::Reverse(v.version));
    let now = env.clock.now();
    let max_age = rule
        .max_age
        .map(|d| chrono::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let mut deleted: Vec<&DatasetVersionRecord> = Vec::new();
    for (i, v) in live.iter().enumerate().skip(1) {
        let beyond_keep = rule.keep.is_some_and(|k| i >= k.max(1) as usize);
        let too_old = max_age.is_some_and(|age| now - v.created_at > age);
        if !(beyond_keep || too_old) {
            continue;
        }
        if let (Some(dag), Some(run)) = (&v.dag_id, &v.run_id)
            && let Ok(false) = env.store.run_finished(dag, run).await
        {
            continue;
        }
        env.store
            .mark_version_deleted(v.id, "retention", now)
            .await?;
        deleted.push(v);
    }
    let dirs: Vec<Place> = deleted
        .iter()
        .filter_map(|v| v.path.as_deref().map(Place::parse))
        .collect();
    if let Some(folder) = dirs.first().and_then(Place::parent) {
        let keep: Vec<i64> = live
            .iter()
            .filter(|v| !deleted.iter().any(|d| d.id == v.id))
            .filter_map(|v| v.delta_version)
            .collect();
        let mode = delta::Mode::of(dataset.zone());
        if let Err(e) = sweep(&folder, mode, &dirs, &keep).await {
            tracing::warn!(dataset = %dataset, "retention: vacuuming {folder}: {e}");
        }
    }
    for dir in &dirs {
        if let Err(e) = dir.remove().await {
            tracing::warn!("retention: {e}");
        }
    }
    Ok(deleted.iter().map(|v| v.version).collect())
}

/// Vacuums the table in `folder`, keeping the files of the Delta versions
/// in `keep`. Appended versions (`dirs`) are still in the table's snapshot:
/// a commit takes them out first, and since every older snapshot of an
/// appended table holds them too, none of those is kept.
async fn sweep(
    folder: &Place,
    mode: delta::Mode,
    dirs: &[Place],
    keep: &[i64],
) -> Result<(), DataError> {
    let keep = match mode {
        delta::Mode::Overwrite => keep,
        delta::Mode::Append => {
            let names: Vec<String> = dirs.iter().map(Place::name).collect();
            delta::replace(folder, &names, None, None).await?;
            &[]
        }
    };
    delta::vacuum(folder, keep).await?;
    Ok(())
}
