//! Pages of a version's rows for people to look at: the quarantine view of
//! the UI, filtered by reason, with how often each reason occurs. Counting,
//! filtering and paging are DataFusion plans; only the page's few rows are
//! turned into text.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::prelude::{DataFrame, col, lit};
use datafusion_functions_nested::expr_fn::array_has;
use weir_core::catalog::{ReadError, RowPage, RowQuery, RowReader};
use weir_core::store::DatasetVersionRecord;

use super::storage;

/// The column a quarantine holds each row's reasons in.
pub const REASONS: &str = "_weir_errors";

/// Reads versions with DataFusion.
#[derive(Debug, Clone, Copy, Default)]
pub struct Preview;

#[async_trait::async_trait]
impl RowReader for Preview {
    async fn rows(
        &self,
        version: &DatasetVersionRecord,
        query: &RowQuery,
    ) -> Result<RowPage, ReadError> {
        let fail = |e: &dyn std::fmt::Display| {
            ReadError(format!(
                "reading dataset `{}` version {}: {e}",
                version.dataset, version.version
            ))
        };
        let session = storage::session().map_err(|e| fail(&e))?;
        let df = storage::read_version(&session, version)
            .await
            .map_err(|e| fail(&e))?;
        page(df, query).await.map_err(|e| fail(&e))
    }
}

async fn page(df: DataFrame, query: &RowQuery) -> datafusion::error::Result<RowPage> {
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let has_reasons = columns.iter().any(|c| c == REASONS);
    let reasons = if has_reasons {
        reason_counts(df.clone()).await?
    } else {
        Vec::new()
    };
    let matching = match (&query.reason, has_reasons) {
        (Some(r), true) => df.filter(array_has(col(REASONS), lit(r.as_str())))?,
        (Some(_), false) => df.limit(0, Some(0))?,
        (None, _) => df,
    };
    let total = matching.clone().count().await?;
    let batches = matching
        .limit(query.offset, Some(query.limit))?
        .collect()
        .await?;
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(as_text(b)?);
    }
    Ok(RowPage {
        columns,
        rows,
        matching: u64::try_from(total).unwrap_or(u64::MAX),
        reasons,
    })
}

/// Each reason with its number of rows, most frequent first.
async fn reason_counts(df: DataFrame) -> datafusion::error::Result<Vec<(String, u64)>> {
    let counted = df
        .select(vec![col(REASONS)])?
        .unnest_columns(&[REASONS])?
        .aggregate(vec![col(REASONS)], vec![count(lit(1)).alias("n")])?
        .sort(vec![
            col("n").sort(false, false),
            col(REASONS).sort(true, false),
        ])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &counted {
        for row in as_text(b)? {
            if let [Some(reason), Some(n)] = row.as_slice() {
                out.push((reason.clone(), n.parse().unwrap_or(0)));
            }
        }
    }
    Ok(out)
}

/// A batch's rows as text, `None` for nulls (the page shown, a few rows).
fn as_text(
    batch: &RecordBatch,
) -> Result<Vec<Vec<Option<String>>>, datafusion::arrow::error::ArrowError> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                .collect()
        })
        .collect())
}
