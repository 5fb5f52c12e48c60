//! `transform`: one SQL query (SELECT or WITH) over the input datasets,
//! registered under their names (`clean.orders`). Anything else (DDL, DML,
//! COPY, external tables, several statements) is refused before it runs.
//! With a `contract`, the query's rows are checked exactly as a validate
//! task checks its input before the output is published.

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use weir_core::dag::{DatasetName, OutputChecks};

use super::DataError;
use super::storage::{self, Io};
use crate::context::TryContext;
use crate::logs::LogWriter;

/// Refuses anything but one query.
pub fn check_query(query: &str) -> Result<(), DataError> {
    let statements =
        DFParser::parse_sql(query).map_err(|e| DataError::Invalid(format!("sql: {e}")))?;
    if statements.len() != 1 {
        return Err(DataError::Invalid(format!(
            "sql: a transform is one query; found {} statements",
            statements.len()
        )));
    }
    match statements.front() {
        Some(DFStatement::Statement(s)) if matches!(s.as_ref(), Statement::Query(_)) => Ok(()),
        Some(other) => {
            let text = other.to_string();
            let word = text
                .split_whitespace()
                .next()
                .unwrap_or("this statement")
                .to_uppercase();
            Err(DataError::Invalid(format!(
                "sql: only SELECT or WITH queries are allowed in a transform; {word} is refused"
            )))
        }
        None => Err(DataError::Invalid("sql: the query is empty".into())),
    }
}

/// A transform task: what it reads, runs and writes.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The datasets read.
    pub inputs: &'a [DatasetName],
    /// The rendered query.
    pub query: &'a str,
    /// The dataset written.
    pub output: &'a DatasetName,
    /// The contract the output is checked with, if any.
    pub checks: Option<&'a OutputChecks>,
}

/// Runs a transform task.
pub async fn run(
    ctx: &TryContext,
    spec: Spec<'_>,
    io: &Io<'_>,
    log: &mut LogWriter,
) -> Result<serde_json::Value, DataError> {
    let Spec {
        inputs,
        query,
        output,
        checks,
    } = spec;
    check_query(query)?;
    io.trail().query(query, "datafusion");
    let session = match checks {
        Some(_) => super::validate::checks_session()?,
        None => storage::session()?,
    };
    let mut versions = Vec::new();
    for input in inputs {
        versions.push(io.register(&session, input).await?.id);
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = session
        .sql_with_options(query, options)
        .await
        .map_err(|e| DataError::Invalid(format!("sql: {e}")))?;
    if let Some(checks) = checks {
        // The query becomes the checked table; it runs as the checks read it.
        session.register_table(output.to_string().as_str(), df.into_view())?;
        let spec = super::validate::Spec {
            input: output,
            contract: &checks.contract,
            output,
            quarantine: &checks.quarantine,
            max_quarantined: checks.max_quarantined,
        };
        let source = super::validate::Source {
            version: None,
            lineage: versions,
        };
        return super::validate::check(ctx, spec, &session, source, io, log).await;
    }
    let v = io.write(df, output, &versions).await?;
    let _ = log
        .line(&format!(
            "weir: wrote {} version {} ({} rows) from {}",
            output,
            v.version,
            v.rows.unwrap_or(0),
            inputs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await;
    Ok(super::published(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_pass() {
        assert!(check_query("select 1").is_ok());
        assert!(check_query("with a as (select 1 as x) select x from a").is_ok());
        for bad in [
            "create table t as select 1",
            "drop table clean.orders",
            "insert into t values (1)",
            "copy (select 1) to '/tmp/x.csv'",
            "create external table t stored as csv location '/etc/passwd'",
            "select 1; select 2",
            "set datafusion.execution.batch_size = 1",
        ] {
            let e = check_query(bad).unwrap_err().to_string();
            assert!(e.starts_with("sql:"), "{bad}: {e}");
        }
    }
}
