//! `validate`: a dataset checked against its contract. Every row-level rule
//! is a boolean column of one DataFusion query (casts, required, ranges,
//! values, formats, the primary key as a window count, references as a left
//! join on the referenced keys, SQL rules); clean rows go to `output`,
//! failing rows to `quarantine` with `_weir_errors` naming every reason.
//! Dataset-level checks then decide whether the clean version is published
//! (write-audit-publish), and every result is recorded in the catalog.

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use weir_core::dag::DatasetName;
use weir_core::dag::contract::{CheckKind, CheckResultKind, Contract, Severity, Threshold};
use weir_core::store::{CheckResultRecord, DatasetVersionRecord, NewQuality, NewValidation};

use super::DataError;
use super::compile::{InputColumn, RowRule, compile, names};
use super::split::{Counts, Plan, split};
use super::sql::ident;
use super::storage::{Io, Staged};
use crate::context::TryContext;
use crate::logs::LogWriter;

/// What to validate.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The dataset read.
    pub input: &'a DatasetName,
    /// The contract.
    pub contract: &'a Contract,
    /// Clean rows.
    pub output: &'a DatasetName,
    /// Failing rows.
    pub quarantine: &'a DatasetName,
    /// More quarantined rows than this fail the task.
    pub max_quarantined: Option<Threshold>,
}

/// The rows checked: a catalogued version (validate), or a transform's
/// query registered in the checks session under its output's name.
#[derive(Debug)]
pub struct Source {
    /// The version read, if the rows are one.
    pub version: Option<DatasetVersionRecord>,
    /// The versions the rows were made from (lineage of both outputs).
    pub lineage: Vec<i64>,
}

impl Source {
    /// `raw.orders version 3`, or `the output of curated.daily` (for messages).
    pub(super) fn describe(&self, name: &DatasetName) -> String {
        match &self.version {
            Some(v) => format!("{name} version {}", v.version),
            None => format!("the query's rows for {name}"),
        }
    }
}

/// The session checks run in. Lookups are small beside the rows: each is
/// built once and the rows stream past it, rather than every row being
/// shuffled by key.
pub fn checks_session() -> Result<SessionContext, DataError> {
    super::storage::session_with(
        datafusion::prelude::SessionConfig::new().with_repartition_joins(false),
    )
}

/// Runs a validate task.
pub async fn run(
    ctx: &TryContext,
    spec: Spec<'_>,
    io: &Io<'_>,
    log: &mut LogWriter,
) -> Result<serde_json::Value, DataError> {
    let session = checks_session()?;
    let input_v = io.register(&session, spec.input).await?;
    let source = Source {
        lineage: vec![input_v.id],
        version: Some(input_v),
    };
    check(ctx, spec, &session, source, io, log).await
}

/// Checks the rows of `spec.input`, a table of `session`, against the
/// contract: clean rows staged as the next version of `spec.output`,
/// failing rows quarantined, published only if no error-severity check failed.
pub async fn check(
    ctx: &TryContext,
    spec: Spec<'_>,
    session: &SessionContext,
    source: Source,
    io: &Io<'_>,
    log: &mut LogWriter,
) -> Result<serde_json::Value, DataError> {
    let input_schema = session
        .table(spec.input.to_string().as_str())
        .await?
        .schema()
        .as_arrow()
        .clone();
    let columns = input_columns(&input_schema);
    let c = spec.contract;
    // The referenced datasets are tables of the session too.
    let mut inputs = source.lineage.clone();
    for dataset in c.referenced_datasets() {
        inputs.push(io.register(session, dataset).await?.id);
    }
    let compiled = compile(c, spec.input, &source.describe(spec.input), &columns)?;
    let rules = &compiled.rules;
    let checked = session
        .sql(&compiled.sql)
        .await
        .map_err(|e| DataError::Invalid(format!("the contract's checks do not compile: {e}")))?;
    let schema = checked.schema().as_arrow().clone();
    let index = |name: &str| {
        schema
            .index_of(name)
            .map_err(|e| DataError::Invalid(format!("validate: {e}")))
    };
    let plan_of = |staged: &Staged, scratch: &std::path::Path| -> Result<Plan, DataError> {
        Ok(Plan {
            clean: compiled
                .clean
                .iter()
                .map(|n| index(n))
                .collect::<Result<_, _>>()?,
            quarantine: compiled
                .held
                .iter()
                .map(|n| index(n))
                .collect::<Result<_, _>>()?,
            flags: compiled
                .flags
                .iter()
                .map(|n| index(n))
                .collect::<Result<_, _>>()?,
            tallies: compiled
                .tallies
                .iter()
                .map(|n| index(n))
                .collect::<Result<_, _>>()?,
            clean_dir: staged.dir().to_path_buf(),
            quarantine_dir: scratch.to_path_buf(),
            properties: super::storage::parquet_properties(session)?,
        })
    };

    // One pass: clean rows staged as the next version, failing rows held.
    let scratch = io.scratch("validate").await?;
    let staged = io.stage(spec.output).await?;
    let staged_dir = staged.dir().to_path_buf();
    let passed = async {
        let plan = plan_of(&staged, &scratch)?;
        let clean_schema = std::sync::Arc::new(schema.project(&plan.clean)?);
        let physical = checked.create_physical_plan().await?;
        tracing::debug!(
            "validate plan:\n{}",
            datafusion::physical_plan::displayable(physical.as_ref()).indent(true)
        );
        let counts = split(physical, session.task_ctx(), plan).await?;
        Ok::<_, DataError>((counts, clean_schema))
    }
    .await;
    let (counts, clean_schema) = match passed {
        Ok(p) => p,
        Err(e) => {
            staged.discard().await;
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return Err(e);
        }
    };
    let outcome = finish(
        Finish {
            ctx,
            spec: &spec,
            io,
            session,
            rules,
            counts,
            staged,
            clean_schema,
            held: scratch.clone(),
            kept: compiled.kept.clone(),
            inputs: &inputs,
            source: &source,
        },
        log,
    )
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    // Published versions were renamed away; anything left is unpublished.
    let _ = tokio::fs::remove_dir_all(&staged_dir).await;
    outcome
}

/// The results of the row-level rules, from how many rows each flagged
/// among `rows`. A rule's limit is its `max_failed`, else `untolerated`
/// (validate: none, its rows are quarantined; a load's gate: zero). Within
/// its limit a failing rule is a warning, beyond it an error that holds the
/// version (or the load) back.
pub(super) fn rule_results(
    rules: &[RowRule],
    flagged: &[u64],
    rows: u64,
    untolerated: Option<Threshold>,
) -> Vec<CheckResultRecord> {
    rules
        .iter()
        .zip(flagged)
        .map(|(r, &failed)| {
            let limit = r.max_failed.or(untolerated);
            let severity = match limit {
                Some(t) if !t.exceeded_by(failed, rows) => Severity::Warn,
                _ => Severity::Error,
            };
            CheckResultRecord {
                name: r.name.clone(),
                kind: r.kind,
                column_name: r.column.clone(),
                passed: failed == 0,
                failed: i64::try_from(failed).unwrap_or(i64::MAX),
                observed: limit.map(|_| failed.to_string()),
                threshold: limit.map(|t| t.to_string()),
                severity,
            }
        })
        .collect()
}

/// The dataset-level checks of `c`, over the session's `clean_rows` (and
/// `checked`) table: `names` are the rows' dataset and where they go (for
/// history), `tallies` the missing-value counts of `missing_percent` checks
/// in order, `schema` the rows' columns (JSON) and their version, if any.
pub(super) async fn dataset_results(
    io: &Io<'_>,
    session: &SessionContext,
    c: &Contract,
    (input, output): (&DatasetName, &DatasetName),
    rows: (i64, i64),
    tallies: &[u64],
    schema: (&str, Option<i64>),
) -> Result<Vec<CheckResultRecord>, DataError> {
    let mut results = Vec::new();
    let mut tallies = tallies.iter();
    for check in &c.checks {
        let missing = if matches!(check.kind, CheckKind::MissingPercent(_)) {
            tallies.next().copied()
        } else {
            None
        };
        if let Some(r) =
            super::dataset_checks::check(io, session, check, output, rows, missing).await?
        {
            results.push(r);
        }
        if let CheckKind::SchemaChange(sc) = &check.kind {
            results.push(super::dataset_checks::schema_change(io, check, sc, input, schema).await?);
        }
    }
    Ok(results)
}

/// The columns of a table as the contract compiler sees them.
pub(super) fn input_columns(schema: &datafusion::arrow::datatypes::Schema) -> Vec<InputColumn> {
    schema
        .fields()
        .iter()
        .map(|f| InputColumn {
            name: f.name().clone(),
            text: matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
        })
        .collect()
}

/// One log line per result.
/// Logs each check's result. Values of `pii` columns in samples are masked:
/// viewers read logs, and only admins see personal data.
pub(super) async fn log_results(
    log: &mut LogWriter,
    results: &[CheckResultRecord],
    pii: &[String],
) {
    for r in results {
        let status = match (r.passed, blocks(r), r.severity) {
            (true, _, _) => "passed",
            (false, false, _) => "quarantined",
            (false, true, Severity::Warn) => "WARNING",
            (false, true, Severity::Error) => "FAILED",
        };
        let mut line = format!("weir:   {status} {}", r.kind);
        if r.name != r.kind.as_str() {
            line.push_str(&format!(" {}", r.name));
        }
        if let Some(col) = &r.column_name {
            line.push_str(&format!(" ({col})"));
        }
        if r.kind.is_row_level() {
            line.push_str(&format!(": {} row(s)", r.failed));
            if let Some(t) = &r.threshold {
                line.push_str(&format!(", limit {t}"));
            }
        } else if let Some(o) = &r.observed {
            let o = weir_core::catalog::mask_sample(o, pii);
            line.push_str(&format!(": observed {o}"));
            if let Some(t) = &r.threshold {
                line.push_str(&format!(", limit {t}"));
            }
        }
        let _ = log.line(&line).await;
    }
}

/// Whether a failed result can hold the version back: dataset-level checks,
/// and row rules with a tolerance (`max_failed`, recorded as the threshold).
pub(super) fn blocks(r: &CheckResultRecord) -> bool {
    !r.kind.is_row_level() || r.threshold.is_some()
}

/// What the pass over the rows left for the rest of a validate task.
struct Finish<'a> {
    ctx: &'a TryContext,
    spec: &'a Spec<'a>,
    io: &'a Io<'a>,
    session: &'a SessionContext,
    rules: &'a [RowRule],
    counts: Counts,
    staged: Staged,
    clean_schema: datafusion::arrow::datatypes::SchemaRef,
    held: std::path::PathBuf,
    kept: Vec<String>,
    inputs: &'a [i64],
    source: &'a Source,
}

/// Dataset checks on the staged clean rows, the quarantine version, the
/// clean version if nothing blocks it, the catalog record and the log.
async fn finish(f: Finish<'_>, log: &mut LogWriter) -> Result<serde_json::Value, DataError> {
    let Finish {
        ctx,
        spec,
        io,
        session,
        rules,
        counts,
        staged,
        clean_schema,
        held,
        kept,
        inputs,
        source,
    } = f;
    let c = spec.contract;
    let rows_in = i64::try_from(counts.rows).unwrap_or(i64::MAX);
    let rows_failed = i64::try_from(counts.failed).unwrap_or(i64::MAX);
    let mut results = rule_results(rules, &counts.flags, counts.rows, None);

    // Dataset-level checks on the clean rows, read back from the stage.
    let rows_clean = rows_in - rows_failed;
    let clean_rows = session
        .read_parquet(
            format!("{}/", staged.dir().display()),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?;
    let clean_rows = clean_rows.into_view();
    session.register_table("clean_rows", clean_rows.clone())?;
    // `sql:` checks read the rows about to be published as `checked`.
    session.register_table("checked", clean_rows)?;
    let current = match &source.version {
        Some(v) => v.schema.clone().unwrap_or_default(),
        None => super::storage::schema_json(&clean_schema),
    };
    results.extend(
        dataset_results(
            io,
            session,
            c,
            (spec.input, spec.output),
            (rows_in, rows_clean),
            &counts.tallies,
            (&current, source.version.as_ref().map(|v| v.version)),
        )
        .await?,
    );
    if let Some(limit) = spec.max_quarantined {
        let exceeded = limit.exceeded_by(counts.failed, counts.rows);
        results.push(CheckResultRecord {
            name: CheckResultKind::MaxQuarantined.to_string(),
            kind: CheckResultKind::MaxQuarantined,
            column_name: None,
            passed: !exceeded,
            failed: i64::from(exceeded),
            observed: Some(rows_failed.to_string()),
            threshold: Some(limit.to_string()),
            severity: Severity::Error,
        });
    }

    // Quarantine always: the raw values and every reason, as a list.
    session.register_udf(super::reasons::udf(
        rules.iter().map(RowRule::reason).collect(),
    ));
    let mut q_cols: Vec<String> = c
        .columns
        .keys()
        .enumerate()
        .map(|(i, k)| format!("__raw_{i} AS {}", ident(k)))
        .collect();
    q_cols.extend(kept.iter().map(|k| ident(k)));
    let flags: Vec<String> = (0..rules.len()).map(|i| format!("__f{i}")).collect();
    q_cols.push(format!(
        "{}({}) AS _weir_errors",
        super::reasons::NAME,
        flags.join(", ")
    ));
    let held_df = session
        .read_parquet(
            format!("{}/", held.display()),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?;
    session.register_table("held", held_df.into_view())?;
    let quarantined = session
        .sql(&format!("SELECT {} FROM held", q_cols.join(", ")))
        .await?;
    let (q_staged, q_schema, q_rows) = io.write_staged(quarantined, spec.quarantine).await?;
    let rows_quarantined = i64::try_from(q_rows).unwrap_or(i64::MAX);
    let written_clean = i64::try_from(counts.clean_written).unwrap_or(i64::MAX);

    // Audit before publish: the rows must add up before anything is visible.
    if rows_in != written_clean + rows_quarantined {
        staged.discard().await;
        q_staged.discard().await;
        return Err(DataError::ChecksFailed(format!(
            "reconciliation failed: {rows_in} row(s) in but {written_clean} clean + {rows_quarantined} quarantined; nothing published"
        )));
    }

    // Write-audit-publish: the staged clean rows become a version only if
    // no error-severity dataset check failed. The versions and the quality
    // results are recorded in one transaction: all visible, or none.
    let blocking: Vec<&CheckResultRecord> = results
        .iter()
        .filter(|r| !r.passed && r.severity == Severity::Error && blocks(r))
        .collect();
    let publish = blocking.is_empty();
    // Each table stays locked until the catalog records its version.
    let (quarantine, _quarantine_table) = io
        .place(q_staged, q_schema, q_rows, &source.lineage)
        .await?;
    let (clean, _clean_table) = if publish {
        let (v, table) = io
            .place(staged, clean_schema, counts.clean_written, inputs)
            .await?;
        (Some(v), Some(table))
    } else {
        staged.discard().await;
        (None, None)
    };
    let recorded = io
        .record_validation(&NewValidation {
            quality: NewQuality {
                producer: ctx.claim.try_ref(),
                dataset: spec.input.to_string(),
                input_version: source.version.as_ref().map(|v| v.id),
                rows_in,
                rows_clean: written_clean,
                rows_quarantined,
                checks: results.clone(),
            },
            quarantine: Some(quarantine),
            clean,
        })
        .await?;
    io.apply_retention(spec.quarantine).await?;
    if publish {
        io.apply_retention(spec.output).await?;
    }
    let clean_version = recorded.clean;
    let _ = log
        .line(&format!(
            "weir: {}: {rows_in} row(s) in, {written_clean} clean, {rows_quarantined} quarantined",
            source.describe(spec.input)
        ))
        .await;
    let pii: Vec<String> = ctx
        .dag
        .tasks
        .get(ctx.claim.task_id.as_str())
        .and_then(|t| t.dataset_metadata(spec.output))
        .unwrap_or_else(|| spec.contract.metadata())
        .pii_columns();
    log_results(log, &results, &pii).await;
    match &clean_version {
        Some(v) => {
            let _ = log
                .line(&format!(
                    "weir: published {} version {} ({} rows)",
                    spec.output, v.version, written_clean
                ))
                .await;
            let mut out = super::published(v);
            out["rows_in"] = rows_in.into();
            out["quarantined"] = rows_quarantined.into();
            if let Some(q) = &recorded.quarantine {
                out["quarantine"] = super::published(q);
            }
            Ok(out)
        }
        None => Err(DataError::ChecksFailed(format!(
            "{} not published: {} failed",
            spec.output,
            names(blocking.iter().map(|r| r.name.as_str()))
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

    use super::*;
    use crate::data::compile::{Lookup, checked_query};

    fn table(columns: &[&str], rows: i64) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns
                .iter()
                .map(|_| Arc::new(Int64Array::from_iter_values(0..rows)) as _)
                .collect(),
        )
        .unwrap();
        Arc::new(MemTable::try_new(schema, vec![vec![batch.clone()], vec![batch]]).unwrap())
    }

    fn joins(plan: &Arc<dyn ExecutionPlan>, found: &mut Vec<(PartitionMode, String)>) {
        if let Some(j) = plan.downcast_ref::<HashJoinExec>() {
            found.push((*j.partition_mode(), format!("{:?}", j.join_type())));
        }
        for child in plan.children() {
            joins(child, found);
        }
    }

    #[tokio::test]
    async fn rows_stream_past_lookups_built_once() {
        // Collecting the rows as a join's build side held every checked row
        // in memory at once (10 GB for 10 M orders).
        let session = checks_session().unwrap();
        session
            .register_table("orders", table(&["id", "customer"], 50_000))
            .unwrap();
        session
            .register_table("customers", table(&["id"], 100))
            .unwrap();
        let lookups = [
            Lookup {
                query: "SELECT id, COUNT(*) AS __n FROM typed GROUP BY id HAVING COUNT(*) > 1"
                    .into(),
                alias: "__dup".into(),
                on: vec![("id".into(), "id".into())],
                column: "__dup.__n AS __pk_n".into(),
            },
            Lookup {
                query: "SELECT DISTINCT id AS k FROM customers".into(),
                alias: "__ref_1".into(),
                on: vec![("customer".into(), "k".into())],
                column: "__ref_1.k AS __ref_1".into(),
            },
        ];
        let sql = checked_query(
            "SELECT id, customer FROM orders",
            &lookups,
            &["__pk_n > 1 AS __f0".to_owned()],
        );
        let plan = session
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut found = Vec::new();
        joins(&plan, &mut found);
        assert_eq!(
            found,
            vec![
                (PartitionMode::CollectLeft, "Right".to_owned()),
                (PartitionMode::CollectLeft, "Right".to_owned())
            ],
            "{}",
            datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
    }
}
