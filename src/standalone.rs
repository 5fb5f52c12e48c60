//! `weir standalone`: the DAG loader, scheduler, local worker pool and HTTP
//! server in one process, stopped gracefully by Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_core::config::Config;
use weir_core::scheduler::Scheduler;
use weir_worker::{LocalPool, PoolOptions};

/// Runs everything until Ctrl-C or SIGTERM.
pub async fn run(
    config: &Config,
    bind: Option<String>,
    slots: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let sched = crate::commands::scheduler(config).await?;
    crate::commands::api::ensure_admin(&sched).await?;
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

    let pool = LocalPool::start(
        sched.clone(),
        PoolOptions {
            slots,
            logs_dir: config.core.logs_dir.clone(),
            role: "standalone".into(),
            poll: Duration::from_secs(1),
            connections: config.connection_urls(std::env::vars()),
            data_dir: config.core.data_dir.clone(),
            retention: config.retention.clone(),
        },
        weir_worker::secrets::Secrets::from_env(std::env::vars()),
    )
    .await?;
    // Worker lives on this host whose process is gone (a crash, a restart of
    // the machine) leave processes and running tries behind: their processes
    // stop before their tries are retried. Live workers are left alone.
    pool.reap_past_lives().await;
    let worker = pool.name().to_owned();
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(sched.clone().run(cancel.child_token()));
    tasks.spawn(watch_dags(
        sched.clone(),
        config.core.dags_folder.clone(),
        config.core.dag_refresh,
        cancel.child_token(),
    ));
    tasks.spawn(pool.run(cancel.child_token()));
    let app = weir_api::app(crate::commands::api::state(config, &sched).await?);
    let server_cancel = cancel.child_token();
    tasks.spawn(async move {
        if let Err(e) = weir_api::serve(listener, app, server_cancel).await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    });
    tracing::info!(
        "weir standalone: listening on http://{local}, worker {worker} with {slots} task slots, database {}, logs in {}",
        config.database.url,
        config.core.logs_dir.display()
    );

    shutdown_signal().await;
    tracing::info!(
        "stopping: running tries are stopped and reported; press Ctrl-C again to exit at once"
    );
    cancel.cancel();
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = shutdown_signal() => tracing::warn!("exiting without waiting"),
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves at the first Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Re-reads the DAG folder when a file changes (checked every second) and
/// every `refresh` seconds regardless.
async fn watch_dags(sched: Scheduler, dir: PathBuf, refresh: u64, cancel: CancellationToken) {
    let mut last = fingerprint(&dir).await;
    let mut last_sync = Instant::now();
    let refresh = Duration::from_secs(refresh.max(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = fingerprint(&dir).await;
        if now != last || last_sync.elapsed() >= refresh {
            match sched.sync_folder(&dir).await {
                Ok(report) => {
                    if now != last {
                        tracing::info!(
                            "DAG files changed: {} DAG(s), {} import error(s)",
                            report.dags.len(),
                            report.errors.len()
                        );
                        for e in &report.errors {
                            tracing::warn!("import error: {e}");
                        }
                    }
                }
                Err(e) => tracing::error!("loading DAGs failed: {e}"),
            }
            last = now;
            last_sync = Instant::now();
        }
    }
}

/// Paths, sizes and modification times of every DAG and contract file.
async fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        weir_core::loader::dag_files(&dir)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
                let modified = meta.and_then(|m| m.modified().ok());
                (p, size, modified)
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}
