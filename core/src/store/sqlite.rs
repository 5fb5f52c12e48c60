//! The SQLite store: one file, WAL mode, foreign keys on. Writes go through a
//! single sqlx connection in `BEGIN IMMEDIATE` transactions (SQLite allows
//! one writer at a time; this makes waiting orderly instead of failing with
//! "database is locked"), except the engine's hot path (reports, claims,
//! queueing), which has a writer connection of its own
//! ([`super::sqlite_direct`]); reads use a small pool of their own.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use super::access_sql::impl_access_store;
use super::catalog_sql::impl_catalog_store;
use super::logs_sql::impl_log_store;
use super::sql::impl_store;
use super::sqlite_direct::{self, DirectWriter};
use super::workers_sql::impl_worker_store;
use super::{Error, Result};

/// The state store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: Pool<Sqlite>,
    read: Pool<Sqlite>,
    direct: Arc<DirectWriter>,
}

impl SqliteStore {
    /// A run with at least this many tasks refreshes the statistics.
    const BULK_RUN: usize = 500;
    /// SQLite's planner keeps to the (run, task) index without statistics.
    const REFRESH_STATS: &'static str = "";

    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| Error::UnsupportedUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // Two processes opening a new file at once: switching it to WAL can
        // answer "database is locked" without waiting; try again shortly.
        let mut attempts = 0_u64;
        loop {
            match Self::pools(&options).await {
                Err(sqlx::Error::Database(e))
                    if e.message().contains("database is locked") && attempts < 20 =>
                {
                    attempts += 1;
                    tracing::debug!("the database is locked while opening ({e}); trying again");
                    tokio::time::sleep(Duration::from_millis(25 * attempts)).await;
                }
                Err(e) => return Err(e.into()),
                Ok((write, read)) => {
                    let direct = Arc::new(DirectWriter::open(options.get_filename()).await?);
                    return Ok(SqliteStore {
                        write,
                        read,
                        direct,
                    });
                }
            }
        }
    }

    async fn pools(
        options: &SqliteConnectOptions,
    ) -> Result<(Pool<Sqlite>, Pool<Sqlite>), sqlx::Error> {
        // A connection to a local file does not drop: no ping before each use.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        Ok((write, read))
    }

    async fn tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(super) fn reader(&self) -> &Pool<Sqlite> {
        &self.read
    }

    fn writer(&self) -> &Pool<Sqlite> {
        &self.write
    }

    /// Applies migrations. Two processes opening a new database at once both
    /// try; SQLite runs one after the other, and the second fails on tables the
    /// first created: it then finds the migration recorded and succeeds.
    async fn run_migrations(&self) -> Result<()> {
        let mut attempts = 0;
        loop {
            match super::migrations::migrator(super::migrations::SQLITE)
                .run(&self.write)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if attempts < 5 => {
                    attempts += 1;
                    tracing::debug!("migrations raced with another process ({e}); trying again");
                    tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies a batch of reports on the direct writer; a batch whose plan
    /// expands a mapped task goes the sqlx way.
    async fn advance_batch(
        &self,
        items: Vec<super::Advance>,
    ) -> Result<Vec<Result<super::Advanced>>> {
        let items = Arc::new(items);
        let job = items.clone();
        match self
            .direct
            .run(move |conn| sqlite_direct::advance_batch(conn, &job))
            .await?
        {
            Some(done) => Ok(done),
            None => self.advance_runs_here(&items).await,
        }
    }

    /// Claims queued work on the direct writer.
    async fn claim_work(&self, req: &super::ClaimRequest) -> Result<Vec<super::Claim>> {
        let req = req.clone();
        self.direct
            .run(move |conn| sqlite_direct::claim(conn, &req))
            .await
    }

    /// Queues scheduled work on the direct writer.
    async fn queue_work(&self, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        self.direct
            .run(move |conn| sqlite_direct::queue(conn, now))
            .await
    }

    /// Writes a consistent copy of the database to `path` while it is in use.
    pub async fn backup(&self, path: &str) -> Result<()> {
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

impl_store!(
    SqliteStore,
    Sqlite,
    for_update = "",
    skip_locked = "",
    advisory_lock = "",
    in_json = ("IN (SELECT value FROM json_each(", "))"),
    duration = "((julianday(end_date) - julianday(start_date)) * 86400.0)"
);

impl_access_store!(SqliteStore);
impl_catalog_store!(SqliteStore);
impl_worker_store!(SqliteStore);
impl_log_store!(SqliteStore, Sqlite);
