//! `load`: a dataset into a table of a SQLite or PostgreSQL connection, in
//! one transaction (`append`, `replace`, or `upsert` on `key`; the table is
//! created from the dataset's schema when missing), or into a file (CSV,
//! JSON, Parquet) written under a temporary name and renamed.
//!
//! Retrying or clearing a load never duplicates rows: `append` tags rows with
//! the run (`_weir_run`) and replaces that run's earlier rows, `replace`
//! replaces everything, `upsert` updates rows with the same key.
//!
//! Rows stream from the dataset batch by batch: SQLite binds them in
//! multi-row inserts, PostgreSQL receives them as CSV through `COPY` into a
//! temporary table of the target's shape, then one `INSERT … SELECT`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::SendableRecordBatchStream;
use futures_util::StreamExt;
use weir_core::dag::{DatasetName, FileFormat, LoadMode, Target};
use weir_core::store::Backend;

use super::DataError;
use super::sql::{ident, is_plain, literal};
use super::storage::{self, Io};
use crate::context::TryContext;
use crate::logs::LogWriter;

/// Runs a load task.
pub async fn run(
    ctx: &TryContext,
    input: &DatasetName,
    target: &Target,
    io: &Io<'_>,
    log: &mut LogWriter,
    render: &(dyn Fn(&str, &str) -> Result<String, String> + Sync),
) -> Result<serde_json::Value, DataError> {
    let session = storage::session()?;
    let v = io.resolve(input).await?;
    let df = storage::read_version(&session, &v).await?;
    match target {
        Target::File { path, format } => {
            let path = render("target.path", path).map_err(DataError::Invalid)?;
            let base = crate::shell::dag_folder(Path::new(&ctx.dag.fileloc));
            let dest = if Path::new(&path).is_absolute() {
                PathBuf::from(&path)
            } else {
                base.join(&path)
            };
            let fields = lineage_fields(&df);
            write_file(df, &dest, *format).await?;
            io.trail().target(crate::lineage::External {
                fields,
                ..crate::lineage::file_dataset(&dest)
            });
            let _ = log
                .line(&format!(
                    "weir: loaded {} version {} ({} rows) into {}",
                    input,
                    v.version,
                    v.rows.unwrap_or(0),
                    dest.display()
                ))
                .await;
            Ok(serde_json::json!({
                "input": input.to_string(), "version": v.version, "rows": v.rows,
                "target": dest.display().to_string(),
            }))
        }
        Target::Table {
            connection,
            table,
            mode,
            key,
        } => {
            let conn = io.env().connection(connection)?;
            let name = table_name(table)?;
            let columns: Vec<Column> = df
                .schema()
                .fields()
                .iter()
                .map(|f| Column::of(f.name(), f.data_type()))
                .collect();
            for k in key {
                if !columns.iter().any(|c| &c.name == k) {
                    return Err(DataError::Invalid(format!(
                        "key column `{k}` is not in {input}"
                    )));
                }
            }
            let fields = lineage_fields(&df);
            let run_tag = format!("{}/{}", ctx.claim.dag_id, ctx.claim.run_id);
            let plan = LoadPlan {
                table: &name,
                columns: &columns,
                mode: *mode,
                key,
                run_tag: &run_tag,
            };
            let n = match conn.backend {
                Backend::Sqlite => {
                    load_sqlite(&conn.url, &plan, df.execute_stream().await?).await?
                }
                Backend::Postgres => {
                    load_postgres(&conn.url, &plan, df.execute_stream().await?).await?
                }
            };
            if let Some((namespace, name)) = crate::lineage::table_dataset(&conn.url, table) {
                io.trail().target(crate::lineage::External {
                    namespace,
                    name,
                    fields,
                });
            }
            let _ = log
                .line(&format!(
                    "weir: loaded {} version {} into {connection}.{table} ({}): {n} row(s)",
                    input,
                    v.version,
                    mode_name(*mode)
                ))
                .await;
            Ok(serde_json::json!({
                "input": input.to_string(), "version": v.version, "rows": n,
                "target": format!("{connection}.{table}"),
            }))
        }
    }
}

/// A frame's columns as (name, Arrow type), for lineage.
fn lineage_fields(df: &datafusion::dataframe::DataFrame) -> Vec<(String, String)> {
    df.schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

fn mode_name(m: LoadMode) -> &'static str {
    match m {
        LoadMode::Append => "append",
        LoadMode::Replace => "replace",
        LoadMode::Upsert => "upsert",
    }
}

/// `schema.table` or `table`, each part a plain identifier, quoted.
fn table_name(table: &str) -> Result<String, DataError> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| is_plain(p)) {
        return Err(DataError::Invalid(format!(
            "table `{table}`: use letters, digits and `_` (optionally `schema.table`)"
        )));
    }
    Ok(parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."))
}

/// How a column is bound.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Decimal(u8, i8),
    Text,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

impl Column {
    fn of(name: &str, t: &DataType) -> Column {
        let kind = match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Kind::Int,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
            DataType::Boolean => Kind::Bool,
            DataType::Date32 | DataType::Date64 => Kind::Date,
            DataType::Timestamp(_, _) => Kind::Timestamp,
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Kind::Decimal(*p, *s),
            _ => Kind::Text,
        };
        Column {
            name: name.to_owned(),
            kind,
        }
    }

    fn sql_type(&self, backend: Backend) -> String {
        match (self.kind, backend) {
            (Kind::Int, _) => "BIGINT".into(),
            (Kind::Float, Backend::Postgres) => "DOUBLE PRECISION".into(),
            (Kind::Float, Backend::Sqlite) => "REAL".into(),
            (Kind::Bool, _) => "BOOLEAN".into(),
            (Kind::Date, Backend::Postgres) => "DATE".into(),
            (Kind::Timestamp, Backend::Postgres) => "TIMESTAMPTZ".into(),
            (Kind::Date | Kind::Timestamp, Backend::Sqlite) => "TEXT".into(),
            (Kind::Decimal(p, s), _) => format!("NUMERIC({p},{s})"),
            (Kind::Text, _) => "TEXT".into(),
        }
    }
}

/// One value to bind.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Date(Option<chrono::NaiveDate>),
    Timestamp(Option<chrono::DateTime<chrono::Utc>>),
    Text(Option<String>),
}

/// A batch's columns cast to the Arrow type each column is bound as.
fn bindable(batch: &RecordBatch, columns: &[Column]) -> Result<Vec<ArrayRef>, DataError> {
    batch
        .columns()
        .iter()
        .zip(columns)
        .map(|(a, c)| {
            let to = match c.kind {
                Kind::Int => DataType::Int64,
                Kind::Float => DataType::Float64,
                Kind::Bool => DataType::Boolean,
                Kind::Date => DataType::Date32,
                Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
                Kind::Decimal(..) | Kind::Text => DataType::Utf8,
            };
            if let (DataType::List(_), DataType::Utf8) = (a.data_type(), &to) {
                return Ok(list_as_json(a));
            }
            cast(a, &to).map_err(|e| DataError::Invalid(format!("column `{}`: {e}", c.name)))
        })
        .collect()
}

/// A list column (such as a quarantine's `_weir_errors`) as JSON array text.
fn list_as_json(a: &ArrayRef) -> ArrayRef {
    let list = a.as_list::<i32>();
    let text: StringArray = (0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                let items = list.value(i);
                let items = cast(&items, &DataType::Utf8).ok();
                let items = items.as_ref().map(|x| x.as_string::<i32>());
                let values: Vec<Option<&str>> = items
                    .map(|x| {
                        (0..x.len())
                            .map(|j| x.is_valid(j).then(|| x.value(j)))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::to_string(&values).unwrap_or_default()
            })
        })
        .collect();
    Arc::new(text)
}

/// A batch as rows of values (binding to SQLite is row by row).
fn to_rows(batch: &RecordBatch, columns: &[Column]) -> Result<Vec<Vec<Value>>, DataError> {
    let mut rows = Vec::with_capacity(batch.num_rows());
    let arrays = bindable(batch, columns)?;
    for i in 0..batch.num_rows() {
        let row = arrays
            .iter()
            .zip(columns)
            .map(|(a, c)| {
                let null = a.is_null(i);
                match c.kind {
                    Kind::Int => {
                        Value::Int((!null).then(|| a.as_primitive::<Int64Type>().value(i)))
                    }
                    Kind::Float => {
                        Value::Float((!null).then(|| a.as_primitive::<Float64Type>().value(i)))
                    }
                    Kind::Bool => Value::Bool((!null).then(|| a.as_boolean().value(i))),
                    Kind::Date => Value::Date(if null {
                        None
                    } else {
                        chrono::NaiveDate::from_num_days_from_ce_opt(
                            a.as_primitive::<Date32Type>().value(i) + 719_163,
                        )
                    }),
                    Kind::Timestamp => Value::Timestamp(if null {
                        None
                    } else {
                        chrono::DateTime::from_timestamp_micros(
                            a.as_primitive::<TimestampMicrosecondType>().value(i),
                        )
                    }),
                    Kind::Decimal(..) | Kind::Text => {
                        Value::Text((!null).then(|| a.as_string::<i32>().value(i).to_owned()))
                    }
                }
            })
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

struct LoadPlan<'a> {
    table: &'a str,
    columns: &'a [Column],
    mode: LoadMode,
    key: &'a [String],
    run_tag: &'a str,
}

impl LoadPlan<'_> {
    fn create(&self, backend: Backend) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), c.sql_type(backend)))
            .collect();
        if self.mode == LoadMode::Append {
            cols.push("_weir_run TEXT".into());
        }
        if self.mode == LoadMode::Upsert && !self.key.is_empty() {
            cols.push(format!(
                "PRIMARY KEY ({})",
                self.key
                    .iter()
                    .map(|k| ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table,
            cols.join(", ")
        )
    }

    fn insert_head(&self) -> String {
        let mut cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        if self.mode == LoadMode::Append {
            cols.push("_weir_run".into());
        }
        format!("INSERT INTO {} ({}) ", self.table, cols.join(", "))
    }

    fn conflict_tail(&self) -> String {
        if self.mode != LoadMode::Upsert {
            return String::new();
        }
        let keys: Vec<String> = self.key.iter().map(|k| ident(k)).collect();
        let updates: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !self.key.contains(&c.name))
            .map(|c| format!("{0} = excluded.{0}", ident(&c.name)))
            .collect();
        if updates.is_empty() {
            format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
        } else {
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                keys.join(", "),
                updates.join(", ")
            )
        }
    }

    /// Rows per statement, within the databases' limits on bound values.
    fn chunk(&self) -> usize {
        (30_000 / (self.columns.len() + 1)).max(1)
    }
}

/// Creates the table if it is missing and removes what this load replaces:
/// everything (`replace`) or this run's earlier rows (`append`).
macro_rules! prepare {
    ($tx:expr, $plan:expr, $backend:expr) => {{
        let plan = $plan;
        sqlx::query(sqlx::AssertSqlSafe(plan.create($backend))).execute(&mut *$tx).await?;
        match plan.mode {
            LoadMode::Replace => {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", plan.table))).execute(&mut *$tx).await?;
            }
            LoadMode::Append => {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE _weir_run = $1", plan.table)))
                    .bind(plan.run_tag)
                    .execute(&mut *$tx)
                    .await
                    .map_err(|e| {
                        let text = e.to_string();
                        if text.contains("_weir_run") {
                            DataError::Invalid(format!(
                                "table {} must have a `_weir_run` column for append loads (weir creates it with the table): {text}",
                                plan.table
                            ))
                        } else {
                            DataError::Database(e)
                        }
                    })?;
            }
            LoadMode::Upsert => {}
        }
    }};
}

/// SQLite: rows bound in multi-row inserts, batch by batch, in one transaction.
async fn load_sqlite(
    url: &str,
    plan: &LoadPlan<'_>,
    mut batches: SendableRecordBatchStream,
) -> Result<u64, DataError> {
    use std::str::FromStr;
    // Wait for other writers (the file may be shared) instead of failing at once.
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(60));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    prepare!(tx, plan, Backend::Sqlite);
    let mut n = 0u64;
    while let Some(batch) = batches.next().await {
        let rows = to_rows(&batch?, plan.columns)?;
        for rows in rows.chunks(plan.chunk()) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(plan.insert_head());
            qb.push("VALUES ");
            for (r, row) in rows.iter().enumerate() {
                if r > 0 {
                    qb.push(", ");
                }
                qb.push("(");
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        qb.push(", ");
                    }
                    match v {
                        Value::Int(x) => qb.push_bind(*x),
                        Value::Float(x) => qb.push_bind(*x),
                        Value::Bool(x) => qb.push_bind(*x),
                        Value::Date(x) => qb.push_bind(x.map(|d| d.to_string())),
                        Value::Timestamp(x) => qb.push_bind(x.map(|t| t.to_rfc3339())),
                        Value::Text(x) => qb.push_bind(x.clone()),
                    };
                }
                if plan.mode == LoadMode::Append {
                    qb.push(", ").push_bind(plan.run_tag.to_owned());
                }
                qb.push(")");
            }
            qb.push(plan.conflict_tail());
            n += qb.build().execute(&mut *tx).await?.rows_affected();
        }
    }
    tx.commit().await?;
    pool.close().await;
    Ok(n)
}

/// PostgreSQL: the batches streamed with `COPY` into a temporary table of
/// the target's shape, then one `INSERT … SELECT` into the target, all in
/// one transaction. Upserts keep the last row of each key.
async fn load_postgres(
    url: &str,
    plan: &LoadPlan<'_>,
    mut batches: SendableRecordBatchStream,
) -> Result<u64, DataError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let mut tx = pool.begin().await?;
    // Timestamps travel as UTC text.
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    prepare!(tx, plan, Backend::Postgres);
    // Upserts go through a temporary table of the target's shape, so one
    // statement can keep each key's last row; other modes copy straight in.
    let staged = plan.mode == LoadMode::Upsert;
    if staged {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE weir_load (LIKE {}, __weir_seq BIGSERIAL) ON COMMIT DROP",
            plan.table
        )))
        .execute(&mut *tx)
        .await?;
    }
    // A marker no value can hold by chance, so empty text stays empty text.
    let null = format!("weir-null-{}", uuid::Uuid::new_v4());
    let cols: Vec<String> = plan.columns.iter().map(|c| ident(&c.name)).collect();
    let mut copied_cols = cols.clone();
    if plan.mode == LoadMode::Append {
        copied_cols.push("_weir_run".into());
    }
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL {})",
            if staged { "weir_load" } else { plan.table },
            copied_cols.join(", "),
            literal(&null)
        ))
        .await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let mut arrays = bindable(&batch, plan.columns)?;
        if plan.mode == LoadMode::Append {
            arrays.push(
                datafusion::common::ScalarValue::from(plan.run_tag)
                    .to_array_of_size(batch.num_rows())?,
            );
        }
        let null = null.clone();
        let text = tokio::task::spawn_blocking(move || csv_rows(arrays, &null))
            .await
            .map_err(|e| DataError::Invalid(format!("encoding rows for COPY: {e}")))??;
        copy.send(text).await?;
    }
    let copied = copy.finish().await?;
    let n = if staged {
        let keys: Vec<String> = plan.key.iter().map(|k| ident(k)).collect();
        let insert = format!(
            "SELECT DISTINCT ON ({1}) {0} FROM weir_load ORDER BY {1}, __weir_seq DESC{2}",
            cols.join(", "),
            keys.join(", "),
            plan.conflict_tail()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{}{insert}",
            plan.insert_head()
        )))
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        copied
    };
    tx.commit().await?;
    pool.close().await;
    Ok(n)
}

/// Arrays as CSV lines (no header), nulls written as the text `null`.
fn csv_rows(arrays: Vec<ArrayRef>, null: &str) -> Result<Vec<u8>, DataError> {
    let fields: Vec<_> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), arrays)?;
    let mut out = Vec::new();
    {
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(false)
            .with_null(null.to_owned())
            .build(&mut out);
        writer.write(&batch)?;
    }
    Ok(out)
}

/// Writes one file under a temporary name, then renames it into place.
async fn write_file(
    df: datafusion::prelude::DataFrame,
    dest: &Path,
    format: FileFormat,
) -> Result<(), DataError> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(DataError::io(format!("creating {}", parent.display())))?;
    }
    let file_name = dest
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let ext = match format {
        FileFormat::Csv => "csv",
        FileFormat::Json | FileFormat::Ndjson => "json",
        FileFormat::Parquet => "parquet",
    };
    let tmp = dest.with_file_name(format!(".{file_name}.tmp-{}.{ext}", uuid::Uuid::new_v4()));
    let tmp_text = tmp.display().to_string();
    let options = DataFrameWriteOptions::new().with_single_file_output(true);
    let df = df.repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(1))?;
    match format {
        FileFormat::Csv => {
            df.write_csv(&tmp_text, options, None).await?;
        }
        FileFormat::Ndjson => {
            df.write_json(&tmp_text, options, None).await?;
        }
        FileFormat::Parquet => {
            df.write_parquet(&tmp_text, options, None).await?;
        }
        FileFormat::Json => {
            // A JSON array of objects, as the json format reads.
            let batches = df.collect().await?;
            let path = tmp.clone();
            tokio::task::spawn_blocking(move || -> Result<(), DataError> {
                let file = std::fs::File::create(&path)
                    .map_err(DataError::io(format!("creating {}", path.display())))?;
                let mut writer =
                    datafusion::arrow::json::ArrayWriter::new(std::io::BufWriter::new(file));
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                writer
                    .write_batches(&refs)
                    .and_then(|()| writer.finish())
                    .map_err(|e| DataError::Invalid(format!("writing {}: {e}", path.display())))?;
                Ok(())
            })
            .await
            .map_err(|e| DataError::Invalid(format!("writing a file: {e}")))??;
        }
    }
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(DataError::io(format!(
            "renaming {} to {}",
            tmp.display(),
            dest.display()
        )))?;
    Ok(())
}
