//! A dataset's folder as a Delta Lake table. Each version weir publishes
//! keeps its own folder of Parquet files (`v=<n>/…`) and becomes one Delta
//! commit naming those files relative to the table: an overwrite for a
//! snapshot dataset (the commit removes the previous version's files from
//! the table's snapshot), an append for quarantine, whose versions
//! accumulate. Other engines (Spark, DuckDB, Polars, pandas) read the
//! latest version or travel to an older one; the catalog records each
//! weir version's Delta version. Retention is Delta's vacuum, told which
//! versions to keep.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::datatypes::Schema;
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, MetadataExt, Remove, StructType, TableFeatures};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use weir_core::dag::{DatasetName, Zone};

use super::DataError;
use super::home::Place;

/// How a new version enters its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The version replaces the table's contents (every zone but quarantine).
    Overwrite,
    /// The version's rows are added to the table's (quarantine).
    Append,
}

impl Mode {
    /// The mode of a zone's datasets.
    pub fn of(zone: Zone) -> Mode {
        match zone {
            Zone::Quarantine => Mode::Append,
            _ => Mode::Overwrite,
        }
    }

    /// The mode of the dataset named `zone.name`; `None` for another name.
    pub fn of_dataset(name: &str) -> Option<Mode> {
        name.parse::<DatasetName>().ok().map(|d| Mode::of(d.zone()))
    }

    fn save_mode(self) -> SaveMode {
        match self {
            Mode::Overwrite => SaveMode::Overwrite,
            Mode::Append => SaveMode::Append,
        }
    }
}

/// Held while a version is committed and recorded.
pub type TableGuard = tokio::sync::OwnedMutexGuard<()>;

/// Waits for the table at `table`: commits to one table go one at a time
/// within a process, from the commit until the catalog records it, so the
/// order of Delta commits is the order of weir's versions.
pub async fn lock(table: &Place) -> TableGuard {
    static LOCKS: LazyLock<Mutex<HashMap<Place, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(table.clone()).or_default().clone()
    };
    lock.lock_owned().await
}

/// A file of a table's snapshot: its path relative to the table and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Relative to the table's folder (`v=3/part-0.parquet`).
    pub path: String,
    /// Bytes, as committed.
    pub size: i64,
}

fn delta_err(folder: &Place) -> impl FnOnce(DeltaTableError) -> DataError + '_ {
    move |e| DataError::Invalid(format!("Delta table {folder}: {e}"))
}

/// The table at `folder`, loaded at `version` (the latest when `None`);
/// `None` when it has no Delta log yet.
pub async fn open(folder: &Place, version: Option<i64>) -> Result<Option<DeltaTable>, DataError> {
    if let Place::Local(dir) = folder
        && !has_log(dir).await
    {
        return Ok(None);
    }
    let url = folder.folder_url()?;
    let mut builder =
        deltalake_core::DeltaTableBuilder::from_url(url).map_err(delta_err(folder))?;
    if let Some(v) = version {
        builder = builder.with_version(to_delta(v)?);
    }
    match builder.load().await {
        Ok(table) => Ok(Some(table)),
        // A log folder without a commit: the first commit never happened.
        Err(DeltaTableError::NotATable(_)) if version.is_none() => Ok(None),
        Err(e) => Err(delta_err(folder)(e)),
    }
}

/// Whether `folder` holds a Delta log.
pub async fn has_log(folder: &Path) -> bool {
    tokio::fs::try_exists(folder.join("_delta_log"))
        .await
        .unwrap_or(false)
}

fn to_delta(v: i64) -> Result<u64, DataError> {
    u64::try_from(v).map_err(|_| DataError::Invalid(format!("{v} is not a Delta version")))
}

fn from_delta(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The files of the table at `folder` at Delta version `version`.
pub async fn files_at(folder: &Place, version: i64) -> Result<Vec<TableFile>, DataError> {
    let Some(table) = open(folder, Some(version)).await? else {
        return Err(DataError::Invalid(format!("{folder}: no Delta log")));
    };
    files_of(&table, folder)
}

fn files_of(table: &DeltaTable, folder: &Place) -> Result<Vec<TableFile>, DataError> {
    let snapshot = table.snapshot().map_err(delta_err(folder))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| TableFile {
            path: f.path().into_owned(),
            size: f.size(),
        })
        .collect())
}

/// Commits `files` (what [`adds_of`] found, now in the table's folder
/// `version_dir`, `v=3`) as the table's next version, creating the table
/// with the first one; answers the Delta version. A schema unlike the
/// table's replaces it (readers see columns a version lacks as null).
pub async fn commit_version(
    folder: &Place,
    version_dir: &str,
    files: Vec<Add>,
    schema: &Schema,
    mode: Mode,
    name: &str,
) -> Result<i64, DataError> {
    let adds = inside(version_dir, files);
    let kernel = StructType::try_from_arrow(schema).map_err(|e| {
        DataError::Invalid(format!(
            "dataset `{name}`: its columns have no Delta Lake type ({e}); cast them in the task's SQL"
        ))
    })?;
    let Some(table) = open(folder, None).await? else {
        let table = DeltaTable::try_from_url(folder.folder_url()?)
            .await
            .map_err(delta_err(folder))?;
        let created = table
            .create()
            .with_table_name(name)
            // The catalog may point at any kept version: the log's history
            // stays until weir's retention and vacuum decide.
            .with_configuration_property(TableProperty::EnableExpiredLogCleanup, Some("false"))
            .with_columns(kernel.fields().cloned())
            .with_actions(adds.into_iter().map(Action::Add))
            .await
            .map_err(delta_err(folder))?;
        return Ok(created.version().map(from_delta).unwrap_or(0));
    };
    let current = table.snapshot().map_err(delta_err(folder))?.schema();
    let table = if has_ntz(&kernel) && !has_ntz(&current) {
        // Naive timestamps need a table feature older tables may lack.
        table
            .add_feature()
            .with_feature(TableFeatures::TimestampWithoutTimezone)
            .with_allow_protocol_versions_increase(true)
            .await
            .map_err(delta_err(folder))?
    } else {
        table
    };
    let snapshot = table.snapshot().map_err(delta_err(folder))?;
    let mut actions = Vec::new();
    if snapshot.schema().as_ref() != &kernel {
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&kernel)
            .map_err(|e| DataError::Invalid(format!("Delta table {folder}: {e}")))?;
        actions.push(Action::Metadata(metadata));
    }
    if mode == Mode::Overwrite {
        actions.extend(
            files_of(&table, folder)?
                .into_iter()
                .map(|f| Action::Remove(remove(f))),
        );
    }
    actions.extend(adds.into_iter().map(Action::Add));
    let operation = DeltaOperation::Write {
        mode: mode.save_mode(),
        partition_by: None,
        predicate: None,
    };
    commit(&table, folder, actions, operation).await
}

/// Replaces, in the table's current snapshot, the files under the version
/// folders `dirs` (`v=3`) by `with` (a rewrite: its folder and files), or
/// removes them when `with` is `None`; `predicate` says why (an erasure's
/// condition). Answers the Delta version, or `None` when the snapshot held
/// none of those files and nothing was committed.
pub async fn replace(
    folder: &Place,
    dirs: &[String],
    with: Option<(&str, Vec<Add>)>,
    predicate: Option<String>,
) -> Result<Option<i64>, DataError> {
    let Some(table) = open(folder, None).await? else {
        return Ok(None);
    };
    let prefixes: Vec<String> = dirs.iter().map(|n| format!("{n}/")).collect();
    let gone: Vec<Action> = files_of(&table, folder)?
        .into_iter()
        .filter(|f| prefixes.iter().any(|p| f.path.starts_with(p.as_str())))
        .map(|f| Action::Remove(remove(f)))
        .collect();
    if gone.is_empty() {
        return Ok(None);
    }
    let mut actions = gone;
    if let Some((dir, files)) = with {
        actions.extend(inside(dir, files).into_iter().map(Action::Add));
    }
    let operation = DeltaOperation::Delete { predicate };
    commit(&table, folder, actions, operation).await.map(Some)
}

async fn commit(
    table: &DeltaTable,
    folder: &Place,
    actions: Vec<Action>,
    operation: DeltaOperation,
) -> Result<i64, DataError> {
    let snapshot = table.snapshot().map_err(delta_err(folder))?;
    // A checkpoint every hundred commits keeps loading the table quick; the
    // log's history stays, since the catalog may point at any kept version.
    let properties = CommitProperties::default()
        .with_create_checkpoint(true)
        .with_cleanup_expired_logs(Some(false));
    let done = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(delta_err(folder))?;
    Ok(from_delta(done.version()))
}

/// Deletes the files no version in `keep` (Delta versions) and not the
/// latest refer to: Delta's vacuum, without its minimum age, since weir
/// decides what to keep. Answers the files deleted.
pub async fn vacuum(folder: &Place, keep: &[i64]) -> Result<usize, DataError> {
    let Some(table) = open(folder, None).await? else {
        return Ok(0);
    };
    let keep: Vec<u64> = keep.iter().filter_map(|v| u64::try_from(*v).ok()).collect();
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .with_keep_versions(&keep)
        .with_mode(VacuumMode::Lite)
        .await
        .map_err(delta_err(folder))?;
    Ok(metrics.files_deleted.len())
}

/// Whether a schema has a timestamp without time zone.
fn has_ntz(schema: &StructType) -> bool {
    serde_json::to_string(schema).is_ok_and(|j| j.contains("\"timestamp_ntz\""))
}

fn remove(f: TableFile) -> Remove {
    Remove {
        path: f.path,
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(HashMap::new()),
        size: Some(f.size),
        ..Default::default()
    }
}

/// `files` as they are in the table: inside its folder `dir` (`v=3`).
fn inside(dir: &str, files: Vec<Add>) -> Vec<Add> {
    files
        .into_iter()
        .map(|a| Add {
            path: format!("{dir}/{}", a.path),
            ..a
        })
        .collect()
}

/// An add action per Parquet file of the local folder `dir` (named by its
/// file name alone), with its size, time and row count (the footer's).
pub async fn adds_of(dir: &Path) -> Result<Vec<Add>, DataError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Vec<Add>, DataError> {
        super::home::local_files(&dir)
            .map_err(DataError::io(format!("reading {}", dir.display())))?
            .into_iter()
            .filter(|(name, _)| name.ends_with(".parquet"))
            .map(|(name, _)| {
                let path = dir.join(&name);
                let file = std::fs::File::open(&path)
                    .map_err(DataError::io(format!("reading {}", path.display())))?;
                let meta = file
                    .metadata()
                    .map_err(DataError::io(format!("reading {}", path.display())))?;
                let rows = datafusion::parquet::file::reader::SerializedFileReader::new(file)
                    .map(|r| {
                        use datafusion::parquet::file::reader::FileReader;
                        r.metadata().file_metadata().num_rows()
                    })
                    .map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                Ok(Add {
                    path: name,
                    size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
                    modification_time: modified,
                    data_change: true,
                    stats: Some(serde_json::json!({ "numRecords": rows }).to_string()),
                    ..Default::default()
                })
            })
            .collect()
    })
    .await
    .map_err(|e| DataError::Invalid(format!("listing a version's files: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Int64Array, IntervalDayTimeArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;

    use std::path::PathBuf;

    use super::*;

    /// Writes `batch` as `folder/v=<n>/part-0.parquet`; answers the folder.
    fn version(folder: &Path, n: i64, batch: &RecordBatch) -> PathBuf {
        let dir = folder.join(format!("v={n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        dir
    }

    /// Writes `batch` as version `n` of the table in `folder` and commits it.
    async fn publish(
        folder: &Path,
        n: i64,
        batch: &RecordBatch,
        mode: Mode,
    ) -> Result<i64, DataError> {
        let dir = version(folder, n, batch);
        let files = adds_of(&dir).await?;
        commit_version(
            &at(folder),
            &format!("v={n}"),
            files,
            &batch.schema(),
            mode,
            "curated.t",
        )
        .await
    }

    fn at(folder: &Path) -> Place {
        Place::Local(folder.to_path_buf())
    }

    fn ids(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let col: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
        RecordBatch::try_new(schema, vec![col]).unwrap()
    }

    fn paths(files: &[TableFile]) -> Vec<&str> {
        let mut out: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn overwrites_replace_the_snapshot_and_appends_add_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (snap, quar) = (tmp.path().join("clean/s"), tmp.path().join("quarantine/s"));
        for n in 1..=3 {
            let b = ids(&[n]);
            let d = publish(&snap, n, &b, Mode::Overwrite).await.unwrap();
            assert_eq!(d, n - 1);
            publish(&quar, n, &b, Mode::Append).await.unwrap();
        }
        assert_eq!(
            paths(&files_at(&at(&snap), 2).await.unwrap()),
            ["v=3/part-0.parquet"]
        );
        assert_eq!(
            paths(&files_at(&at(&snap), 0).await.unwrap()),
            ["v=1/part-0.parquet"]
        );
        assert_eq!(
            paths(&files_at(&at(&quar), 2).await.unwrap()),
            [
                "v=1/part-0.parquet",
                "v=2/part-0.parquet",
                "v=3/part-0.parquet"
            ]
        );
        let sizes_match = files_at(&at(&snap), 2)
            .await
            .unwrap()
            .iter()
            .all(|f| std::fs::metadata(snap.join(&f.path)).unwrap().len() == f.size as u64);
        assert!(sizes_match);

        // Vacuum keeps what the kept versions name, and the latest.
        assert_eq!(vacuum(&at(&snap), &[1]).await.unwrap(), 1);
        assert!(!snap.join("v=1/part-0.parquet").exists());
        assert!(snap.join("v=2/part-0.parquet").exists());
        // An appended version leaves the snapshot in a commit of its own.
        let d = replace(&at(&quar), &["v=1".to_owned()], None, None)
            .await
            .unwrap();
        assert_eq!(d, Some(3));
        assert_eq!(vacuum(&at(&quar), &[]).await.unwrap(), 1);
        assert_eq!(
            paths(&files_at(&at(&quar), 3).await.unwrap()),
            ["v=2/part-0.parquet", "v=3/part-0.parquet"]
        );
        // Nothing of the snapshot under a folder: nothing committed.
        assert_eq!(
            replace(&at(&quar), &["v=1".to_owned()], None, None)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_log_folder_without_a_commit_is_no_table_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("raw/s");
        std::fs::create_dir_all(folder.join("_delta_log")).unwrap();
        assert!(open(&at(&folder), None).await.unwrap().is_none());
        let b = ids(&[1]);
        let d = publish(&folder, 1, &b, Mode::Overwrite).await.unwrap();
        assert_eq!(d, 0);
    }

    #[tokio::test]
    async fn a_long_history_is_checkpointed_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("raw/s");
        for n in 1..=101 {
            let b = ids(&[n]);
            publish(&folder, n, &b, Mode::Overwrite).await.unwrap();
        }
        // Every hundredth commit (version 99, counting from 0).
        assert!(
            folder
                .join("_delta_log/00000000000000000099.checkpoint.parquet")
                .exists()
        );
        assert!(folder.join("_delta_log/00000000000000000000.json").exists());
        assert_eq!(
            paths(&files_at(&at(&folder), 0).await.unwrap()),
            ["v=1/part-0.parquet"]
        );
        assert_eq!(
            paths(&files_at(&at(&folder), 100).await.unwrap()),
            ["v=101/part-0.parquet"]
        );
    }

    #[tokio::test]
    async fn a_schema_change_replaces_the_tables_and_bad_types_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("curated/t");
        let b = ids(&[1]);
        publish(&folder, 1, &b, Mode::Overwrite).await.unwrap();
        // A naive timestamp column needs a table feature the table lacked.
        let schema = Arc::new(Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        let col: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_000_000]));
        let b = RecordBatch::try_new(schema, vec![col]).unwrap();
        let d = publish(&folder, 2, &b, Mode::Overwrite).await.unwrap();
        let table = open(&at(&folder), Some(d)).await.unwrap().unwrap();
        let fields: Vec<String> = table
            .snapshot()
            .unwrap()
            .schema()
            .fields()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(fields, ["at"]);
        assert!(has_ntz(&table.snapshot().unwrap().schema()));

        let schema = Arc::new(Schema::new(vec![Field::new(
            "gap",
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::DayTime),
            true,
        )]));
        let col: ArrayRef = Arc::new(IntervalDayTimeArray::from(vec![
            datafusion::arrow::datatypes::IntervalDayTime::new(1, 0),
        ]));
        let b = RecordBatch::try_new(schema, vec![col]).unwrap();
        let e = publish(&folder, 3, &b, Mode::Overwrite)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("curated.t") && e.contains("cast"), "{e}");
    }
}
