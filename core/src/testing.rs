//! Test support shared by the crates' test suites: a fresh store on SQLite
//! and, when `WEIR_TEST_DATABASE_URL` is set, on PostgreSQL. Not used by weir
//! itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

use crate::store::{self, Store};

/// A store made for one test, removed by [`TestDb::cleanup`].
#[derive(Debug)]
pub struct TestDb {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Its URL (for processes started by the test).
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    )
}

/// A fresh SQLite store in a temporary file.
pub async fn sqlite() -> TestDb {
    let path = std::env::temp_dir().join(format!("{}.db", unique("weir_test")));
    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    TestDb {
        store,
        url,
        cleanup: Cleanup::File(path),
    }
}

/// A fresh PostgreSQL database on the server `WEIR_TEST_DATABASE_URL` names,
/// or `None` (with a notice) when it is not set. Under `CI=true` a missing
/// variable is a failure: the PostgreSQL half of the suite must run there.
pub async fn postgres() -> Option<TestDb> {
    let Ok(admin_url) = std::env::var("WEIR_TEST_DATABASE_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("WEIR_TEST_DATABASE_URL is not set: the PostgreSQL tests must run in CI");
        }
        eprintln!("notice: WEIR_TEST_DATABASE_URL is not set; skipping the PostgreSQL case");
        return None;
    };
    let name = unique("weir_t");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {admin_url}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("WEIR_TEST_DATABASE_URL must end with /DATABASE"),
    };
    let store = store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    Some(TestDb {
        store,
        url,
        cleanup: Cleanup::Database { admin_url, name },
    })
}

impl TestDb {
    /// Removes the database.
    pub async fn cleanup(self) {
        let TestDb { store, cleanup, .. } = self;
        drop(store);
        match cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Database { admin_url, name } => {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            }
        }
    }
}

/// Defines a test module `$name` with one test per backend (`sqlite`,
/// `postgres`), each calling `$case(store_url_and_store)` on a fresh store.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::sqlite().await;
                super::$case(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::testing::postgres().await else {
                    return;
                };
                super::$case(&db).await;
                db.cleanup().await;
            }
        }
    };
}
