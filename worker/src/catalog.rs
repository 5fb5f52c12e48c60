//! What sensors and data tasks ask of weir's state: dataset versions,
//! quality records, whether a run ended, a task instance's tries. A local
//! pool answers from the store; a remote worker asks its API server, under
//! the try's lease ([`crate::remote`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use weir_core::store::{
    DatasetVersionRecord, NewDatasetVersion, NewValidation, RecordedValidation, Result, Store,
    TryRecord,
};

/// The catalog as tries see it.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// The version of `dataset` a run wrote.
    async fn dataset_version_of_run(
        &self,
        dataset: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<DatasetVersionRecord>>;
    /// The newest version of `dataset`.
    async fn latest_dataset_version(&self, dataset: &str) -> Result<Option<DatasetVersionRecord>>;
    /// Every version of `dataset` (or of every dataset).
    async fn dataset_versions(&self, dataset: Option<&str>) -> Result<Vec<DatasetVersionRecord>>;
    /// Records a dataset version.
    async fn record_dataset_version(
        &self,
        v: &NewDatasetVersion,
        at: DateTime<Utc>,
    ) -> Result<DatasetVersionRecord>;
    /// Records a validate try's outcome in one transaction.
    async fn record_validation(
        &self,
        v: &NewValidation,
        at: DateTime<Utc>,
    ) -> Result<RecordedValidation>;
    /// Records that retention deleted a version.
    async fn mark_version_deleted(&self, id: i64, actor: &str, at: DateTime<Utc>) -> Result<()>;
    /// Whether a run has ended.
    async fn run_finished(&self, dag_id: &str, run_id: &str) -> Result<bool>;
    /// The tries of a task instance.
    async fn list_tries(&self, ti_id: &str) -> Result<Vec<TryRecord>>;
}

/// The catalog of a process that holds the store itself.
#[derive(Debug, Clone)]
pub struct LocalCatalog(pub Arc<dyn Store>);

#[async_trait::async_trait]
impl Catalog for LocalCatalog {
    async fn dataset_version_of_run(
        &self,
        dataset: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<DatasetVersionRecord>> {
        self.0.dataset_version_of_run(dataset, dag_id, run_id).await
    }
    async fn latest_dataset_version(&self, dataset: &str) -> Result<Option<DatasetVersionRecord>> {
        self.0.latest_dataset_version(dataset).await
    }
    async fn dataset_versions(&self, dataset: Option<&str>) -> Result<Vec<DatasetVersionRecord>> {
        self.0.dataset_versions(dataset).await
    }
    async fn record_dataset_version(
        &self,
        v: &NewDatasetVersion,
        at: DateTime<Utc>,
    ) -> Result<DatasetVersionRecord> {
        self.0.record_dataset_version(v, at).await
    }
    async fn record_validation(
        &self,
        v: &NewValidation,
        at: DateTime<Utc>,
    ) -> Result<RecordedValidation> {
        self.0.record_validation(v, at).await
    }
    async fn mark_version_deleted(&self, id: i64, actor: &str, at: DateTime<Utc>) -> Result<()> {
        self.0.mark_version_deleted(id, actor, at).await
    }
    async fn run_finished(&self, dag_id: &str, run_id: &str) -> Result<bool> {
        Ok(self.0.get_run(dag_id, run_id).await?.state.is_finished())
    }
    async fn list_tries(&self, ti_id: &str) -> Result<Vec<TryRecord>> {
        self.0.list_tries(ti_id).await
    }
}
