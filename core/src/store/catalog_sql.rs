//! The SQL of [`super::CatalogStore`]: dataset versions, lineage, quality
//! results and retention, shared by both backends.

/// Numbers and inserts a version of `$v.dataset` (a `NewDatasetVersion`)
/// inside transaction `$tx`, serialised with other writers of versions;
/// evaluates to the record.
macro_rules! insert_dataset_version {
    ($tx:ident, $v:expr, $at:expr) => {{
        lock(&mut *$tx, $crate::store::sql::DATASET_LOCK).await?;
        let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset = $1")
            .bind(&$v.dataset)
            .fetch_one(&mut *$tx)
            .await?;
        let (dag, run, task, try_number) = match &$v.producer {
            Some(p) => (Some(p.dag_id.as_str()), Some(p.run_id.as_str()), Some(p.task_id.as_str()), Some(p.try_number)),
            None => (None, None, None, None),
        };
        let rec: $crate::store::DatasetVersionRecord = sqlx::query_as(
            "INSERT INTO dataset_versions (dataset, version, dag_id, run_id, task_id, try_number, rows, path, created_at, \
               schema, bytes, inputs, delta_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *",
        )
        .bind(&$v.dataset)
        .bind(next)
        .bind(dag)
        .bind(run)
        .bind(task)
        .bind(try_number)
        .bind($v.rows)
        .bind(&$v.path)
        .bind($at)
        .bind(&$v.schema)
        .bind($v.bytes)
        .bind(serde_json::json!($v.inputs).to_string())
        .bind($v.delta_version)
        .fetch_one(&mut *$tx)
        .await?;
        rec
    }};
}

/// Implements [`super::CatalogStore`] for `$store` (see `impl_store!`).
macro_rules! impl_catalog_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::CatalogStore for $store {
            async fn dataset_version_of_run(
                &self,
                dataset: &str,
                dag_id: &str,
                run_id: &str,
            ) -> $crate::store::Result<Option<$crate::store::DatasetVersionRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM dataset_versions WHERE dataset = $1 AND dag_id = $2 AND run_id = $3 \
                       AND deleted_at IS NULL ORDER BY version DESC LIMIT 1",
                )
                .bind(dataset)
                .bind(dag_id)
                .bind(run_id)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn dataset_versions(
                &self,
                dataset: Option<&str>,
            ) -> $crate::store::Result<Vec<$crate::store::DatasetVersionRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM dataset_versions WHERE ($1 IS NULL OR dataset = $1) ORDER BY dataset, version",
                )
                .bind(dataset)
                .fetch_all(self.reader())
                .await?)
            }

            async fn get_dataset_version(&self, id: i64) -> $crate::store::Result<$crate::store::DatasetVersionRecord> {
                sqlx::query_as("SELECT * FROM dataset_versions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("dataset version {id}")))
            }

            async fn move_version_paths(&self, from: &str, to: &str) -> $crate::store::Result<u64> {
                let from = format!("{}/", from.trim_end_matches('/'));
                let to = format!("{}/", to.trim_end_matches('/'));
                let width = i32::try_from(from.chars().count()).unwrap_or(i32::MAX);
                let mut tx = self.tx().await?;
                let moved = sqlx::query(
                    "UPDATE dataset_versions SET path = $1 || substr(path, $2 + 1) WHERE substr(path, 1, $2) = $3",
                )
                .bind(&to)
                .bind(width)
                .bind(&from)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(moved)
            }

            async fn set_delta_version(&self, id: i64, delta_version: Option<i64>) -> $crate::store::Result<()> {
                sqlx::query("UPDATE dataset_versions SET delta_version = $1 WHERE id = $2")
                    .bind(delta_version)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn mark_version_deleted(
                &self,
                id: i64,
                actor: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                let v: $crate::store::DatasetVersionRecord = sqlx::query_as(
                    "UPDATE dataset_versions SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL RETURNING *",
                )
                .bind(at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| $crate::store::Error::NotFound(format!("live dataset version {id}")))?;
                insert_audit(
                    &mut *tx,
                    &$crate::store::AuditEntry::about(
                        actor,
                        $crate::store::AuditAction::DeleteDatasetVersion,
                        serde_json::json!({"dataset": v.dataset, "version": v.version, "path": v.path, "rows": v.rows}),
                        at,
                    ),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_erasure(
                &self,
                id: i64,
                rewritten: &$crate::store::ErasedVersion,
                actor: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::DatasetVersionRecord> {
                let mut tx = self.tx().await?;
                let before: $crate::store::DatasetVersionRecord = sqlx::query_as(
                    "SELECT * FROM dataset_versions WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| $crate::store::Error::NotFound(format!("live dataset version {id}")))?;
                let v: $crate::store::DatasetVersionRecord = sqlx::query_as(
                    "UPDATE dataset_versions SET path = $1, rows = $2, bytes = $3, delta_version = $4 \
                     WHERE id = $5 RETURNING *",
                )
                .bind(&rewritten.path)
                .bind(rewritten.rows)
                .bind(rewritten.bytes)
                .bind(rewritten.delta_version)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                insert_audit(
                    &mut *tx,
                    &$crate::store::AuditEntry::about(
                        actor,
                        $crate::store::AuditAction::EraseRows,
                        serde_json::json!({
                            "dataset": v.dataset, "version": v.version, "where": rewritten.condition,
                            "rows_erased": rewritten.erased, "rows_before": before.rows, "rows_after": v.rows,
                            "old_path": before.path, "path": v.path,
                        }),
                        at,
                    ),
                )
                .await?;
                tx.commit().await?;
                Ok(v)
            }

            async fn record_validation(
                &self,
                v: &$crate::store::NewValidation,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::RecordedValidation> {
                let mut tx = self.tx().await?;
                let quarantine = match &v.quarantine {
                    Some(new) => Some($crate::store::catalog_sql::insert_dataset_version!(tx, new, at)),
                    None => None,
                };
                let clean = match &v.clean {
                    Some(new) => Some($crate::store::catalog_sql::insert_dataset_version!(tx, new, at)),
                    None => None,
                };
                let q = &v.quality;
                let $crate::store::TryRef { dag_id: dag, run_id: run, task_id: task, try_number } = &q.producer;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO quality_results (dag_id, run_id, task_id, try_number, dataset, input_version, rows_in, \
                       rows_clean, rows_quarantined, clean_version, quarantine_version, published, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .bind(dag)
                .bind(run)
                .bind(task)
                .bind(*try_number)
                .bind(&q.dataset)
                .bind(q.input_version)
                .bind(q.rows_in)
                .bind(q.rows_clean)
                .bind(q.rows_quarantined)
                .bind(clean.as_ref().map(|c: &$crate::store::DatasetVersionRecord| c.id))
                .bind(quarantine.as_ref().map(|c: &$crate::store::DatasetVersionRecord| c.id))
                .bind(clean.is_some())
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                if !q.checks.is_empty() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO check_results (quality_id, position, name, kind, column_name, passed, failed, \
                           observed, threshold, severity) ",
                    );
                    qb.push_values(q.checks.iter().enumerate(), |mut b, (i, c)| {
                        b.push_bind(id)
                            .push_bind(i64::try_from(i).unwrap_or(i64::MAX))
                            .push_bind(c.name.clone())
                            .push_bind(c.kind.as_str())
                            .push_bind(c.column_name.clone())
                            .push_bind(c.passed)
                            .push_bind(c.failed)
                            .push_bind(c.observed.clone())
                            .push_bind(c.threshold.clone())
                            .push_bind(c.severity.as_str());
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok($crate::store::RecordedValidation { quality_id: id, quarantine, clean })
            }

            async fn quality_history(
                &self,
                dag_id: &str,
                task_id: &str,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::QualityPoint>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT q.*, \
                       (SELECT COUNT(*) FROM check_results c WHERE c.quality_id = q.id AND c.passed) AS checks_passed, \
                       (SELECT COUNT(*) FROM check_results c WHERE c.quality_id = q.id AND NOT c.passed) AS checks_failed \
                     FROM quality_results q WHERE q.dag_id = $1 AND q.task_id = $2 ORDER BY q.id DESC LIMIT $3",
                )
                .bind(dag_id)
                .bind(task_id)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::QualityPoint {
                            quality: sqlx::FromRow::from_row(row)?,
                            checks_passed: row.try_get("checks_passed")?,
                            checks_failed: row.try_get("checks_failed")?,
                        })
                    })
                    .collect()
            }

            async fn quality_of_run(
                &self,
                dag_id: &str,
                run_id: &str,
            ) -> $crate::store::Result<Vec<($crate::store::QualityRecord, Vec<$crate::store::CheckResultRecord>)>> {
                let results: Vec<$crate::store::QualityRecord> = sqlx::query_as(
                    "SELECT * FROM quality_results WHERE dag_id = $1 AND run_id = $2 ORDER BY id",
                )
                .bind(dag_id)
                .bind(run_id)
                .fetch_all(self.reader())
                .await?;
                let mut out = Vec::with_capacity(results.len());
                for r in results {
                    let checks = sqlx::query_as(
                        "SELECT name, kind, column_name, passed, failed, observed, threshold, severity \
                         FROM check_results WHERE quality_id = $1 ORDER BY position",
                    )
                    .bind(r.id)
                    .fetch_all(self.reader())
                    .await?;
                    out.push((r, checks));
                }
                Ok(out)
            }

            async fn record_dataset_version(
                &self,
                v: &$crate::store::NewDatasetVersion,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::DatasetVersionRecord> {
                let mut tx = self.tx().await?;
                let rec = $crate::store::catalog_sql::insert_dataset_version!(tx, v, at);
                tx.commit().await?;
                Ok(rec)
            }

            async fn latest_dataset_version(
                &self,
                dataset: &str,
            ) -> $crate::store::Result<Option<$crate::store::DatasetVersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dataset_versions WHERE dataset = $1 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1")
                    .bind(dataset)
                    .fetch_optional(self.reader())
                    .await?)
            }
        }
    };
}

pub(super) use impl_catalog_store;
pub(super) use insert_dataset_version;
