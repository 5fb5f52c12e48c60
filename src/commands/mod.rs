//! One module per command group.

pub mod api;
pub mod backfill;
pub mod connections;
pub mod dags;
pub mod datasets;
pub mod db;
pub mod runs;
pub mod scheduler;
pub mod tasks;
pub mod users;
pub mod variables;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use weir_core::config::Config;
use weir_core::scheduler::{Options, Scheduler, SystemClock};

/// The configured database (migrations applied).
pub async fn store(config: &Config) -> anyhow::Result<Arc<dyn weir_core::store::Store>> {
    weir_core::store::open(&config.database.url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                weir_core::config::redacted_url(&config.database.url)
            )
        })
}

/// The scheduler on the configured database (migrations applied).
pub async fn scheduler(config: &Config) -> anyhow::Result<Scheduler> {
    let store = weir_core::store::open(&config.database.url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                weir_core::config::redacted_url(&config.database.url)
            )
        })?;
    for (name, pool) in &config.pools {
        store.upsert_pool(name, i64::from(pool.slots), None).await?;
    }
    let options = Options {
        paused_at_creation: config.core.dags_paused_at_creation,
        lease: std::time::Duration::from_secs(config.core.lease.max(1)),
        secret_key: config.key_source(),
        ..Options::default()
    };
    Ok(Scheduler::new(store, Arc::new(SystemClock), options))
}

/// Loads the configured DAG folder into the store, logging what it found.
pub async fn load_dags(sched: &Scheduler, config: &Config) -> anyhow::Result<()> {
    let report = sched.sync_folder(&config.core.dags_folder).await?;
    tracing::info!(
        "loaded {} DAG(s) from {} ({} import error(s))",
        report.dags.len(),
        config.core.dags_folder.display(),
        report.errors.len()
    );
    for e in &report.errors {
        tracing::warn!("import error: {e}");
    }
    Ok(())
}

/// Who a command acts as, for the audit log.
pub fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Seconds as `1.234s`, or `-`.
pub fn seconds(d: Option<f64>) -> String {
    d.map(|s| format!("{s:.3}s")).unwrap_or_else(|| "-".into())
}

/// A time as `2026-01-01 02:00:00`, or `-`.
pub fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "-".into())
}
