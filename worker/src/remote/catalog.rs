//! The catalog of a try on a remote worker: every call goes to the API
//! server under the try's lease, so a try whose lease lapsed records nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use weir_core::protocol::{CatalogCall, Lease};
use weir_core::store::{
    DatasetVersionRecord, Error, NewDatasetVersion, NewValidation, RecordedValidation, Result,
    TryRecord,
};

use super::client::Client;
use crate::catalog::Catalog;

/// The catalog as one remote try reaches it.
#[derive(Debug, Clone)]
pub struct RemoteCatalog {
    /// The server.
    pub client: Client,
    /// The try's lease.
    pub lease: Lease,
    /// How long a call is retried while the server cannot be reached.
    pub give_up: Duration,
}

impl RemoteCatalog {
    async fn ask<R: DeserializeOwned>(&self, call: CatalogCall) -> Result<R> {
        self.client
            .catalog(&self.lease, call, self.give_up)
            .await
            .map_err(|e| Error::Remote(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Catalog for RemoteCatalog {
    async fn dataset_version_of_run(
        &self,
        dataset: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<DatasetVersionRecord>> {
        self.ask(CatalogCall::DatasetVersionOfRun {
            dataset: dataset.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        })
        .await
    }
    async fn latest_dataset_version(&self, dataset: &str) -> Result<Option<DatasetVersionRecord>> {
        self.ask(CatalogCall::LatestDatasetVersion {
            dataset: dataset.to_owned(),
        })
        .await
    }
    async fn dataset_versions(&self, dataset: Option<&str>) -> Result<Vec<DatasetVersionRecord>> {
        self.ask(CatalogCall::DatasetVersions {
            dataset: dataset.map(str::to_owned),
        })
        .await
    }
    async fn record_dataset_version(
        &self,
        v: &NewDatasetVersion,
        _at: DateTime<Utc>,
    ) -> Result<DatasetVersionRecord> {
        self.ask(CatalogCall::RecordDatasetVersion { version: v.clone() })
            .await
    }
    async fn record_validation(
        &self,
        v: &NewValidation,
        _at: DateTime<Utc>,
    ) -> Result<RecordedValidation> {
        self.ask(CatalogCall::RecordValidation {
            validation: Box::new(v.clone()),
        })
        .await
    }
    async fn mark_version_deleted(&self, id: i64, _actor: &str, _at: DateTime<Utc>) -> Result<()> {
        self.ask(CatalogCall::MarkVersionDeleted { id }).await
    }
    async fn run_finished(&self, dag_id: &str, run_id: &str) -> Result<bool> {
        self.ask(CatalogCall::RunFinished {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        })
        .await
    }
    async fn list_tries(&self, _ti_id: &str) -> Result<Vec<TryRecord>> {
        self.ask(CatalogCall::Tries).await
    }
}
