//! Retention: after a new version of a dataset, versions beyond its rule's
//! `keep` or older than its `max_age` are deleted. The newest version and
//! versions written by runs still going are never deleted. A deletion is
//! recorded in the catalog (and the audit log) before the files go, so a
//! crash leaves unreferenced files, never a version without its files.

use weir_core::dag::DatasetName;

use super::DataError;
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
    let mut deleted = Vec::new();
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
        if let Some(path) = &v.path {
            match tokio::fs::remove_dir_all(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("retention: removing {path}: {e}"),
            }
        }
        deleted.push(v.version);
    }
    Ok(deleted)
}
