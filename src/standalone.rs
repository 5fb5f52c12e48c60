//! `weir standalone`: the DAG loader, scheduler, local worker pool and HTTP
//! server in one process, stopped gracefully by Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use weir_core::config::Config;

use crate::site::{Site, SiteOptions, shutdown_signal};

/// Runs everything until Ctrl-C or SIGTERM.
pub async fn run(
    config: &Config,
    bind: Option<String>,
    slots: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let sched = crate::commands::scheduler(config).await?;
    crate::commands::api::ensure_admin(&sched).await?;
    crate::commands::load_dags(&sched, config).await?;

    let slots = slots.or(config.worker.slots).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
    });
    let addr = bind.unwrap_or_else(|| config.api.bind.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "listening on {addr} (to run a second weir on this host, give it another address: --bind 127.0.0.1:PORT)"
            )
        })?;
    let local = listener.local_addr()?;

    let api = crate::commands::api::state(config, &sched).await?;
    let site = Site::start(
        &sched,
        SiteOptions {
            watch: Some((config.core.dags_folder.clone(), config.core.dag_refresh)),
            serve: Some((listener, api)),
            ..SiteOptions::from_config(config, "standalone", slots)?
        },
    )
    .await?;
    tracing::info!(
        "weir standalone: listening on http://{local}, worker {} with {slots} task slots, database {}, logs in {}",
        site.worker(),
        weir_core::config::redacted_url(&config.database.url),
        config.core.logs_dir.display()
    );

    shutdown_signal().await;
    tracing::info!(
        "stopping: running tries are stopped and reported; press Ctrl-C again to exit at once"
    );
    tokio::select! {
        _ = site.stop() => {}
        _ = shutdown_signal() => tracing::warn!("exiting without waiting"),
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
