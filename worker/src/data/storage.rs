//! Reading and writing dataset versions. A version is written to a hidden
//! temporary folder, moved to `v=<n>` (renamed and flushed, or uploaded to
//! object storage), committed to the dataset's Delta table and only then
//! recorded in the catalog: readers go through the catalog (or the Delta
//! log), so they never see a partial version, and a crash leaves at most an
//! unrecorded folder behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::file_options::parquet_writer::ParquetWriterOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};
use weir_core::dag::{DatasetName, Zone};
use weir_core::store::{
    DatasetVersionRecord, NewDatasetVersion, NewValidation, RecordedValidation,
};

use super::home::Place;
use super::{DataError, delta};
use crate::context::TryContext;
use crate::resources::Resources;

/// Dataset access for one try.
#[derive(Debug)]
pub struct Io<'a> {
    env: &'a Resources,
    ctx: &'a TryContext,
    trail: &'a crate::lineage::Trail,
}

/// A new DataFusion session with a schema per zone, so datasets register
/// under their names (`clean.orders`).
pub fn session() -> Result<SessionContext, DataError> {
    session_with(SessionConfig::new())
}

/// [`session`] with settings of the caller's.
pub fn session_with(config: SessionConfig) -> Result<SessionContext, DataError> {
    let config = config.with_information_schema(false);
    let session = SessionContext::new_with_config(config);
    for udf in super::patterns::udfs() {
        session.register_udf(udf);
    }
    session.register_udf(super::blank::udf());
    session.register_udf(super::decimal::udf());
    let catalog = session
        .catalog("datafusion")
        .ok_or_else(|| DataError::Invalid("DataFusion has no default catalog".into()))?;
    for zone in Zone::ALL {
        catalog.register_schema(zone.as_str(), Arc::new(MemorySchemaProvider::new()))?;
    }
    for (url, store) in super::home::registered() {
        session.register_object_store(&url, store);
    }
    Ok(session)
}

impl<'a> Io<'a> {
    /// Access for `ctx`'s try, keeping what it reads and writes in `trail`.
    pub fn new(env: &'a Resources, ctx: &'a TryContext, trail: &'a crate::lineage::Trail) -> Self {
        Io { env, ctx, trail }
    }

    /// What this try read and wrote so far.
    pub fn trail(&self) -> &crate::lineage::Trail {
        self.trail
    }

    /// The try.
    pub fn ctx(&self) -> &TryContext {
        self.ctx
    }

    /// The data plane's settings.
    pub fn env(&self) -> &Resources {
        self.env
    }

    /// The version a task of this run reads: the one this run wrote, else the newest.
    pub async fn resolve(&self, dataset: &DatasetName) -> Result<DatasetVersionRecord, DataError> {
        let name = dataset.to_string();
        let store = &self.env.store;
        let pinned = store
            .dataset_version_of_run(&name, &self.ctx.claim.dag_id, &self.ctx.claim.run_id)
            .await?;
        let v = match pinned {
            Some(v) => v,
            None => store.latest_dataset_version(&name).await?.ok_or_else(|| {
                DataError::Invalid(format!(
                    "dataset `{name}` has no version yet: run the task that writes it first"
                ))
            })?,
        };
        self.trail.read(&v);
        Ok(v)
    }

    /// Registers the version of `dataset` this run reads under its name; returns the version.
    pub async fn register(
        &self,
        session: &SessionContext,
        dataset: &DatasetName,
    ) -> Result<DatasetVersionRecord, DataError> {
        let v = self.resolve(dataset).await?;
        let df = read_version(session, &v).await?;
        session.register_table(dataset.to_string().as_str(), df.into_view())?;
        Ok(v)
    }

    /// Writes `df` as the next version of `dataset`, made from `inputs`.
    pub async fn write(
        &self,
        df: DataFrame,
        dataset: &DatasetName,
        inputs: &[i64],
    ) -> Result<DatasetVersionRecord, DataError> {
        let (staged, schema, rows) = self.write_staged(df, dataset).await?;
        self.publish(staged, schema, rows, inputs).await
    }

    /// Writes `df` into a staged folder of `dataset`, not yet a version;
    /// returns it with its schema and row count.
    pub async fn write_staged(
        &self,
        df: DataFrame,
        dataset: &DatasetName,
    ) -> Result<(Staged, SchemaRef, u64), DataError> {
        let staged = self.stage(dataset).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let counts = df
            .write_parquet(
                &format!("{}/", staged.dir.display()),
                DataFrameWriteOptions::new(),
                None,
            )
            .await?;
        Ok((staged, schema, rows_written(&counts)))
    }

    /// A hidden folder for the next version of `dataset`, invisible to
    /// readers until [`Io::publish`] renames and records it.
    pub async fn stage(&self, dataset: &DatasetName) -> Result<Staged, DataError> {
        let (zone, name) = (dataset.zone().as_str(), dataset.name());
        let folder = self.env.home.local_dir().join(zone).join(name);
        tokio::fs::create_dir_all(&folder)
            .await
            .map_err(DataError::io(format!("creating {}", folder.display())))?;
        let dir = folder.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(DataError::io(format!("creating {}", dir.display())))?;
        Ok(Staged {
            dataset: dataset.clone(),
            table: self.env.home.table(zone, name),
            dir,
        })
    }

    /// Makes a staged folder of `rows` rows the next version of its
    /// dataset, made from `inputs`: renamed into place, then recorded.
    pub async fn publish(
        &self,
        staged: Staged,
        schema: SchemaRef,
        rows: u64,
        inputs: &[i64],
    ) -> Result<DatasetVersionRecord, DataError> {
        let dataset = staged.dataset.clone();
        let (new, _table) = self.place(staged, schema, rows, inputs).await?;
        let v = self
            .env
            .store
            .record_dataset_version(&new, self.env.clock.now())
            .await?;
        self.trail.wrote(&v);
        self.apply_retention(&dataset).await?;
        Ok(v)
    }

    /// Moves a staged folder to its version's place (`v=<n>`, see
    /// [`Place::settle`]), commits it to the dataset's Delta table and
    /// describes the version to record;
    /// the table stays locked until the guard answered is dropped, after
    /// the catalog recorded the version. weir's readers find versions
    /// through the catalog, never by listing folders.
    pub async fn place(
        &self,
        staged: Staged,
        schema: SchemaRef,
        rows: u64,
        inputs: &[i64],
    ) -> Result<(NewDatasetVersion, delta::TableGuard), DataError> {
        let Staged {
            dataset,
            table,
            dir: tmp,
        } = staged;
        ensure_file(&tmp, schema.clone()).await?;
        let files = delta::adds_of(&tmp).await?;
        let next = self
            .env
            .store
            .latest_dataset_version(&dataset.to_string())
            .await?
            .map(|v| v.version + 1)
            .unwrap_or(1);
        let (final_dir, bytes) = table.settle(&tmp, next).await?;
        let guard = delta::lock(&table).await;
        let name = dataset.to_string();
        let delta_version = delta::commit_version(
            &table,
            &final_dir.name(),
            files,
            &schema,
            delta::Mode::of(dataset.zone()),
            &name,
        )
        .await?;
        let new = NewDatasetVersion {
            dataset: dataset.to_string(),
            producer: Some(self.ctx.claim.try_ref()),
            rows: Some(i64::try_from(rows).unwrap_or(i64::MAX)),
            path: Some(final_dir.to_string()),
            schema: Some(schema_json(&schema)),
            bytes: Some(i64::try_from(bytes).unwrap_or(i64::MAX)),
            inputs: inputs.to_vec(),
            delta_version: Some(delta_version),
        };
        Ok((new, guard))
    }

    /// Records a validation's outcome and the versions it writes, in one
    /// transaction.
    pub async fn record_validation(
        &self,
        v: &NewValidation,
    ) -> Result<RecordedValidation, DataError> {
        let recorded = self
            .env
            .store
            .record_validation(v, self.env.clock.now())
            .await?;
        self.trail.quality(&v.quality);
        for w in recorded.quarantine.iter().chain(&recorded.clean) {
            self.trail.wrote(w);
        }
        Ok(recorded)
    }

    /// Deletes the versions of `dataset` its retention no longer keeps.
    pub async fn apply_retention(&self, dataset: &DatasetName) -> Result<(), DataError> {
        let gone = super::retention::apply(self.env, dataset).await?;
        if !gone.is_empty() {
            tracing::info!(dataset = %dataset, "retention deleted version(s) {gone:?}");
        }
        Ok(())
    }

    /// A scratch folder under the data folder for one task's intermediate
    /// files; the caller removes it.
    pub async fn scratch(&self, purpose: &str) -> Result<PathBuf, DataError> {
        let dir = self
            .env
            .home
            .local_dir()
            .join(format!(".{purpose}-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(DataError::io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }
}

/// A version being written: a hidden local folder beside the dataset's
/// versions (in the staging folder, for object storage).
#[derive(Debug)]
pub struct Staged {
    dataset: DatasetName,
    table: Place,
    dir: PathBuf,
}

impl Staged {
    /// The folder to write the version's Parquet files into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the staged files: the version is not published.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

/// The session's Parquet writer settings (codec, row group size), for
/// files written outside DataFusion's own writer.
pub fn parquet_properties(session: &SessionContext) -> Result<WriterProperties, DataError> {
    let mut options = session.state().table_options().parquet.clone();
    // The Arrow writer embeds the schema itself.
    options.global.skip_arrow_metadata = true;
    Ok(ParquetWriterOptions::try_from(&options)?
        .writer_options()
        .clone())
}

/// The rows a DataFusion write reports it wrote.
pub(crate) fn rows_written(counts: &[datafusion::arrow::array::RecordBatch]) -> u64 {
    counts
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|c| c.values().iter().sum::<u64>())
        })
        .sum()
}

/// Reads a recorded version.
pub async fn read_version(
    session: &SessionContext,
    v: &DatasetVersionRecord,
) -> Result<DataFrame, DataError> {
    let path = v.path.as_deref().ok_or_else(|| {
        DataError::Invalid(format!(
            "dataset `{}` version {} has no files",
            v.dataset, v.version
        ))
    })?;
    let gone = match Place::parse(path) {
        Place::Local(dir) => !tokio::fs::try_exists(&dir).await.unwrap_or(false),
        Place::Object(_) => false,
    };
    if v.deleted_at.is_some() || gone {
        return Err(DataError::Invalid(format!(
            "dataset `{}` version {} is gone from {path} (deleted by retention?)",
            v.dataset, v.version
        )));
    }
    Ok(session
        .read_parquet(format!("{path}/"), ParquetReadOptions::default())
        .await?)
}

/// An empty result writes no file; write one with the schema so the version reads back.
pub(crate) async fn ensure_file(dir: &Path, schema: SchemaRef) -> Result<(), DataError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), DataError> {
        std::fs::create_dir_all(&dir)
            .map_err(DataError::io(format!("creating {}", dir.display())))?;
        let has_file = std::fs::read_dir(&dir)
            .map_err(DataError::io(format!("reading {}", dir.display())))?
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"));
        if has_file {
            return Ok(());
        }
        let path = dir.join("part-0.parquet");
        let file = std::fs::File::create(&path)
            .map_err(DataError::io(format!("creating {}", path.display())))?;
        let writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None)
            .map_err(|e| DataError::Invalid(format!("writing {}: {e}", path.display())))?;
        writer
            .close()
            .map_err(|e| DataError::Invalid(format!("writing {}: {e}", path.display())))?;
        Ok(())
    })
    .await
    .map_err(|e| DataError::Invalid(format!("writing a version: {e}")))?
}

/// A schema as JSON: `[{"name", "type", "nullable"}]`.
pub fn schema_json(schema: &datafusion::arrow::datatypes::Schema) -> String {
    serde_json::Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
            .collect(),
    )
    .to_string()
}
