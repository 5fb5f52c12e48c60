//! `extract`: files (CSV, JSON array, NDJSON, Parquet; a glob picks several)
//! into a raw dataset, with the lineage columns `_weir_source` (the file) and
//! `_weir_row` (the row's number in it, from 1). When a validate task of the
//! DAG checks the output against a contract, CSV columns are read as text so
//! a bad value quarantines its row instead of failing the read, and if a
//! file has broken lines (wrong number of fields, bytes that are not UTF-8)
//! it is read again through `csv_repair`: each broken line becomes a row
//! that validate quarantines as `corrupt`. A file cut short fails the extract
//! naming the file.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use weir_core::dag::{DatasetName, FileFormat, Source, TaskKind};
use weir_core::store::DatasetVersionRecord;

use super::storage::Io;
use super::{DataError, csv_repair, sql};
use crate::context::TryContext;
use crate::logs::LogWriter;

/// Runs an extract task.
pub async fn run(
    ctx: &TryContext,
    source: &Source,
    output: &DatasetName,
    io: &Io<'_>,
    log: &mut LogWriter,
    render: &(dyn Fn(&str, &str) -> Result<String, String> + Sync),
) -> Result<serde_json::Value, DataError> {
    let (format, pattern, csv) = match source {
        Source::Files { format, path, csv } => (
            *format,
            render("source.path", path).map_err(DataError::Invalid)?,
            csv,
        ),
        Source::Query { sql, connection } => {
            let sql = render("source.sql", sql).map_err(DataError::Invalid)?;
            return from_query(&sql, connection, output, io, log).await;
        }
    };
    let base = crate::shell::dag_folder(Path::new(&ctx.dag.fileloc));
    // Globbing walks folders: off the async runtime.
    let files = {
        let pattern = pattern.clone();
        tokio::task::spawn_blocking(move || expand(&base, &pattern))
            .await
            .map_err(|e| DataError::Invalid(format!("source.path: {e}")))??
    };
    for f in files.iter().take(MAX_LINEAGE_FILES) {
        io.trail().source(crate::lineage::file_dataset(f));
    }
    let as_text = format == FileFormat::Csv && has_contract(ctx, output);
    // One partition per file keeps its rows in order, so `_weir_row` is the line order.
    let session = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let tmp = io.scratch("extract").await?;
    let read = Files {
        session: &session,
        files: &files,
        pattern: &pattern,
        format,
        csv,
        as_text,
        tmp: &tmp,
    };
    let mut v = read.extract(io, output, false).await;
    // Broken CSV lines go to validate as rows marked corrupt, not a failed extract.
    if v.is_err()
        && as_text
        && csv.header
        && let Ok(repaired) = read.extract(io, output, true).await
    {
        v = Ok(repaired);
    }
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    let v = v?;
    let _ = log
        .line(&format!(
            "weir: extracted {} row(s) from {} file(s) into {} version {}{}",
            v.rows.unwrap_or(0),
            files.len(),
            output,
            v.version,
            if as_text {
                " (CSV columns as text for the contract)"
            } else {
                ""
            }
        ))
        .await;
    Ok(super::published(&v))
}

/// Source files an extract names in its lineage event, at most.
const MAX_LINEAGE_FILES: usize = 100;

/// The files of one extract and how to read them.
struct Files<'a> {
    session: &'a SessionContext,
    files: &'a [PathBuf],
    pattern: &'a str,
    format: FileFormat,
    csv: &'a weir_core::dag::CsvOptions,
    as_text: bool,
    tmp: &'a Path,
}

impl Files<'_> {
    /// Reads the files ([`Files::union`]) and writes them as the next
    /// version of `output`. Most of a file is read only while writing, so an
    /// error then names the file(s).
    async fn extract(
        &self,
        io: &Io<'_>,
        output: &DatasetName,
        repair: bool,
    ) -> Result<DatasetVersionRecord, DataError> {
        let df = self.union(repair).await?;
        io.write(df, output, &[]).await.map_err(|e| {
            let source = match self.files {
                [one] => one.display().to_string(),
                many => format!(
                    "one of the {} files matching `{}`",
                    many.len(),
                    self.pattern
                ),
            };
            DataError::Invalid(format!("extracting {source}: {e}"))
        })
    }

    /// Every file's rows with their lineage columns, one after the other.
    /// With `repair`, CSV files are read through [`csv_repair`]: broken
    /// records become rows that carry only `_weir_corrupt`.
    async fn union(&self, repair: bool) -> Result<DataFrame, DataError> {
        let mut all: Option<DataFrame> = None;
        for (i, file) in self.files.iter().enumerate() {
            let shown = file.display().to_string();
            let df = if repair {
                self.repaired(file, i).await?
            } else {
                let df = read_file(
                    self.session,
                    file,
                    self.format,
                    self.csv,
                    self.as_text,
                    self.tmp,
                    i,
                )
                .await
                .map_err(|e| DataError::Invalid(format!("reading {shown}: {e}")))?;
                let table = format!("f{i}");
                let columns = own_columns(&df);
                self.session
                    .register_table(table.as_str(), df.into_view())?;
                self.session
                    .sql(&format!(
                        "SELECT {columns}{} AS _weir_source, CAST(row_number() OVER () AS BIGINT) AS _weir_row FROM {table}",
                        sql::literal(&shown)
                    ))
                    .await?
            };
            all = Some(match all {
                None => df,
                Some(prev) => prev.union(df).map_err(|e| {
                    DataError::Invalid(format!(
                        "{shown} does not have the columns of the files before it: {e}"
                    ))
                })?,
            });
        }
        all.ok_or_else(|| DataError::Invalid(format!("no file matches `{}`", self.pattern)))
    }

    /// One CSV file with its broken records set aside: the good rows (their
    /// numbers kept) and a row per broken record, all columns as text.
    async fn repaired(&self, file: &Path, i: usize) -> Result<DataFrame, DataError> {
        use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        let shown = file.display().to_string();
        let cleaned = self.tmp.join(format!("repaired-{i}.csv"));
        let (src, dst, options) = (file.to_path_buf(), cleaned.clone(), self.csv.clone());
        let (header, broken) =
            tokio::task::spawn_blocking(move || csv_repair::repair(&src, &dst, &options))
                .await
                .map_err(|e| DataError::Invalid(e.to_string()))??;
        let text = Schema::new(
            header
                .iter()
                .map(|h| Field::new(h, DataType::Utf8, true))
                .chain([Field::new(csv_repair::ROW, DataType::Utf8, true)])
                .collect::<Vec<_>>(),
        );
        let null_regex = (!self.csv.null_values.is_empty()).then(|| {
            let alts: Vec<String> = self
                .csv
                .null_values
                .iter()
                .map(|v| regex::escape(v))
                .collect();
            format!("^({})$", alts.join("|"))
        });
        let good = self
            .session
            .read_csv(
                cleaned.display().to_string(),
                CsvReadOptions::new()
                    .has_header(true)
                    .delimiter(self.csv.delimiter)
                    .quote(self.csv.quote)
                    .file_extension("")
                    .null_regex(null_regex)
                    .schema(&text),
            )
            .await?;
        let good_table = format!("g{i}");
        self.session
            .register_table(good_table.as_str(), good.into_view())?;
        let columns: Vec<String> = header.iter().map(|h| sql::ident(h)).collect();
        let good = self
            .session
            .sql(&format!(
                "SELECT {}, {} AS _weir_source, CAST({} AS BIGINT) AS _weir_row, CAST(NULL AS VARCHAR) AS {} FROM {good_table}",
                columns.join(", "),
                sql::literal(&shown),
                sql::ident(csv_repair::ROW),
                csv_repair::CORRUPT,
            ))
            .await?;
        let n = broken.len();
        let mut arrays: Vec<ArrayRef> = header
            .iter()
            .map(|_| std::sync::Arc::new(StringArray::new_null(n)) as ArrayRef)
            .collect();
        arrays.push(std::sync::Arc::new(StringArray::from(vec![
            shown.as_str();
            n
        ])));
        arrays.push(std::sync::Arc::new(Int64Array::from_iter_values(
            broken.iter().map(|b| b.row),
        )));
        arrays.push(std::sync::Arc::new(StringArray::from_iter_values(
            broken.iter().map(|b| b.detail.as_str()),
        )));
        let schema = std::sync::Arc::new(Schema::new(
            header
                .iter()
                .map(|h| Field::new(h, DataType::Utf8, true))
                .chain([
                    Field::new("_weir_source", DataType::Utf8, false),
                    Field::new("_weir_row", DataType::Int64, false),
                    Field::new(csv_repair::CORRUPT, DataType::Utf8, true),
                ])
                .collect::<Vec<_>>(),
        ));
        let bad = self
            .session
            .read_batch(RecordBatch::try_new(schema, arrays)?)?;
        Ok(good.union(bad)?)
    }
}

/// Extracts the result of a query on a connection; `_weir_source` names the
/// connection and `_weir_row` numbers the rows in the order they came.
async fn from_query(
    sql: &str,
    connection: &str,
    output: &DatasetName,
    io: &Io<'_>,
    log: &mut LogWriter,
) -> Result<serde_json::Value, DataError> {
    let conn = io.env().connection(connection)?;
    io.trail().query(sql, conn.backend.name());
    if let Some((namespace, name)) = crate::lineage::connection_dataset(&conn.url) {
        io.trail().source(crate::lineage::External {
            namespace,
            name,
            fields: Vec::new(),
        });
    }
    let session = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let tmp = io.scratch("extract").await?;
    let result = async {
        let df = super::query_source::read(&session, &conn, sql, &tmp).await?;
        let columns = own_columns(&df);
        session.register_table("q", df.into_view())?;
        let df = session
            .sql(&format!(
                "SELECT {columns}{} AS _weir_source, CAST(row_number() OVER () AS BIGINT) AS _weir_row FROM q",
                sql::literal(&format!("connection:{connection}"))
            ))
            .await?;
        io.write(df, output, &[]).await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    let v = result?;
    let _ = log
        .line(&format!(
            "weir: extracted {} row(s) from connection {connection} into {} version {}",
            v.rows.unwrap_or(0),
            output,
            v.version
        ))
        .await;
    Ok(super::published(&v))
}

/// The source's columns, each followed by a comma, without lineage columns
/// an earlier extract added (they are made anew).
fn own_columns(df: &DataFrame) -> String {
    df.schema()
        .fields()
        .iter()
        .filter(|f| f.name() != "_weir_source" && f.name() != "_weir_row")
        .map(|f| format!("{}, ", sql::ident(f.name())))
        .collect()
}

/// The files a pattern names, relative to the DAG's folder, in name order.
fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let text = full.display().to_string();
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| DataError::Invalid(format!("source.path `{pattern}`: {e}")))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::Invalid(format!(
            "no file matches source.path `{pattern}` (looked for {text})"
        )));
    }
    Ok(files)
}

/// Whether a validate task of the DAG reads `dataset` with a contract.
fn has_contract(ctx: &TryContext, dataset: &DatasetName) -> bool {
    ctx.dag
        .tasks
        .values()
        .any(|t| matches!(&t.kind, TaskKind::Validate { input, .. } if input == dataset))
}

async fn read_file(
    session: &SessionContext,
    file: &Path,
    format: FileFormat,
    csv: &weir_core::dag::CsvOptions,
    as_text: bool,
    tmp: &Path,
    index: usize,
) -> Result<DataFrame, DataError> {
    let path = file.display().to_string();
    match format {
        FileFormat::Csv => {
            let null_regex = (!csv.null_values.is_empty()).then(|| {
                let alts: Vec<String> = csv.null_values.iter().map(|v| regex::escape(v)).collect();
                format!("^({})$", alts.join("|"))
            });
            let options = || {
                CsvReadOptions::new()
                    .has_header(csv.header)
                    .delimiter(csv.delimiter)
                    .quote(csv.quote)
                    .file_extension("")
                    .null_regex(null_regex.clone())
            };
            if !as_text {
                return Ok(session.read_csv(path, options()).await?);
            }
            let inferred = session
                .read_csv(path.clone(), options().schema_infer_max_records(1))
                .await?;
            let text = Schema::new(
                inferred
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            Ok(session.read_csv(path, options().schema(&text)).await?)
        }
        FileFormat::Ndjson => Ok(session
            .read_json(path, JsonReadOptions::default().file_extension(""))
            .await?),
        FileFormat::Json => {
            let converted = tmp.join(format!("{index}.ndjson"));
            let (src, dst) = (file.to_path_buf(), converted.clone());
            tokio::task::spawn_blocking(move || json_array_to_lines(&src, &dst))
                .await
                .map_err(|e| DataError::Invalid(e.to_string()))??;
            Ok(session
                .read_json(
                    converted.display().to_string(),
                    JsonReadOptions::default().file_extension(""),
                )
                .await?)
        }
        FileFormat::Parquet => Ok(session
            .read_parquet(path, ParquetReadOptions::default().file_extension(""))
            .await?),
    }
}

/// A JSON array of objects, rewritten one object per line for the NDJSON reader.
fn json_array_to_lines(src: &Path, dst: &Path) -> Result<(), DataError> {
    use std::io::Write;
    let text = std::fs::read_to_string(src)
        .map_err(DataError::io(format!("reading {}", src.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DataError::Invalid(format!("{} is not JSON: {e}", src.display())))?;
    let serde_json::Value::Array(items) = value else {
        return Err(DataError::Invalid(format!(
            "{} is not a JSON array of objects (use format: ndjson for one object per line)",
            src.display()
        )));
    };
    let file =
        std::fs::File::create(dst).map_err(DataError::io(format!("creating {}", dst.display())))?;
    let mut out = std::io::BufWriter::new(file);
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(DataError::Invalid(format!(
                "{}: item {} is not an object",
                src.display(),
                i + 1
            )));
        }
        writeln!(out, "{item}").map_err(DataError::io(format!("writing {}", dst.display())))?;
    }
    out.flush()
        .map_err(DataError::io(format!("writing {}", dst.display())))?;
    Ok(())
}
