//! `weir datasets erase`: the rows a condition matches removed from every
//! kept version of datasets, for deletion requests. Each version is
//! rewritten into a new folder beside it, flushed to disk, then the catalog
//! is pointed at it (audited, with the condition and the rows erased) and
//! the old folder removed: a reader sees the old version or the new one,
//! and a crash leaves at most a folder `weir datasets verify` reports.
//! Where the dataset's Delta table holds the version's files, a Delta
//! commit replaces them by the rewrite first.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, Expr, SessionContext};
use weir_core::store::{DatasetVersionRecord, ErasedVersion, Store};

use super::DataError;
use super::home::{Home, Place};
use super::{delta, storage};

/// What an erasure found (or did) in one kept version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// `zone.name`.
    pub dataset: String,
    /// weir's version number.
    pub version: i64,
    /// Rows the condition matched: erased, or that would be.
    pub matched: u64,
    /// Rows the version holds now (before, on a dry run).
    pub rows: i64,
}

/// Erases the rows where `condition` (SQL over the dataset's columns) is
/// true from every kept version of each of `datasets` (in `home`); with
/// `dry_run`, only counts them. Versions without a match are not touched.
pub async fn erase(
    store: &dyn Store,
    home: &Home,
    datasets: &[String],
    condition: &str,
    actor: &str,
    dry_run: bool,
) -> Result<Vec<Erased>, DataError> {
    if condition.trim().is_empty() {
        return Err(DataError::Invalid(
            "--where needs a condition, like \"customer_id = 42\"".into(),
        ));
    }
    let mut plan: Vec<DatasetVersionRecord> = Vec::new();
    for name in datasets {
        let kept: Vec<DatasetVersionRecord> = store
            .dataset_versions(Some(name))
            .await?
            .into_iter()
            .filter(|v| v.deleted_at.is_none() && v.path.is_some())
            .collect();
        if kept.is_empty() {
            return Err(DataError::Invalid(format!(
                "dataset `{name}` has no kept version: `weir datasets list` shows the datasets"
            )));
        }
        plan.extend(kept);
    }
    let mut out = Vec::new();
    for v in &plan {
        out.push(erase_version(store, home, v, condition, actor, dry_run).await?);
    }
    Ok(out)
}

async fn erase_version(
    store: &dyn Store,
    home: &Home,
    v: &DatasetVersionRecord,
    condition: &str,
    actor: &str,
    dry_run: bool,
) -> Result<Erased, DataError> {
    let session = storage::session()?;
    let df = storage::read_version(&session, v).await?;
    let matches = parse(&session, &df, condition, v)?;
    let matched = df.clone().filter(matches.clone())?.count().await?;
    let rows_before = v.rows.unwrap_or(0);
    let found = Erased {
        dataset: v.dataset.clone(),
        version: v.version,
        matched: matched as u64,
        rows: rows_before,
    };
    if matched == 0 || dry_run {
        return Ok(found);
    }
    let old = Place::parse(v.path.as_deref().unwrap_or_default());
    let folder = old
        .parent()
        .ok_or_else(|| DataError::Invalid(format!("{old}: a version has a folder")))?;
    // Rows where the condition is false or unknown stay.
    let kept = df.filter(!matches.is_true())?;
    let schema: SchemaRef = Arc::new(kept.schema().as_arrow().clone());
    // Written beside the version, or for object storage in the staging
    // folder, then moved into place as a new version folder.
    let tmp = match &folder {
        Place::Local(dir) => dir.clone(),
        Place::Object(_) => home.local_dir().to_path_buf(),
    }
    .join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let written = match write(kept, &tmp, schema).await {
        Ok(rows) => rows,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
    };
    let files = delta::adds_of(&tmp).await?;
    let (dest, bytes) = folder.settle(&tmp, v.version).await?;
    // Where the table's snapshot holds the version's files, one Delta commit
    // puts the rewrite in their place; the version's older Delta history
    // stops reading once the old files go, as an erasure must.
    let _table = delta::lock(&folder).await;
    let committed = delta::replace(
        &folder,
        &[old.name()],
        Some((&dest.name(), files)),
        Some(condition.to_owned()),
    )
    .await?;
    let rewritten = ErasedVersion {
        path: dest.to_string(),
        rows: i64::try_from(written).unwrap_or(i64::MAX),
        bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
        erased: i64::try_from(matched).unwrap_or(i64::MAX),
        condition: condition.to_owned(),
        delta_version: committed,
    };
    if let Err(e) = store
        .record_erasure(v.id, &rewritten, actor, chrono::Utc::now())
        .await
    {
        let _ = dest.remove().await;
        return Err(e.into());
    }
    old.remove().await.map_err(|e| {
        DataError::Invalid(format!("removing the erased rows' old files {old}: {e}"))
    })?;
    Ok(Erased {
        rows: rewritten.rows,
        ..found
    })
}

/// The condition as an expression over the version's columns.
fn parse(
    session: &SessionContext,
    df: &DataFrame,
    condition: &str,
    v: &DatasetVersionRecord,
) -> Result<Expr, DataError> {
    session.parse_sql_expr(condition, df.schema()).map_err(|e| {
        DataError::Invalid(format!(
            "--where `{condition}` on `{}` version {}: {e}",
            v.dataset, v.version
        ))
    })
}

/// Writes `df` as Parquet into `dir` (a file with the schema if no row is
/// left); answers the rows written.
async fn write(df: DataFrame, dir: &Path, schema: SchemaRef) -> Result<u64, DataError> {
    let counts = df
        .write_parquet(
            &format!("{}/", dir.display()),
            DataFrameWriteOptions::new(),
            None,
        )
        .await?;
    storage::ensure_file(dir, schema).await?;
    Ok(storage::rows_written(&counts))
}
