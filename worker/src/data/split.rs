//! One pass over a validate task's checked rows: each batch is split by its
//! rule flags into clean and quarantined rows with Arrow's filter kernel and
//! both halves are written as Parquet while the query still runs, counting
//! every flag on the way. Each partition of the query streams into writers
//! of its own (`part-<i>.parquet` beside `held-<i>.parquet`) on a blocking
//! thread, so encoding runs on every core the query does. Nothing is
//! materialised, so memory stays bounded by a few batches and a row group
//! per partition, whatever the size of the input.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::{not, or};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::ExecutionPlan;
use futures_util::StreamExt;

use super::DataError;

/// Where each half goes and which columns decide and carry it.
#[derive(Debug)]
pub struct Plan {
    /// Columns of the clean rows, by index in the checked batches.
    pub clean: Vec<usize>,
    /// Columns of the quarantined rows.
    pub quarantine: Vec<usize>,
    /// Boolean columns: a row with any of them true is quarantined.
    pub flags: Vec<usize>,
    /// Further boolean columns that are only counted.
    pub tallies: Vec<usize>,
    /// The folder of the clean Parquet files.
    pub clean_dir: PathBuf,
    /// The folder of the quarantined Parquet files.
    pub quarantine_dir: PathBuf,
    /// Parquet writer settings (codec, row groups).
    pub properties: WriterProperties,
}

/// What the pass saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Rows read.
    pub rows: u64,
    /// Rows with at least one flag (= rows quarantined).
    pub failed: u64,
    /// True values per flag column, in plan order.
    pub flags: Vec<u64>,
    /// True values per tally column, in plan order.
    pub tallies: Vec<u64>,
    /// Rows in the clean files, as their footers record them.
    pub clean_written: u64,
    /// Rows in the quarantined files, as their footers record them.
    pub quarantine_written: u64,
}

impl Counts {
    /// Zero counts for `plan`'s flags and tallies.
    fn empty(plan: &Plan) -> Self {
        Counts {
            flags: vec![0; plan.flags.len()],
            tallies: vec![0; plan.tallies.len()],
            ..Counts::default()
        }
    }

    fn add(&mut self, other: &Counts) {
        self.rows += other.rows;
        self.failed += other.failed;
        self.clean_written += other.clean_written;
        self.quarantine_written += other.quarantine_written;
        for (a, b) in self.flags.iter_mut().zip(&other.flags) {
            *a += b;
        }
        for (a, b) in self.tallies.iter_mut().zip(&other.tallies) {
            *a += b;
        }
    }
}

/// Runs every partition of `query` to its end, writing both halves of each;
/// returns the counts over all of them. Partition 0 always writes both
/// files (empty if need be), so each folder holds at least one.
pub async fn split(
    query: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    plan: Plan,
) -> Result<Counts, DataError> {
    let plan = Arc::new(plan);
    let partitions = query.properties().partitioning.partition_count();
    let mut running = tokio::task::JoinSet::new();
    for i in 0..partitions {
        let stream = query.execute(i, task.clone())?;
        running.spawn(split_partition(stream, plan.clone(), i));
    }
    let mut total = Counts::empty(&plan);
    let mut first_error = None;
    while let Some(done) = running.join_next().await {
        match done {
            Ok(Ok(c)) => total.add(&c),
            Ok(Err(e)) => {
                // The others stop as their streams are dropped.
                running.abort_all();
                first_error.get_or_insert(e);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                running.abort_all();
                first_error.get_or_insert(DataError::Invalid(format!("writing checked rows: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One partition's stream into its two files.
async fn split_partition(
    mut stream: SendableRecordBatchStream,
    plan: Arc<Plan>,
    partition: usize,
) -> Result<Counts, DataError> {
    let schema = stream.schema();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
    let writer = tokio::task::spawn_blocking(move || -> Result<Counts, DataError> {
        let mut halves = Halves::new(&schema, &plan, partition)?;
        if partition == 0 {
            halves.open_both()?;
        }
        while let Some(batch) = rx.blocking_recv() {
            halves.add(&batch)?;
        }
        halves.close()
    });
    let mut read_error = None;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| DataError::Invalid(format!("writing checked rows: {e}")))?;
    match read_error {
        Some(e) => Err(e.into()),
        None => written,
    }
}

/// One partition's two files and its counts.
struct Halves<'a> {
    plan: &'a Plan,
    clean: LazyFile,
    quarantine: LazyFile,
    counts: Counts,
}

impl<'a> Halves<'a> {
    fn new(schema: &SchemaRef, plan: &'a Plan, partition: usize) -> Result<Self, DataError> {
        Ok(Halves {
            plan,
            clean: LazyFile::new(
                plan.clean_dir.join(format!("part-{partition}.parquet")),
                schema,
                &plan.clean,
            )?,
            quarantine: LazyFile::new(
                plan.quarantine_dir
                    .join(format!("held-{partition}.parquet")),
                schema,
                &plan.quarantine,
            )?,
            counts: Counts::empty(plan),
        })
    }

    /// Opens both files now, so they exist even without rows.
    fn open_both(&mut self) -> Result<(), DataError> {
        self.clean.writer(self.plan)?;
        self.quarantine.writer(self.plan)?;
        Ok(())
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let plan = self.plan;
        let flag = |i: usize| -> Result<&BooleanArray, DataError> {
            batch.column(i).as_boolean_opt().ok_or_else(|| {
                DataError::Invalid(format!(
                    "check column {} is not boolean",
                    batch.schema().field(i).name()
                ))
            })
        };
        let mut any: Option<BooleanArray> = None;
        for (k, &i) in plan.flags.iter().enumerate() {
            let f = flag(i)?;
            self.counts.flags[k] += f.true_count() as u64;
            any = Some(match any {
                None => f.clone(),
                Some(a) => or(&a, f)?,
            });
        }
        for (k, &i) in plan.tallies.iter().enumerate() {
            self.counts.tallies[k] += flag(i)?.true_count() as u64;
        }
        self.counts.rows += batch.num_rows() as u64;
        let failed = any.as_ref().map_or(0, |a| a.true_count());
        self.counts.failed += failed as u64;
        let clean = batch.project(&plan.clean)?;
        match &any {
            Some(a) if failed > 0 => {
                if failed < batch.num_rows() {
                    self.clean
                        .writer(plan)?
                        .write(&filter_record_batch(&clean, &not(a)?)?)?;
                }
                let q = batch.project(&plan.quarantine)?;
                self.quarantine
                    .writer(plan)?
                    .write(&filter_record_batch(&q, a)?)?;
            }
            _ if batch.num_rows() > 0 => self.clean.writer(plan)?.write(&clean)?,
            _ => {}
        }
        Ok(())
    }

    fn close(mut self) -> Result<Counts, DataError> {
        self.counts.clean_written = self.clean.close()?;
        self.counts.quarantine_written = self.quarantine.close()?;
        Ok(self.counts)
    }
}

/// A Parquet file of some columns, created when first written to.
struct LazyFile {
    file: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<std::fs::File>>,
}

impl LazyFile {
    /// The file `file` for `columns` of `schema`; nothing is created yet.
    fn new(file: PathBuf, schema: &SchemaRef, columns: &[usize]) -> Result<Self, DataError> {
        let schema = schema
            .project(columns)
            .map_err(|e| DataError::Invalid(format!("columns of {}: {e}", file.display())))?;
        Ok(LazyFile {
            file,
            schema: Arc::new(schema),
            writer: None,
        })
    }

    /// The open writer, creating the file if need be.
    fn writer(&mut self, plan: &Plan) -> Result<&mut ArrowWriter<std::fs::File>, DataError> {
        if self.writer.is_none() {
            let file = &self.file;
            let out = std::fs::File::create(file)
                .map_err(DataError::io(format!("creating {}", file.display())))?;
            let w = ArrowWriter::try_new(out, self.schema.clone(), Some(plan.properties.clone()))
                .map_err(|e| DataError::Invalid(format!("writing {}: {e}", file.display())))?;
            self.writer = Some(w);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| DataError::Invalid(format!("{} is not open", self.file.display())))
    }

    /// Closes the file; answers the rows its footer records (0 if never created).
    fn close(self) -> Result<u64, DataError> {
        Ok(match self.writer {
            Some(w) => u64::try_from(w.close()?.file_metadata().num_rows()).unwrap_or(0),
            None => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    use super::*;

    /// Rows `from..to` with a flag on every tenth.
    fn batch(schema: &SchemaRef, from: i64, to: i64) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(from..to)),
                Arc::new(BooleanArray::from_iter(
                    (from..to).map(|i| Some(i % 10 == 0)),
                )),
            ],
        )
        .unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    async fn rows_in(session: &SessionContext, dir: &Path) -> usize {
        session
            .read_parquet(format!("{}/", dir.display()), ParquetReadOptions::default())
            .await
            .unwrap()
            .count()
            .await
            .unwrap()
    }

    async fn run(
        partitions: Vec<Vec<RecordBatch>>,
        schema: SchemaRef,
    ) -> (Counts, PathBuf, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (clean_dir, quarantine_dir) = (dir.path().join("clean"), dir.path().join("held"));
        std::fs::create_dir_all(&clean_dir).unwrap();
        std::fs::create_dir_all(&quarantine_dir).unwrap();
        // As many partitions as the table has, whatever the cores.
        let session =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let table = MemTable::try_new(schema, partitions).unwrap();
        session.register_table("t", Arc::new(table)).unwrap();
        let query = session
            .sql("SELECT id, bad FROM t")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let plan = Plan {
            clean: vec![0],
            quarantine: vec![0, 1],
            flags: vec![1],
            tallies: vec![],
            clean_dir: clean_dir.clone(),
            quarantine_dir: quarantine_dir.clone(),
            properties: WriterProperties::default(),
        };
        let counts = split(query, session.task_ctx(), plan).await.unwrap();
        (counts, clean_dir, quarantine_dir, dir)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("bad", DataType::Boolean, false),
        ]))
    }

    #[tokio::test]
    async fn each_partition_writes_its_own_files_and_the_counts_add_up() {
        let s = schema();
        let (counts, clean, held, _dir) = run(
            vec![
                vec![batch(&s, 0, 1000), batch(&s, 1000, 2000)],
                vec![batch(&s, 2000, 3000)],
            ],
            s,
        )
        .await;
        assert_eq!(files(&clean), ["part-0.parquet", "part-1.parquet"]);
        assert_eq!(files(&held), ["held-0.parquet", "held-1.parquet"]);
        assert_eq!(
            (counts.rows, counts.failed, counts.flags.clone()),
            (3000, 300, vec![300])
        );
        assert_eq!(
            (counts.clean_written, counts.quarantine_written),
            (2700, 300)
        );
        let session = SessionContext::new();
        assert_eq!(rows_in(&session, &clean).await, 2700);
        assert_eq!(rows_in(&session, &held).await, 300);
    }

    #[tokio::test]
    async fn a_partition_without_rows_writes_no_file_but_the_first_always_does() {
        let s = schema();
        // Partition 0 is empty; partition 1 has only clean rows.
        let (counts, clean, held, _dir) = run(vec![vec![], vec![batch(&s, 1, 10)]], s).await;
        assert_eq!(files(&clean), ["part-0.parquet", "part-1.parquet"]);
        assert_eq!(
            files(&held),
            ["held-0.parquet"],
            "no quarantined rows in partition 1"
        );
        assert_eq!((counts.clean_written, counts.quarantine_written), (9, 0));
        let session = SessionContext::new();
        assert_eq!(rows_in(&session, &clean).await, 9);
        assert_eq!(rows_in(&session, &held).await, 0);
    }
}
