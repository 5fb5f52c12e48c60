//! The SQL of [`super::WorkerStore`]: the register of worker lives, shared by
//! both backends like the rest of the store.

/// Implements [`super::WorkerStore`] for `$store` (see `impl_store!`).
macro_rules! impl_worker_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::WorkerStore for $store {
            async fn register_worker(
                &self,
                worker: &$crate::workers::NewWorker,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO workers (name, hostname, pid, process_token, started_at, heartbeat_at, state, \
                       version, queues, slots, remote) \
                     VALUES ($1, $2, $3, $4, $5, $5, 'active', $6, $7, $8, $9) \
                     ON CONFLICT (name) DO UPDATE SET heartbeat_at = $5, state = 'active', stopped_at = NULL",
                )
                .bind(&worker.name)
                .bind(&worker.hostname)
                .bind(worker.pid)
                .bind(&worker.process_token)
                .bind(now)
                .bind(&worker.version)
                .bind(worker.queues.as_ref().map(|q| serde_json::to_string(q).unwrap_or_default()))
                .bind(worker.slots)
                .bind(worker.remote)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn worker_heartbeat(
                &self,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let done = sqlx::query(
                    "UPDATE workers SET heartbeat_at = $2 WHERE name = $1 AND state = 'active'",
                )
                .bind(name)
                .bind(now)
                .execute(self.writer())
                .await?;
                $crate::store::workers_sql::changed_active(done.rows_affected(), name)
            }

            async fn end_worker(
                &self,
                name: &str,
                state: $crate::workers::WorkerState,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                if state == $crate::workers::WorkerState::Active {
                    return Err($crate::store::Error::IllegalTransition(format!(
                        "worker `{name}` cannot end as active"
                    )));
                }
                let done = sqlx::query(
                    "UPDATE workers SET state = $2, stopped_at = $3 WHERE name = $1 AND state = 'active'",
                )
                .bind(name)
                .bind(state.as_str())
                .bind(now)
                .execute(self.writer())
                .await?;
                $crate::store::workers_sql::changed_active(done.rows_affected(), name)
            }

            async fn drain_worker(
                &self,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let done = sqlx::query(
                    "UPDATE workers SET draining_at = COALESCE(draining_at, $2) WHERE name = $1 AND state = 'active'",
                )
                .bind(name)
                .bind(now)
                .execute(self.writer())
                .await?;
                $crate::store::workers_sql::changed_active(done.rows_affected(), name)
            }

            async fn get_worker(&self, name: &str) -> $crate::store::Result<$crate::workers::WorkerRecord> {
                sqlx::query_as("SELECT * FROM workers WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("worker `{name}`")))
            }

            async fn lapsed_workers(
                &self,
                heard_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT name FROM workers WHERE state = 'active' AND remote AND heartbeat_at < $1",
                )
                .bind(heard_before)
                .fetch_all(self.reader())
                .await?)
            }

            async fn list_workers(
                &self,
                filter: &$crate::store::WorkerFilter,
            ) -> $crate::store::Result<Vec<$crate::workers::WorkerRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM workers WHERE ($1 IS NULL OR hostname = $1) AND ($2 IS NULL OR state = $2) \
                     ORDER BY started_at, name",
                )
                .bind(filter.hostname.as_deref())
                .bind(filter.state.map(|s| s.as_str()))
                .fetch_all(self.reader())
                .await?)
            }
        }
    };
}

pub(crate) use impl_worker_store;

/// A guarded change of an active worker that matched no row is a conflict:
/// the worker is not registered, or someone ended it first.
pub(crate) fn changed_active(rows: u64, name: &str) -> super::Result<()> {
    if rows == 0 {
        return Err(super::Error::Conflict(format!(
            "worker `{name}` is not registered as active"
        )));
    }
    Ok(())
}
