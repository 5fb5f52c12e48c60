//! Backups of a site and their restore: a consistent copy of the state
//! database (SQLite through its online backup; PostgreSQL is dumped with
//! `pg_dump`) and of every dataset version that copy records, with a
//! manifest saying where the data folder was. A restore puts both back and
//! moves the recorded places of the versions into the data folder it
//! restores to. A dataset's Delta log is copied up to the newest commit the
//! database copy records (and the file-less commits after it: retention's
//! removals and vacuums), so the copied table names only copied files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{self, Backend, CatalogStore, SqliteStore};

/// What goes wrong taking or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, BackupError>;

/// The manifest of a backup (`backup.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The weir that took it.
    pub weir_version: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` (the copy is `weir.db`) or `postgres` (dump it yourself).
    pub database: String,
    /// The data folder the versions' recorded places are under.
    pub data_dir: String,
    /// Dataset versions copied.
    pub versions: usize,
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Versions the database records that could not be copied, and why.
    pub missing: Vec<String>,
}

/// The file a backup keeps its manifest in.
pub const MANIFEST: &str = "backup.json";
/// The file a backup keeps a SQLite database in.
pub const DATABASE: &str = "weir.db";
/// The folder a backup keeps the data in.
pub const DATA: &str = "data";
/// The catalog's marker in a data folder (see the remote workers' check).
const MARKER: &str = ".weir-catalog";

/// Whether `data_dir` names object storage (`s3://…`) rather than a folder:
/// its data is not copied into a backup (the bucket's own versioning or
/// replication keeps it), nor back into it by a restore.
pub fn in_object_storage(data_dir: &Path) -> bool {
    data_dir.to_string_lossy().contains("://")
}

/// Takes a backup of the site whose database is at `db_url` and whose data
/// folder is `data_dir` into the new folder `dir`, while weir runs; data in
/// object storage is left where it is.
pub async fn backup(db_url: &str, data_dir: &Path, dir: &Path) -> Result<Manifest> {
    if !is_empty_or_absent(dir).await {
        return Err(BackupError::Refused(format!(
            "{} is not an empty folder",
            dir.display()
        )));
    }
    let data = dir.join(DATA);
    create_dir(&data).await?;
    let backend = Backend::of(db_url)?;
    // The versions a consistent copy of the database records: copied after
    // it, they are all there (published versions never change; only an erasure rewrites one).
    let versions = match backend {
        Backend::Sqlite => {
            let copy = dir.join(DATABASE);
            SqliteStore::connect(db_url)
                .await?
                .backup(&copy.display().to_string())
                .await?;
            let snapshot = SqliteStore::connect(&format!("sqlite://{}", copy.display())).await?;
            snapshot.dataset_versions(None).await?
        }
        Backend::Postgres => {
            let live = store::open(db_url).await?;
            live.dataset_versions(None).await?
        }
    };
    let mut manifest = Manifest {
        weir_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now(),
        database: backend.name().to_owned(),
        data_dir: data_dir.display().to_string(),
        versions: 0,
        files: 0,
        bytes: 0,
        missing: Vec::new(),
    };
    if in_object_storage(data_dir) {
        write_manifest(dir, &manifest).await?;
        return Ok(manifest);
    }
    for v in versions.iter().filter(|v| v.deleted_at.is_none()) {
        let name = format!("{} version {}", v.dataset, v.version);
        let Some(path) = v.path.as_deref().map(PathBuf::from) else {
            continue;
        };
        let Ok(relative) = path.strip_prefix(data_dir) else {
            manifest.missing.push(format!(
                "{name}: {} is outside {}",
                path.display(),
                data_dir.display()
            ));
            continue;
        };
        if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
            manifest
                .missing
                .push(format!("{name}: {} is gone", path.display()));
            continue;
        }
        let (files, bytes) = copy_tree(&path, &data.join(relative)).await?;
        manifest.versions += 1;
        manifest.files += files;
        manifest.bytes += bytes;
    }
    let mut newest: std::collections::BTreeMap<PathBuf, i64> = std::collections::BTreeMap::new();
    for v in versions.iter().filter(|v| v.deleted_at.is_none()) {
        let folder = v.path.as_deref().map(Path::new).and_then(Path::parent);
        if let (Some(folder), Some(d)) = (folder, v.delta_version) {
            let e = newest.entry(folder.to_path_buf()).or_insert(d);
            *e = (*e).max(d);
        }
    }
    for (folder, upto) in newest {
        if let Ok(relative) = folder.strip_prefix(data_dir) {
            manifest.files += copy_delta_log(&folder, &data.join(relative), upto).await?;
        }
    }
    let marker = data_dir.join(MARKER);
    if tokio::fs::metadata(&marker)
        .await
        .is_ok_and(|m| m.is_file())
    {
        copy_file(&marker, &data.join(MARKER)).await?;
    }
    write_manifest(dir, &manifest).await?;
    Ok(manifest)
}

/// Restores the backup in `dir` to the database at `db_url` and the data
/// folder `data_dir`; both must be empty unless `force`. A PostgreSQL
/// database is restored from its dump with `pg_restore` first: this copies
/// the data back and moves the versions' places in it.
pub async fn restore(dir: &Path, db_url: &str, data_dir: &Path, force: bool) -> Result<Manifest> {
    let text = read_to_string(&dir.join(MANIFEST)).await?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        BackupError::Refused(format!(
            "{}: not a weir backup manifest: {e}",
            dir.join(MANIFEST).display()
        ))
    })?;
    let backend = Backend::of(db_url)?;
    let database = backend.name();
    if manifest.database != database {
        return Err(BackupError::Refused(format!(
            "the backup holds a {} database and the site uses {database}",
            manifest.database
        )));
    }
    if in_object_storage(data_dir) || in_object_storage(Path::new(&manifest.data_dir)) {
        if manifest.data_dir != data_dir.display().to_string() {
            return Err(BackupError::Refused(format!(
                "the backup's data is in {} and the site's in {}: a backup of data in object storage restores only to the same data_dir",
                manifest.data_dir,
                data_dir.display()
            )));
        }
    } else if !force && !is_empty_or_absent(data_dir).await {
        return Err(BackupError::Refused(format!(
            "the data folder {} is not empty (--force replaces what is there)",
            data_dir.display()
        )));
    }
    if backend == Backend::Sqlite {
        let file = sqlite_file(db_url);
        if !force && tokio::fs::try_exists(&file).await.unwrap_or(true) {
            return Err(BackupError::Refused(format!(
                "the database {} exists (--force replaces it)",
                file.display()
            )));
        }
        for stale in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{stale}", file.display()));
            let _ = tokio::fs::remove_file(&side).await;
        }
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent).await?;
        }
        copy_file(&dir.join(DATABASE), &file).await?;
    }
    if in_object_storage(data_dir) {
        return Ok(manifest);
    }
    create_dir(data_dir).await?;
    copy_tree(&dir.join(DATA), data_dir).await?;
    // The versions are recorded where the backed-up site kept them.
    let store = store::open(db_url).await?;
    store
        .move_version_paths(&manifest.data_dir, &data_dir.display().to_string())
        .await?;
    Ok(manifest)
}

/// Copies the Delta log of the table in `folder` to the table `to`: its
/// commits up to `upto`, then the following ones as long as they add no
/// file (their files may not be in the backup), and the checkpoints among
/// them. Answers the files copied.
async fn copy_delta_log(folder: &Path, to: &Path, upto: i64) -> Result<usize> {
    let (from, to) = (folder.join("_delta_log"), to.join("_delta_log"));
    let mut commits: Vec<(i64, PathBuf)> = Vec::new();
    let mut checkpoints: Vec<(i64, PathBuf)> = Vec::new();
    let mut entries = tokio::fs::read_dir(&from)
        .await
        .map_err(|source| BackupError::Io {
            path: from.clone(),
            source,
        })?;
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(n) = name.get(..20).and_then(|d| d.parse::<i64>().ok()) else {
            continue;
        };
        match &name[20..] {
            ".json" => commits.push((n, e.path())),
            rest if rest.starts_with(".checkpoint") => checkpoints.push((n, e.path())),
            _ => {}
        }
    }
    commits.sort();
    let mut last = upto;
    for (n, path) in commits.iter().filter(|(n, _)| *n > upto) {
        let text = read_to_string(path).await?;
        if *n != last + 1 || text.lines().any(|l| l.starts_with("{\"add\"")) {
            break;
        }
        last = *n;
    }
    create_dir(&to).await?;
    let mut copied = 0;
    for (n, path) in commits.iter().chain(&checkpoints) {
        if *n <= last
            && let Some(name) = path.file_name()
        {
            copy_file(path, &to.join(name)).await?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Whether `dir` does not exist or holds nothing.
async fn is_empty_or_absent(dir: &Path) -> bool {
    match tokio::fs::read_dir(dir).await {
        Ok(mut entries) => matches!(entries.next_entry().await, Ok(None)),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The file a `sqlite:` URL names.
fn sqlite_file(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

async fn create_dir(path: &Path) -> Result<()> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })
}

async fn read_to_string(path: &Path) -> Result<String> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })
}

async fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    tokio::fs::copy(from, to)
        .await
        .map_err(|source| BackupError::Io {
            path: from.to_owned(),
            source,
        })
}

async fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| BackupError::Refused(format!("the manifest: {e}")))?;
    tokio::fs::write(&path, text)
        .await
        .map_err(|source| BackupError::Io { path, source })
}

/// Copies the folder `from` into `to` (made as needed), on the blocking
/// pool; answers the files and bytes copied.
async fn copy_tree(from: &Path, to: &Path) -> Result<(usize, u64)> {
    fn walk(from: &Path, to: &Path, done: &mut (usize, u64)) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BackupError::Io { path, source }
        };
        std::fs::create_dir_all(to).map_err(io(to))?;
        for entry in std::fs::read_dir(from).map_err(io(from))? {
            let entry = entry.map_err(io(from))?;
            let (source, target) = (entry.path(), to.join(entry.file_name()));
            if entry.file_type().map_err(io(&source))?.is_dir() {
                walk(&source, &target, done)?;
            } else {
                done.1 += std::fs::copy(&source, &target).map_err(io(&source))?;
                done.0 += 1;
            }
        }
        Ok(())
    }
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut done = (0, 0);
        walk(&from, &to, &mut done).map(|()| done)
    })
    .await
    .map_err(|e| BackupError::Refused(format!("copying: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_delta_log_is_copied_up_to_what_the_database_records() {
        let tmp = tempfile::tempdir().unwrap();
        let (table, to) = (tmp.path().join("t"), tmp.path().join("copy"));
        let log = table.join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        let commit = |n: u32, line: &str| {
            std::fs::write(
                log.join(format!("{n:020}.json")),
                format!("{{\"commitInfo\":{{}}}}\n{line}\n"),
            )
            .unwrap();
        };
        commit(0, r#"{"add":{"path":"v=1/a.parquet"}}"#);
        commit(1, r#"{"add":{"path":"v=2/a.parquet"}}"#);
        // Retention's removal and a vacuum: no file added.
        commit(2, r#"{"remove":{"path":"v=1/a.parquet"}}"#);
        commit(3, r#"{"commitInfo":{"operation":"VACUUM END"}}"#);
        // A version the database copy does not record.
        commit(4, r#"{"add":{"path":"v=3/a.parquet"}}"#);
        commit(5, r#"{"remove":{"path":"v=2/a.parquet"}}"#);
        std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 1)), "c").unwrap();
        std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 4)), "c").unwrap();
        std::fs::write(log.join("_last_checkpoint"), "{}").unwrap();

        let copied = copy_delta_log(&table, &to, 1).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(to.join("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "00000000000000000000.json",
                "00000000000000000001.checkpoint.parquet",
                "00000000000000000001.json",
                "00000000000000000002.json",
                "00000000000000000003.json",
            ]
        );
        assert_eq!(copied, 5);
    }
}
