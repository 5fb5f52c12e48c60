//! The SQL of [`super::DagStore`]: DAG files synced into DAGs and versions,
//! pausing, import errors.

/// Implements [`super::DagStore`] for `$store` (see `impl_store!`).
macro_rules! impl_dag_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::DagStore for $store {
            async fn sync_dags(
                &self,
                dags: &[$crate::store::DagSync],
                errors: &[$crate::store::ImportErrorRecord],
                paused_at_creation: bool,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                // Two processes loading the same new file must not both add its version.
                lock(&mut *tx, $crate::store::sql::SYNC_LOCK).await?;
                for d in dags {
                    let existing: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM dag_versions WHERE dag_id = $1 AND hash = $2")
                            .bind(&d.dag_id)
                            .bind(&d.hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let version_id = match existing {
                        Some(id) => id,
                        None => {
                            let next: i64 = sqlx::query_scalar(
                                "SELECT COALESCE(MAX(version_number), 0) + 1 FROM dag_versions WHERE dag_id = $1",
                            )
                            .bind(&d.dag_id)
                            .fetch_one(&mut *tx)
                            .await?;
                            sqlx::query_scalar(
                                "INSERT INTO dag_versions (dag_id, version_number, hash, definition, fileloc, created_at, sources) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                            )
                            .bind(&d.dag_id)
                            .bind(next)
                            .bind(&d.hash)
                            .bind(&d.definition)
                            .bind(&d.fileloc)
                            .bind(now)
                            .bind(&d.sources)
                            .fetch_one(&mut *tx)
                            .await?
                        }
                    };
                    let tags = serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into());
                    sqlx::query(
                        "INSERT INTO dags (dag_id, fileloc, is_paused, is_stale, latest_version_id, schedule, timezone, \
                           description, owner, tags, max_active_runs, max_active_tasks, last_parsed_at) \
                         VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT (dag_id) DO UPDATE SET fileloc = excluded.fileloc, is_stale = FALSE, \
                           latest_version_id = excluded.latest_version_id, schedule = excluded.schedule, \
                           timezone = excluded.timezone, description = excluded.description, owner = excluded.owner, \
                           tags = excluded.tags, max_active_runs = excluded.max_active_runs, \
                           max_active_tasks = excluded.max_active_tasks, last_parsed_at = excluded.last_parsed_at",
                    )
                    .bind(&d.dag_id)
                    .bind(&d.fileloc)
                    .bind(d.paused || paused_at_creation)
                    .bind(version_id)
                    .bind(&d.schedule)
                    .bind(&d.timezone)
                    .bind(&d.description)
                    .bind(&d.owner)
                    .bind(tags)
                    .bind(d.max_active_runs)
                    .bind(d.max_active_tasks)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                // A DAG neither loaded now nor in a file with an import error is stale.
                let known: Vec<(String, String)> = sqlx::query_as("SELECT dag_id, fileloc FROM dags WHERE is_stale = FALSE")
                    .fetch_all(&mut *tx)
                    .await?;
                for (dag_id, fileloc) in known {
                    let loaded = dags.iter().any(|d| d.dag_id == dag_id);
                    let broken = errors.iter().any(|e| e.filename == fileloc);
                    if !loaded && !broken {
                        sqlx::query("UPDATE dags SET is_stale = TRUE WHERE dag_id = $1")
                            .bind(&dag_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                sqlx::query("DELETE FROM import_errors").execute(&mut *tx).await?;
                for e in errors {
                    sqlx::query(
                        "INSERT INTO import_errors (filename, line, col, message, timestamp) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&e.filename)
                    .bind(e.line)
                    .bind(e.col)
                    .bind(&e.message)
                    .bind(e.timestamp)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_dags(&self) -> $crate::store::Result<Vec<$crate::store::DagRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dags ORDER BY dag_id").fetch_all(self.reader()).await?)
            }

            async fn get_dag(&self, dag_id: &str) -> $crate::store::Result<$crate::store::DagRecord> {
                sqlx::query_as("SELECT * FROM dags WHERE dag_id = $1")
                    .bind(dag_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("DAG `{dag_id}`")))
            }

            async fn set_paused(
                &self,
                dag_id: &str,
                paused: bool,
                audit: Option<&$crate::store::AuditEntry>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                let done = sqlx::query("UPDATE dags SET is_paused = $1 WHERE dag_id = $2")
                    .bind(paused)
                    .bind(dag_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("DAG `{dag_id}`")));
                }
                if let Some(a) = audit {
                    insert_audit(&mut *tx, a).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_version(&self, version_id: i64) -> $crate::store::Result<$crate::store::VersionRecord> {
                sqlx::query_as("SELECT * FROM dag_versions WHERE id = $1")
                    .bind(version_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("DAG version {version_id}")))
            }

            async fn list_versions(&self, dag_id: &str) -> $crate::store::Result<Vec<$crate::store::VersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dag_versions WHERE dag_id = $1 ORDER BY version_number DESC")
                    .bind(dag_id)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn list_import_errors(&self) -> $crate::store::Result<Vec<$crate::store::ImportErrorRecord>> {
                Ok(sqlx::query_as("SELECT * FROM import_errors ORDER BY filename, line, col")
                    .fetch_all(self.reader())
                    .await?)
            }
        }
    };
}

pub(crate) use impl_dag_store;
