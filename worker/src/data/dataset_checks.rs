//! The dataset-level checks of a contract, run by a validate try before its
//! version is published: `missing_percent` over every row read; `row_count`,
//! `freshness` (at the end of the run's data interval), `duplicates` and
//! `row_count_change` over the clean rows. Each is one aggregate
//! query; its result names the observed value, the threshold and the
//! severity.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::prelude::SessionContext;
use weir_core::dag::DatasetName;
use weir_core::dag::contract::{
    ChangeSeverity, Check, CheckKind, CheckResultKind, SchemaChangeCheck, Severity, Threshold,
};
use weir_core::store::CheckResultRecord;

use super::DataError;
use super::compile::names;
use super::sql::ident;
use super::storage::Io;

/// The first row's values of every column, as integers (nulls as 0).
pub(super) fn ints(batches: &[RecordBatch]) -> Vec<i64> {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Vec::new();
    };
    b.columns()
        .iter()
        .map(|c| {
            c.as_primitive_opt::<Int64Type>()
                .map(|a| if a.is_null(0) { 0 } else { a.value(0) })
                .unwrap_or(0)
        })
        .collect()
}

fn severity(entry: &Check, own: Option<Severity>) -> Severity {
    own.or(entry.severity).unwrap_or_default()
}

/// One dataset-level check's result (none for row-level rules);
/// `missing` is the count of a `missing_percent` check's column.
pub(super) async fn check(
    io: &Io<'_>,
    session: &SessionContext,
    check: &Check,
    output: &DatasetName,
    (rows_in, rows_clean): (i64, i64),
    missing: Option<u64>,
) -> Result<Option<CheckResultRecord>, DataError> {
    let result = |kind: CheckResultKind,
                  column: Option<String>,
                  passed: bool,
                  observed: String,
                  threshold: String,
                  sev: Severity| {
        Some(CheckResultRecord {
            name: check.name.clone().unwrap_or_else(|| kind.to_string()),
            kind,
            column_name: column,
            passed,
            failed: i64::from(!passed),
            observed: Some(observed),
            threshold: Some(threshold),
            severity: sev,
        })
    };
    if let CheckKind::RowCount(rc) = &check.kind {
        let low = rc
            .min
            .is_some_and(|m| rows_clean < i64::try_from(m).unwrap_or(i64::MAX));
        let high = rc
            .max
            .is_some_and(|m| rows_clean > i64::try_from(m).unwrap_or(i64::MAX));
        let limit = format!(
            "{}..{}",
            rc.min.map(|m| m.to_string()).unwrap_or_default(),
            rc.max.map(|m| m.to_string()).unwrap_or_default()
        );
        return Ok(result(
            CheckResultKind::RowCount,
            None,
            !(low || high),
            rows_clean.to_string(),
            limit,
            severity(check, rc.severity),
        ));
    }
    if let CheckKind::MissingPercent(mp) = &check.kind {
        let missing = i64::try_from(missing.unwrap_or(0)).unwrap_or(i64::MAX);
        let pct = if rows_in > 0 {
            missing as f64 * 100.0 / rows_in as f64
        } else {
            0.0
        };
        let exceeded = mp.max.exceeded_by(
            u64::try_from(missing).unwrap_or(0),
            u64::try_from(rows_in).unwrap_or(0),
        );
        return Ok(result(
            CheckResultKind::MissingPercent,
            Some(mp.column.clone()),
            !exceeded,
            format!("{pct:.2}% ({missing} of {rows_in})"),
            mp.max.to_string(),
            severity(check, mp.severity),
        ));
    }
    if let CheckKind::Freshness(f) = &check.kind {
        let batches = session
            .sql(&format!(
                "SELECT CAST(MAX({}) AS VARCHAR) FROM clean_rows",
                ident(&f.column)
            ))
            .await
            .map_err(|e| DataError::Invalid(format!("freshness on `{}`: {e}", f.column)))?
            .collect()
            .await?;
        // DataFusion may answer as Utf8View: cast to plain text to read it.
        let newest = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| cast(b.column(0), &DataType::Utf8))
            .transpose()?
            .and_then(|a| {
                a.as_string_opt::<i32>()
                    .filter(|a| !a.is_null(0))
                    .map(|a| a.value(0).to_owned())
            });
        let at = newest.as_deref().and_then(parse_time);
        let max_age =
            chrono::Duration::seconds(i64::try_from(f.max_age.as_secs()).unwrap_or(i64::MAX));
        // Measured when the run's data interval ends, not by the wall clock,
        // so a backfill or a retry judges the data of its own interval.
        let as_of = io.ctx().data_as_of();
        let passed = at.is_some_and(|t| as_of - t <= max_age);
        return Ok(result(
            CheckResultKind::Freshness,
            Some(f.column.clone()),
            passed,
            format!(
                "newest {} as of {}",
                newest.unwrap_or_else(|| "no value".into()),
                as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            f.max_age.to_string(),
            severity(check, f.severity),
        ));
    }
    if let CheckKind::Duplicates(d) = &check.kind {
        let cols: Vec<String> = d.columns.iter().map(|c| ident(c)).collect();
        let counts = ints(
            &session
                .sql(&format!(
                    "SELECT CAST(COALESCE(SUM(n - 1), 0) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM clean_rows GROUP BY {}) WHERE n > 1",
                    cols.join(", ")
                ))
                .await
                .map_err(|e| DataError::Invalid(format!("duplicates on {}: {e}", names(d.columns.iter().map(String::as_str)))))?
                .collect()
                .await?,
        );
        let dups = counts.first().copied().unwrap_or(0);
        return Ok(result(
            CheckResultKind::Duplicates,
            Some(d.columns.join(",")),
            dups <= i64::try_from(d.max).unwrap_or(i64::MAX),
            dups.to_string(),
            d.max.to_string(),
            severity(check, d.severity),
        ));
    }
    if let CheckKind::RowCountChange(rc) = &check.kind {
        let history: Vec<i64> = io
            .env()
            .store
            .dataset_versions(Some(&output.to_string()))
            .await?
            .iter()
            .rev()
            .filter(|v| v.deleted_at.is_none())
            .take(rc.over_last as usize)
            .filter_map(|v| v.rows)
            .collect();
        if history.is_empty() {
            return Ok(result(
                CheckResultKind::RowCountChange,
                None,
                true,
                format!("{rows_clean} rows, no earlier version to compare"),
                rc.max.to_string(),
                severity(check, rc.severity),
            ));
        }
        let avg = history.iter().sum::<i64>() as f64 / history.len() as f64;
        let change = (rows_clean as f64 - avg).abs();
        let exceeded = match rc.max {
            Threshold::Count(n) => change > n as f64,
            Threshold::Percent(p) => {
                if avg > 0.0 {
                    change * 100.0 / avg > p
                } else {
                    rows_clean > 0
                }
            }
        };
        let pct = if avg > 0.0 { change * 100.0 / avg } else { 0.0 };
        return Ok(result(
            CheckResultKind::RowCountChange,
            None,
            !exceeded,
            format!(
                "{rows_clean} rows vs {avg:.1} average of {} version(s) ({pct:.1}% change)",
                history.len()
            ),
            rc.max.to_string(),
            severity(check, rc.severity),
        ));
    }
    if let CheckKind::Sql(query) = &check.kind {
        super::transform::check_query(query)
            .map_err(|e| DataError::Invalid(format!("sql check: {e}")))?;
        let batches = session
            .sql(query)
            .await
            .map_err(|e| DataError::Invalid(format!("sql check `{query}`: {e}")))?
            .collect()
            .await?;
        let failing: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let limit = check.max_failed.unwrap_or(Threshold::Count(0));
        let exceeded = limit.exceeded_by(failing as u64, u64::try_from(rows_clean).unwrap_or(0));
        let sample = sample_rows(&batches, 10)?;
        let observed = if sample.is_empty() {
            "0 rows".to_owned()
        } else {
            format!("{failing} row(s): {}", sample.join("; "))
        };
        return Ok(result(
            CheckResultKind::Sql,
            None,
            !exceeded,
            observed,
            limit.to_string(),
            severity(check, None),
        ));
    }
    Ok(None)
}

/// The first `n` rows of `batches` as `column=value, …`, for people.
fn sample_rows(batches: &[RecordBatch], n: usize) -> Result<Vec<String>, DataError> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("null");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let names = b.schema();
        for row in 0..b.num_rows() {
            if out.len() == n {
                return Ok(out);
            }
            let cells: Vec<String> = formatters
                .iter()
                .zip(names.fields())
                .map(|(f, field)| format!("{}={}", field.name(), f.value(row)))
                .collect();
            out.push(cells.join(", "));
        }
    }
    Ok(out)
}

/// A date or timestamp as DataFusion prints it.
fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f) {
            return Some(chrono::Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| chrono::Utc.from_utc_datetime(&t))
}

/// `schema_change`: the columns of the rows checked (`current`, schema JSON;
/// `version`, their version if they are one) against the newest earlier
/// version of `dataset`: added, removed and retyped columns, each judged as
/// the check says.
pub(super) async fn schema_change(
    io: &Io<'_>,
    check: &Check,
    sc: &SchemaChangeCheck,
    dataset: &DatasetName,
    (current, version): (&str, Option<i64>),
) -> Result<CheckResultRecord, DataError> {
    let previous = io
        .env()
        .store
        .dataset_versions(Some(&dataset.to_string()))
        .await?
        .into_iter()
        .filter(|v| version.is_none_or(|n| v.version < n))
        .max_by_key(|v| v.version);
    let columns = |json: &str| -> Vec<(String, String)> {
        serde_json::from_str::<Vec<serde_json::Value>>(json)
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap_or_default().to_owned(),
                    f["type"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let now = columns(current);
    let (observed, worst) = match previous.as_ref().and_then(|p| p.schema.as_deref()) {
        None => ("no earlier version".to_owned(), ChangeSeverity::Ignore),
        Some(before) => {
            let before = columns(before);
            let type_of = |list: &[(String, String)], name: &str| {
                list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
            };
            let added: Vec<String> = now
                .iter()
                .filter(|(n, _)| type_of(&before, n).is_none())
                .map(|(n, _)| n.clone())
                .collect();
            let removed: Vec<String> = before
                .iter()
                .filter(|(n, _)| type_of(&now, n).is_none())
                .map(|(n, _)| n.clone())
                .collect();
            let retyped: Vec<String> = now
                .iter()
                .filter_map(|(n, t)| {
                    type_of(&before, n)
                        .filter(|old| old != t)
                        .map(|old| format!("{n} ({old} → {t})"))
                })
                .collect();
            let mut parts = Vec::new();
            let mut worst = ChangeSeverity::Ignore;
            for (what, list, judged) in [
                ("added", &added, sc.added),
                ("removed", &removed, sc.removed),
                ("retyped", &retyped, sc.retyped),
            ] {
                if !list.is_empty() {
                    parts.push(format!("{what}: {}", list.join(", ")));
                    worst = worst.max(judged);
                }
            }
            let v = previous.as_ref().map_or(0, |p| p.version);
            if parts.is_empty() {
                (format!("same columns as version {v}"), worst)
            } else {
                (format!("{} (against version {v})", parts.join("; ")), worst)
            }
        }
    };
    Ok(CheckResultRecord {
        name: check
            .name
            .clone()
            .unwrap_or_else(|| CheckResultKind::SchemaChange.to_string()),
        kind: CheckResultKind::SchemaChange,
        column_name: None,
        passed: worst == ChangeSeverity::Ignore,
        failed: i64::from(worst != ChangeSeverity::Ignore),
        observed: Some(observed),
        threshold: Some(
            format!(
                "added {:?}, removed {:?}, retyped {:?}",
                sc.added, sc.removed, sc.retyped
            )
            .to_lowercase(),
        ),
        severity: if worst == ChangeSeverity::Error {
            Severity::Error
        } else {
            Severity::Warn
        },
    })
}
