//! One pass over a validate task's checked rows: each batch is split by its
//! rule flags into clean and quarantined rows with Arrow's filter kernel and
//! both halves are written as Parquet while the query still runs, counting
//! every flag on the way. Nothing is materialised, so memory stays bounded by
//! a few batches and a row group, whatever the size of the input.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::{not, or};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
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
    /// The clean Parquet file.
    pub clean_file: PathBuf,
    /// The quarantined Parquet file.
    pub quarantine_file: PathBuf,
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
    /// Rows in the clean file, as its footer records them.
    pub clean_written: u64,
    /// Rows in the quarantined file, as its footer records them.
    pub quarantine_written: u64,
}

/// Runs `stream` to its end, writing both halves; returns the counts.
pub async fn split(mut stream: SendableRecordBatchStream, plan: Plan) -> Result<Counts, DataError> {
    let schema = stream.schema();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
    let writer = tokio::task::spawn_blocking(move || -> Result<Counts, DataError> {
        let mut halves = Halves::open(&schema, &plan)?;
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

/// The two open writers and the running counts.
struct Halves<'a> {
    plan: &'a Plan,
    clean: ArrowWriter<std::fs::File>,
    quarantine: ArrowWriter<std::fs::File>,
    counts: Counts,
}

impl<'a> Halves<'a> {
    fn open(schema: &SchemaRef, plan: &'a Plan) -> Result<Self, DataError> {
        let writer =
            |file: &Path, columns: &[usize]| -> Result<ArrowWriter<std::fs::File>, DataError> {
                let projected = schema.project(columns).map_err(|e| {
                    DataError::Invalid(format!("columns of {}: {e}", file.display()))
                })?;
                let out = std::fs::File::create(file)
                    .map_err(DataError::io(format!("creating {}", file.display())))?;
                ArrowWriter::try_new(out, projected.into(), Some(plan.properties.clone()))
                    .map_err(|e| DataError::Invalid(format!("writing {}: {e}", file.display())))
            };
        Ok(Halves {
            plan,
            clean: writer(&plan.clean_file, &plan.clean)?,
            quarantine: writer(&plan.quarantine_file, &plan.quarantine)?,
            counts: Counts {
                flags: vec![0; plan.flags.len()],
                tallies: vec![0; plan.tallies.len()],
                ..Counts::default()
            },
        })
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
                self.clean.write(&filter_record_batch(&clean, &not(a)?)?)?;
                let q = batch.project(&plan.quarantine)?;
                self.quarantine.write(&filter_record_batch(&q, a)?)?;
            }
            _ => self.clean.write(&clean)?,
        }
        Ok(())
    }

    fn close(mut self) -> Result<Counts, DataError> {
        let rows = |m: datafusion::parquet::file::metadata::ParquetMetaData| {
            u64::try_from(m.file_metadata().num_rows()).unwrap_or(0)
        };
        self.counts.clean_written = rows(self.clean.close()?);
        self.counts.quarantine_written = rows(self.quarantine.close()?);
        Ok(self.counts)
    }
}
