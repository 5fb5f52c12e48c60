//! Gives datasets written before their folders were Delta tables their
//! Delta log: every kept version, oldest first, becomes one commit over its
//! existing files (nothing is copied), and the catalog records its Delta
//! version. A dataset whose folder has a Delta log already is left alone,
//! so running it again changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weir_core::store::{DatasetVersionRecord, Store};

use super::home::Place;
use super::{DataError, delta, storage};

/// One dataset given a Delta log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// `zone.name`.
    pub dataset: String,
    /// The table's folder.
    pub folder: PathBuf,
    /// weir's versions and the Delta versions they became.
    pub versions: Vec<(i64, i64)>,
}

/// Migrates `dataset` (every dataset when `None`).
pub async fn migrate(store: &dyn Store, dataset: Option<&str>) -> Result<Vec<Migrated>, DataError> {
    let mut by_dataset: BTreeMap<String, Vec<DatasetVersionRecord>> = BTreeMap::new();
    for v in store.dataset_versions(dataset).await? {
        if v.deleted_at.is_none() && v.path.is_some() {
            by_dataset.entry(v.dataset.clone()).or_default().push(v);
        }
    }
    let mut out = Vec::new();
    for (name, mut kept) in by_dataset {
        if kept.iter().any(|v| v.delta_version.is_some()) {
            continue;
        }
        kept.sort_by_key(|v| v.version);
        let Some(folder) = kept
            .first()
            .and_then(|v| v.path.as_deref())
            .and_then(|p| Path::new(p).parent())
            .map(Path::to_path_buf)
        else {
            continue;
        };
        if delta::has_log(&folder).await {
            continue;
        }
        let mode = delta::Mode::of_dataset(&name)
            .ok_or_else(|| DataError::Invalid(format!("`{name}` is not a dataset name")))?;
        let table = Place::Local(folder.clone());
        let _table = delta::lock(&table).await;
        let session = storage::session()?;
        let mut versions = Vec::new();
        for v in &kept {
            let dir = PathBuf::from(v.path.as_deref().unwrap_or_default());
            let df = storage::read_version(&session, v).await?;
            let schema = df.schema().as_arrow().clone();
            let files = delta::adds_of(&dir).await?;
            let version_dir = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let d =
                delta::commit_version(&table, &version_dir, files, &schema, mode, &name).await?;
            store.set_delta_version(v.id, Some(d)).await?;
            versions.push((v.version, d));
        }
        out.push(Migrated {
            dataset: name,
            folder,
            versions,
        });
    }
    Ok(out)
}
