//! A load's contract: every row of what the load is about to write must pass
//! its rules (or stay within their `max_failed`), and no error-severity
//! dataset check may fail, or nothing is written. Unlike validate it writes
//! no version: one aggregate query counts what each rule flags, and the
//! outcome is recorded as quality results of the input.

use weir_core::dag::{Contract, DatasetName, Threshold};
use weir_core::store::{CheckResultRecord, NewQuality, NewValidation};

use super::DataError;
use super::compile::{compile, names};
use super::storage::Io;
use super::validate::{
    Source, blocks, checks_session, dataset_results, input_columns, log_results, rule_results,
};
use crate::context::TryContext;
use crate::logs::LogWriter;

/// Checks `input` against `contract` before a load writes it.
pub async fn check(
    ctx: &TryContext,
    input: &DatasetName,
    contract: &Contract,
    io: &Io<'_>,
    log: &mut LogWriter,
) -> Result<(), DataError> {
    let session = checks_session()?;
    let v = io.register(&session, input).await?;
    for dataset in contract.referenced_datasets() {
        io.register(&session, dataset).await?;
    }
    let source = Source {
        lineage: vec![v.id],
        version: Some(v.clone()),
    };
    let table = session.table(input.to_string().as_str()).await?;
    let columns = input_columns(table.schema().as_arrow());
    let described = source.describe(input);
    let compiled = compile(contract, input, &described, &columns)?;
    let count = |col: &str| format!("CAST(SUM(CASE WHEN {col} THEN 1 ELSE 0 END) AS BIGINT)");
    let any = if compiled.flags.is_empty() {
        "FALSE".to_owned()
    } else {
        compiled.flags.join(" OR ")
    };
    let sums: Vec<String> = std::iter::once("CAST(COUNT(*) AS BIGINT)".to_owned())
        .chain(std::iter::once(count(&format!("({any})"))))
        .chain(compiled.flags.iter().map(|f| count(f)))
        .chain(compiled.tallies.iter().map(|m| count(m)))
        .collect();
    let batches = session
        .sql(&format!(
            "SELECT {} FROM ({}) AS __checked",
            sums.join(", "),
            compiled.sql
        ))
        .await
        .map_err(|e| DataError::Invalid(format!("the contract's checks do not compile: {e}")))?
        .collect()
        .await?;
    let counts: Vec<u64> = super::dataset_checks::ints(&batches)
        .into_iter()
        .map(|n| u64::try_from(n).unwrap_or(0))
        .collect();
    let at = |i: usize| counts.get(i).copied().unwrap_or(0);
    let (rows, failed) = (at(0), at(1));
    let flags: Vec<u64> = (0..compiled.flags.len()).map(|i| at(2 + i)).collect();
    let tallies: Vec<u64> = (0..compiled.tallies.len())
        .map(|i| at(2 + compiled.flags.len() + i))
        .collect();

    // A row that fails a rule without a tolerance holds the whole load back.
    let mut results = rule_results(&compiled.rules, &flags, rows, Some(Threshold::Count(0)));
    let rows_in = i64::try_from(rows).unwrap_or(i64::MAX);
    let rows_failed = i64::try_from(failed).unwrap_or(i64::MAX);
    session.register_table("clean_rows", table.clone().into_view())?;
    session.register_table("checked", table.into_view())?;
    results.extend(
        dataset_results(
            io,
            &session,
            contract,
            (input, input),
            (rows_in, rows_in - rows_failed),
            &tallies,
            (v.schema.as_deref().unwrap_or_default(), Some(v.version)),
        )
        .await?,
    );
    io.record_validation(&NewValidation {
        quality: NewQuality {
            producer: ctx.claim.try_ref(),
            dataset: input.to_string(),
            input_version: Some(v.id),
            rows_in,
            rows_clean: rows_in - rows_failed,
            rows_quarantined: rows_failed,
            checks: results.clone(),
        },
        quarantine: None,
        clean: None,
    })
    .await?;
    let _ = log
        .line(&format!(
            "weir: the load's contract on {described}: {rows} row(s), {failed} failing"
        ))
        .await;
    let pii = contract.metadata().pii_columns();
    log_results(log, &results, &pii).await;
    let blocking: Vec<&CheckResultRecord> = results
        .iter()
        .filter(|r| {
            !r.passed && r.severity == weir_core::dag::contract::Severity::Error && blocks(r)
        })
        .collect();
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(DataError::ChecksFailed(format!(
            "nothing loaded: {} failed",
            names(blocking.iter().map(|r| r.name.as_str()))
        )))
    }
}
