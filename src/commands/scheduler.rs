//! `weir scheduler`: the DAG loader, the scheduler's timer and the DAG folder
//! watcher, without workers or HTTP. Any number may run on one PostgreSQL.

use std::process::ExitCode;

use weir_core::config::Config;

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    crate::commands::load_dags(&sched, config).await?;
    let home = crate::site::data_home(config)?;
    weir_worker::resources::mark_data_folder(&sched, &home).await;
    let site = crate::site::Site::start_scheduler(
        &sched,
        home.local_dir().to_path_buf(),
        Some((config.core.dags_folder.clone(), config.core.dag_refresh)),
        crate::site::notifier_options(config),
    )
    .await;
    tracing::info!(
        "weir scheduler: database {}, DAGs from {}",
        weir_core::config::redacted_url(&config.database.url),
        config.core.dags_folder.display()
    );
    crate::site::shutdown_signal().await;
    site.stop().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
