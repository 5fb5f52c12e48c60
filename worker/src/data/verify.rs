//! `weir datasets verify`: every version the catalog keeps is on disk with
//! the size it was recorded with and its files' recorded checksums, and the data folder holds nothing the
//! catalog does not know (versions no one recorded, versions retention
//! recorded as deleted, temporary folders a crash left); and removing those
//! temporary folders once nothing has written to them for a while.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use weir_core::dag::Zone;
use weir_core::store::{DatasetVersionRecord, Store};

use super::delta;
use super::home::{Home, Place};
use crate::data::DataError;

/// What is wrong with one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A kept version's folder is gone.
    Missing,
    /// A kept version's files do not add up to the bytes recorded.
    Size {
        /// Recorded when it was published.
        recorded: u64,
        /// On disk now.
        found: u64,
    },
    /// Retention recorded the version deleted, yet its files remain.
    NotDeleted,
    /// A version folder the catalog does not record.
    Unrecorded,
    /// A temporary folder: a write that never finished.
    Leftover,
    /// The version's Delta commit disagrees with its files (what, which).
    Delta(String),
    /// A file's content is not what was published (which, and why).
    Checksum(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing => f.write_str("missing: the catalog keeps it, the folder is gone"),
            Problem::Size { recorded, found } => {
                write!(f, "size: {found} bytes on disk, {recorded} recorded")
            }
            Problem::NotDeleted => f.write_str("not deleted: retention recorded it deleted"),
            Problem::Unrecorded => f.write_str("orphan: no version of the catalog"),
            Problem::Leftover => f.write_str("leftover: a write that never finished"),
            Problem::Delta(what) => write!(f, "delta: {what}"),
            Problem::Checksum(what) => write!(f, "checksum: {what}"),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The dataset (`zone.name`) and version, where the catalog names one.
    pub version: Option<(String, i64)>,
    /// The folder.
    pub path: Place,
    /// What is wrong.
    pub problem: Problem,
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Kept versions checked.
    pub checked: usize,
    /// Everything wrong; empty when all is well.
    pub findings: Vec<Finding>,
}

/// Verifies the versions of `dataset` (every dataset when `None`) against
/// the data's home.
pub async fn verify(
    store: &dyn Store,
    home: &Home,
    dataset: Option<&str>,
) -> Result<Report, DataError> {
    let versions = store.dataset_versions(dataset).await?;
    let mut report = Report::default();
    for v in &versions {
        let Some(path) = v.path.as_deref().map(Place::parse) else {
            continue;
        };
        let files = path.files().await?;
        let exists = files.is_some();
        let problem = match (v.deleted_at.is_some(), &files) {
            (true, Some(_)) => Some(Problem::NotDeleted),
            (true, None) => None,
            (false, None) => Some(Problem::Missing),
            (false, Some(files)) => {
                report.checked += 1;
                let found: u64 = files.iter().map(|(_, len)| len).sum();
                v.bytes
                    .and_then(|b| u64::try_from(b).ok())
                    .filter(|recorded| *recorded != found)
                    .map(|recorded| Problem::Size { recorded, found })
            }
        };
        let mut problems: Vec<Problem> = problem.into_iter().collect();
        if v.deleted_at.is_none() && exists {
            let parquet: Vec<(String, u64)> = files
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| name.ends_with(".parquet"))
                .collect();
            problems.extend(checksum_problems(&path, &parquet).await);
            problems.extend(delta_problems(v, &path, parquet).await);
        }
        for problem in problems {
            report.findings.push(Finding {
                version: Some((v.dataset.clone(), v.version)),
                path: path.clone(),
                problem,
            });
        }
    }
    for folder in dataset_tables(home, dataset).await? {
        report
            .findings
            .extend(unknown_in(&folder, &versions).await?);
    }
    Ok(report)
}

/// Where the version in `dir` records its files' checksums: each of its
/// Parquet files `parquet` has the one recorded, and every file recorded is
/// there (a missing one is also found against the Delta commit).
async fn checksum_problems(dir: &Place, parquet: &[(String, u64)]) -> Vec<Problem> {
    let recorded = match dir.recorded_checksums().await {
        Ok(Some(sums)) => sums,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![Problem::Checksum(e.to_string())],
    };
    let mut out = Vec::new();
    for (name, _) in parquet {
        let Some(want) = recorded.get(name) else {
            out.push(Problem::Checksum(format!(
                "{name} was not published with the version"
            )));
            continue;
        };
        match dir.checksum_of(name).await {
            Ok(found) if &found == want => {}
            Ok(found) => out.push(Problem::Checksum(format!(
                "{name} reads as CRC-32 {found}, published as {want}"
            ))),
            Err(e) => out.push(Problem::Checksum(format!("{name}: {e}"))),
        }
    }
    out
}

/// Where the kept version `v` (the Parquet files `parquet` in `dir`) has a
/// Delta commit: every file of its folder is in the table's snapshot at
/// that commit with its size on disk, every file the snapshot names there
/// exists, and a snapshot dataset's commit holds nothing else.
async fn delta_problems(
    v: &DatasetVersionRecord,
    dir: &Place,
    parquet: Vec<(String, u64)>,
) -> Vec<Problem> {
    let (Some(d), Some(folder)) = (v.delta_version, dir.parent()) else {
        return Vec::new();
    };
    let files = match delta::files_at(&folder, d).await {
        Ok(files) => files,
        Err(e) => return vec![Problem::Delta(format!("version {d} does not read: {e}"))],
    };
    let prefix = format!("{}/", dir.name());
    let mut out = Vec::new();
    let on_disk: Vec<(String, u64)> = parquet
        .into_iter()
        .map(|(name, len)| (format!("{prefix}{name}"), len))
        .collect();
    for (path, len) in &on_disk {
        match files.iter().find(|f| &f.path == path) {
            None => out.push(Problem::Delta(format!("{path} is not in version {d}"))),
            Some(f) if u64::try_from(f.size).ok() != Some(*len) => out.push(Problem::Delta(
                format!("{path}: {len} bytes on disk, {} in version {d}", f.size),
            )),
            Some(_) => {}
        }
    }
    let snapshot_dataset = delta::Mode::of_dataset(&v.dataset) == Some(delta::Mode::Overwrite);
    for f in &files {
        let ours = f.path.starts_with(&prefix);
        if ours && !on_disk.iter().any(|(p, _)| p == &f.path) {
            out.push(Problem::Delta(format!(
                "{} of version {d} is missing",
                f.path
            )));
        } else if !ours && snapshot_dataset {
            out.push(Problem::Delta(format!("version {d} also holds {}", f.path)));
        }
    }
    out
}

/// How long a temporary folder must have gone unwritten before it is taken
/// for a crash's leftover: a live writer appends to its files all along,
/// and a try silent that long lost its lease long ago.
pub const LEFTOVER_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary folders a write that never finished left in the
/// data folder (a version being written, `.tmp-*`, or a task's scratch
/// folder, `.<purpose>-*`) when nothing was written to them for `idle`;
/// answers what it removed. Readers find versions through the catalog, so
/// such a folder was never read as data; this only frees the space.
pub async fn clean_leftovers(data_dir: &Path, idle: std::time::Duration) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    let home = Home::Local(data_dir.to_path_buf());
    for folder in dataset_tables(&home, None).await.unwrap_or_default() {
        let Place::Local(folder) = folder else {
            continue;
        };
        candidates.extend(
            hidden_dirs(&folder)
                .await
                .into_iter()
                .filter(|p| name_of(p).starts_with(".tmp-")),
        );
    }
    // Scratch folders sit in the data folder itself, beside the zones.
    candidates.extend(hidden_dirs(data_dir).await);
    tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now();
        candidates
            .into_iter()
            .filter(|p| {
                last_write(p).is_some_and(|t| now.duration_since(t).unwrap_or_default() >= idle)
            })
            .filter(|p| std::fs::remove_dir_all(p).is_ok())
            .collect()
    })
    .await
    .unwrap_or_default()
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The folders in `folder` whose names start with a dot.
async fn hidden_dirs(folder: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(folder).await else {
        return out;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        if e.file_name().to_string_lossy().starts_with('.')
            && e.file_type().await.is_ok_and(|t| t.is_dir())
        {
            out.push(e.path());
        }
    }
    out
}

/// When anything in `dir` (or `dir` itself) was last written.
fn last_write(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            }
            if let Ok(t) = m.modified() {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// The tables of the datasets to look in: one, or every one of every zone.
async fn dataset_tables(home: &Home, dataset: Option<&str>) -> Result<Vec<Place>, DataError> {
    if let Some((zone, name)) = dataset.and_then(|d| d.split_once('.')) {
        return Ok(vec![home.table(zone, name)]);
    }
    let mut out = Vec::new();
    for zone in [Zone::Raw, Zone::Clean, Zone::Curated, Zone::Quarantine] {
        let zone = home.root().join(zone.as_str());
        for name in zone.folders().await? {
            out.push(zone.join(&name));
        }
    }
    Ok(out)
}

/// What a dataset's table holds that no recorded version accounts for.
async fn unknown_in(
    folder: &Place,
    versions: &[DatasetVersionRecord],
) -> Result<Vec<Finding>, DataError> {
    let recorded: HashSet<Place> = versions
        .iter()
        .filter_map(|v| v.path.as_deref().map(Place::parse))
        .collect();
    let mut out = Vec::new();
    for name in folder.folders().await? {
        let path = folder.join(&name);
        let problem = if name.starts_with(".tmp-") {
            Problem::Leftover
        } else if name.starts_with("v=") && !recorded.contains(&path) {
            Problem::Unrecorded
        } else {
            continue;
        };
        out.push(Finding {
            version: None,
            path,
            problem,
        });
    }
    out.sort_by_key(|f| f.path.to_string());
    Ok(out)
}
