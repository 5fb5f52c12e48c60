//! The data plane: extract, validate, transform and load tasks, all data
//! work done by Apache DataFusion over Arrow. Datasets are immutable Parquet
//! versions under `<data_dir>/<zone>/<name>/v=<n>/` (a local folder or an
//! S3 prefix, see [`home`]), recorded in the catalog
//! with their schema, size and lineage; each dataset's folder is a Delta
//! Lake table whose commits are those versions.

mod blank;
mod compile;
mod csv_repair;
mod dataset_checks;
mod decimal;
pub mod delta;
pub mod erase;
mod extract;
mod gate;
pub mod home;
mod load;
pub mod migrate;
mod patterns;
pub mod preview;
mod query_source;
mod reasons;
pub mod retention;
pub mod split;
pub mod sql;
pub mod storage;
mod transform;
mod validate;
pub mod verify;

use weir_core::dag::{Task, TaskKind};

use crate::context::TryContext;
use crate::logs::LogWriter;
use crate::resources::Resources;

/// A data task failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// DataFusion or Arrow failed (a bad file, a bad query, …).
    #[error("{0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The catalog failed.
    #[error("catalog: {0}")]
    Store(#[from] weir_core::store::Error),
    /// The target database failed.
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    /// The task's input or settings are not usable; the message names what.
    #[error("{0}")]
    Invalid(String),
    /// Checks failed; the outputs that could be written were written.
    #[error("{0}")]
    ChecksFailed(String),
}

impl From<crate::resources::ConnectionError> for DataError {
    fn from(e: crate::resources::ConnectionError) -> Self {
        DataError::Invalid(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for DataError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        DataError::Engine(e.into())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for DataError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        DataError::Engine(e.into())
    }
}

impl DataError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DataError {
        let what = what.into();
        move |source| DataError::Io { what, source }
    }
}

/// What a data task publishes as its output (`tasks.<id>.output`): the
/// dataset version it wrote and its rows.
pub fn published(v: &weir_core::store::DatasetVersionRecord) -> serde_json::Value {
    serde_json::json!({ "dataset": v.dataset, "version": v.version, "rows": v.rows })
}

/// Runs a data task; `render` renders a template field; `trail` keeps what
/// it read and wrote. Its output says what it wrote.
pub async fn run(
    ctx: &TryContext,
    task: &Task,
    env: &Resources,
    trail: &crate::lineage::Trail,
    log: &mut LogWriter,
    render: &(dyn Fn(&str, &str) -> Result<String, String> + Sync),
) -> Result<serde_json::Value, DataError> {
    let io = storage::Io::new(env, ctx, trail);
    match &task.kind {
        TaskKind::Extract { source, output } => {
            extract::run(ctx, source, output, &io, log, render).await
        }
        TaskKind::Validate {
            input,
            output,
            checks,
        } => {
            validate::run(
                ctx,
                validate::Spec {
                    input,
                    contract: &checks.contract,
                    output,
                    quarantine: &checks.quarantine,
                    max_quarantined: checks.max_quarantined,
                },
                &io,
                log,
            )
            .await
        }
        TaskKind::Transform {
            inputs,
            sql,
            output,
            checks,
            ..
        } => {
            let query = render("sql", sql).map_err(DataError::Invalid)?;
            let spec = transform::Spec {
                inputs,
                query: &query,
                output,
                checks: checks.as_deref(),
            };
            transform::run(ctx, spec, &io, log).await
        }
        TaskKind::Load {
            input,
            target,
            contract,
            ..
        } => {
            if let Some(contract) = contract {
                gate::check(ctx, input, contract, &io, log).await?;
            }
            load::run(ctx, input, target, &io, log, render).await
        }
        other => Err(DataError::Invalid(format!(
            "{} is not a data task",
            other.name().as_str()
        ))),
    }
}
