//! Extracting with a SQL query on a connection. PostgreSQL streams the
//! result as CSV (`COPY (…) TO STDOUT`) into a file DataFusion reads with
//! type inference; SQLite rows become Arrow columns, each typed by the values
//! it holds (integers, reals, or text). Only one read-only query is accepted.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use datafusion::sql::sqlparser::parser::Parser;
use futures_util::StreamExt;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use weir_core::store::Backend;

use super::DataError;
use crate::resources::Connection;

/// Refuses anything but one query (`SELECT`/`WITH`/`VALUES`).
fn check(sql: &str, backend: Backend) -> Result<(), DataError> {
    let parsed = match backend {
        Backend::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
        Backend::Sqlite => Parser::parse_sql(&SQLiteDialect {}, sql),
    }
    .map_err(|e| DataError::Invalid(format!("source.sql: {e}")))?;
    match parsed.as_slice() {
        [Statement::Query(_)] => Ok(()),
        [_] => Err(DataError::Invalid(
            "source.sql: only a query (SELECT or WITH) can be extracted".into(),
        )),
        other => Err(DataError::Invalid(format!(
            "source.sql: one query is extracted at a time; found {} statements",
            other.len()
        ))),
    }
}

/// The result of `sql` on the database at `url`, as a DataFrame of `session`.
pub async fn read(
    session: &SessionContext,
    conn: &Connection,
    sql: &str,
    tmp: &Path,
) -> Result<DataFrame, DataError> {
    let url = conn.url.as_str();
    check(sql, conn.backend)?;
    if conn.backend == Backend::Postgres {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        let file = tmp.join("query.csv");
        let mut out = tokio::fs::File::create(&file)
            .await
            .map_err(DataError::io(format!("creating {}", file.display())))?;
        let mut stream = conn
            .copy_out_raw(&format!(
                "COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)",
                sql.trim().trim_end_matches(';')
            ))
            .await?;
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)
                .await
                .map_err(DataError::io(format!("writing {}", file.display())))?;
        }
        out.flush()
            .await
            .map_err(DataError::io(format!("writing {}", file.display())))?;
        drop(stream);
        let options = CsvReadOptions::new().has_header(true).file_extension("");
        return Ok(session
            .read_csv(file.display().to_string(), options)
            .await?);
    }
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await?;
    let names: Vec<String> = rows
        .first()
        .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let kinds: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                r.try_get_raw(i)
                    .ok()
                    .filter(|v| !v.is_null())
                    .map(|v| v.type_info().name().to_owned())
            })
            .collect();
        let all = |k: &[&str]| kinds.iter().all(|t| k.contains(&t.as_str()));
        let (t, array): (DataType, ArrayRef) = if !kinds.is_empty() && all(&["INTEGER"]) {
            let mut b = Int64Builder::new();
            for r in &rows {
                b.append_option(r.try_get::<Option<i64>, _>(i)?);
            }
            (DataType::Int64, Arc::new(b.finish()))
        } else if !kinds.is_empty() && all(&["INTEGER", "REAL"]) {
            let mut b = Float64Builder::new();
            for r in &rows {
                b.append_option(r.try_get::<Option<f64>, _>(i)?);
            }
            (DataType::Float64, Arc::new(b.finish()))
        } else {
            let mut b = StringBuilder::new();
            for r in &rows {
                let raw = r.try_get_raw(i)?;
                let text = if raw.is_null() {
                    None
                } else {
                    match raw.type_info().name() {
                        "INTEGER" => r.try_get::<i64, _>(i).ok().map(|v| v.to_string()),
                        "REAL" => r.try_get::<f64, _>(i).ok().map(|v| v.to_string()),
                        _ => r.try_get::<String, _>(i).ok(),
                    }
                };
                b.append_option(text);
            }
            (DataType::Utf8, Arc::new(b.finish()))
        };
        fields.push(Field::new(name, t, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema, arrays)
        .map_err(|e| DataError::Invalid(format!("source.sql: {e}")))?;
    Ok(session.read_batch(batch)?)
}
