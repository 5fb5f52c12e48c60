//! The PostgreSQL store, for several schedulers, API servers and workers
//! sharing one database. Run rows are locked (`FOR UPDATE`) while a run
//! advances, so concurrent completions of one run are serialised; claims skip
//! rows another worker is claiming (`FOR UPDATE SKIP LOCKED`).

use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres, Transaction};

use super::Result;
use super::access_sql::impl_access_store;
use super::catalog_sql::impl_catalog_store;
use super::logs_sql::impl_log_store;
use super::sql::impl_store;
use super::workers_sql::impl_worker_store;

/// The state store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool<Postgres>,
}

impl PostgresStore {
    /// A run with at least this many tasks refreshes the statistics.
    const BULK_RUN: usize = 500;
    /// How (stale statistics of a growing table made PostgreSQL read a whole
    /// run to find three of its tasks, a cost per try that grew with the run).
    const REFRESH_STATS: &'static str = "ANALYZE task_instances";

    /// Connects to the database at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await?;
        Ok(PostgresStore { pool })
    }

    async fn tx(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    async fn run_migrations(&self) -> Result<()> {
        super::migrations::migrator(super::migrations::POSTGRES)
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

impl PostgresStore {
    /// Applies a batch of reports (one transaction, sqlx).
    async fn advance_batch(
        &self,
        items: Vec<super::Advance>,
    ) -> Result<Vec<Result<super::Advanced>>> {
        self.advance_runs_here(&items).await
    }

    /// Claims queued work.
    async fn claim_work(&self, req: &super::ClaimRequest) -> Result<Vec<super::Claim>> {
        self.claim_here(req).await
    }

    /// Queues scheduled work.
    async fn queue_work(&self, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        self.queue_here(now).await
    }
}

impl_store!(
    PostgresStore,
    Postgres,
    for_update = "FOR UPDATE",
    skip_locked = "FOR UPDATE SKIP LOCKED",
    advisory_lock = "SELECT pg_advisory_xact_lock($1)",
    in_json = ("= ANY(ARRAY(SELECT jsonb_array_elements_text(", ")))"),
    duration = "(EXTRACT(EPOCH FROM (end_date - start_date))::float8)"
);

impl_access_store!(PostgresStore);
impl_catalog_store!(PostgresStore);
impl_worker_store!(PostgresStore);
impl_log_store!(PostgresStore, Postgres);
