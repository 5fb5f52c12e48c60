//! A site: the scheduler's timer, the notifier, a local worker pool and,
//! when asked, the DAG folder watcher and the HTTP server, started together and stopped
//! together. `weir standalone`, `weir dags test` and `weir bench` each run one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_core::config::Config;
use weir_core::scheduler::Scheduler;
use weir_worker::data::home::Home;
use weir_worker::lineage::{Delivery, Emitter};
use weir_worker::notify::{Notifier, NotifierOptions};
use weir_worker::secrets::Secrets;
use weir_worker::{LocalPool, PoolOptions};

/// How long stopping waits for queued lineage events to be delivered.
pub const LINEAGE_FLUSH: Duration = Duration::from_secs(5);

/// The notifier's settings from `config`.
pub fn notifier_options(config: &Config) -> NotifierOptions {
    NotifierOptions {
        smtp: config.smtp.clone(),
        ..NotifierOptions::new(config.core.logs_dir.clone(), config.api.public_url())
    }
}

/// Spawns the notifier (its logs mask the `WEIR_SECRET_*` secrets).
fn spawn_notifier(
    tasks: &mut JoinSet<()>,
    sched: &Scheduler,
    options: NotifierOptions,
    cancel: CancellationToken,
) {
    let secrets = std::sync::Arc::new(Secrets::from_env(std::env::vars()));
    tasks.spawn(Notifier::new(sched.clone(), options, secrets).run(cancel));
}

/// What a site runs besides the timer and the pool.
#[derive(Debug)]
pub struct SiteOptions {
    /// The local worker pool.
    pub pool: PoolOptions,
    /// The secrets tasks may read.
    pub secrets: Secrets,
    /// Re-read this DAG folder when a file changes, and every `refresh` seconds.
    pub watch: Option<(PathBuf, u64)>,
    /// Serve the API (and UI) of this state on this listener.
    pub serve: Option<(tokio::net::TcpListener, weir_api::AppState)>,
    /// Deliver notifications.
    pub notify: Option<NotifierOptions>,
    /// The task delivering the pool's OpenLineage events, if lineage is on.
    pub lineage: Option<Delivery>,
}

impl SiteOptions {
    /// A pool of `slots` for a worker of `role`, with the configured folders,
    /// connections, retention, lineage and the `WEIR_SECRET_*` secrets; no
    /// watcher, no server.
    pub fn from_config(config: &Config, role: &str, slots: usize) -> anyhow::Result<SiteOptions> {
        let (lineage, delivery) = Emitter::start(&config.openlineage)?;
        Ok(SiteOptions {
            pool: PoolOptions {
                slots,
                logs_dir: config.core.logs_dir.clone(),
                role: role.to_owned(),
                poll: Duration::from_secs(1),
                connections: config.connection_urls(std::env::vars()),
                home: data_home(config)?,
                retention: config.retention.clone(),
                lineage,
            },
            secrets: Secrets::from_env(std::env::vars()),
            watch: None,
            serve: None,
            notify: Some(notifier_options(config)),
            lineage: delivery,
        })
    }
}

/// A running site; [`Site::stop`] ends it.
#[derive(Debug)]
pub struct Site {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    worker: String,
    lineage: Option<Delivery>,
}

impl Site {
    /// Registers the pool's worker, cleans up after past lives on this host
    /// (their task processes stop before their tries are retried; live
    /// workers are left alone), then starts the timer, the pool and what
    /// `options` asks for.
    pub async fn start(sched: &Scheduler, options: SiteOptions) -> anyhow::Result<Site> {
        let data_dir = options.pool.home.local_dir().to_path_buf();
        let pool = LocalPool::start(sched.clone(), options.pool, options.secrets).await?;
        pool.reap_past_lives().await;
        let worker = pool.name().to_owned();
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tend_data_folder(sched, data_dir, &mut tasks).await;
        tasks.spawn(sched.clone().run(cancel.child_token()));
        if let Some(n) = options.notify {
            spawn_notifier(&mut tasks, sched, n, cancel.child_token());
        }
        if let Some((dir, refresh)) = options.watch {
            tasks.spawn(watch_dags(
                sched.clone(),
                dir,
                refresh,
                cancel.child_token(),
            ));
        }
        tasks.spawn(pool.run(cancel.child_token()));
        if let Some((listener, state)) = options.serve {
            let stop = cancel.child_token();
            let app = weir_api::app(state.closing_on(&stop));
            tasks.spawn(async move {
                if let Err(e) = weir_api::serve(listener, app, stop).await {
                    tracing::error!("the HTTP server stopped: {e}");
                }
            });
        }
        Ok(Site {
            cancel,
            tasks,
            worker,
            lineage: options.lineage,
        })
    }

    /// The scheduler's timer, the notifier and, when asked, the DAG folder
    /// watcher, without a worker pool or server (`weir scheduler`); the
    /// data folder is tended as [`Site::start`] tends it.
    pub async fn start_scheduler(
        sched: &Scheduler,
        data_dir: PathBuf,
        watch: Option<(PathBuf, u64)>,
        notify: NotifierOptions,
    ) -> Site {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tend_data_folder(sched, data_dir, &mut tasks).await;
        tasks.spawn(sched.clone().run(cancel.child_token()));
        spawn_notifier(&mut tasks, sched, notify, cancel.child_token());
        if let Some((dir, refresh)) = watch {
            tasks.spawn(watch_dags(
                sched.clone(),
                dir,
                refresh,
                cancel.child_token(),
            ));
        }
        Site {
            cancel,
            tasks,
            worker: String::new(),
            lineage: None,
        }
    }

    /// The name of this site's worker.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Stops everything: running tries are stopped and reported (their retry
    /// rules apply), the worker is recorded as stopped, and the server
    /// finishes the requests it has; queued lineage events are delivered
    /// (for a few seconds at most).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(d) = self.lineage.take() {
            d.finish(LINEAGE_FLUSH).await;
        }
    }
}

/// Where the site's datasets live (`[core] data_dir`, with `[storage]` for
/// object storage).
pub fn data_home(config: &Config) -> anyhow::Result<Home> {
    Ok(Home::new(
        &config.core.data_dir,
        &config.core.staging_dir,
        &config.storage,
    )?)
}

/// What a process that schedules does to the data folder at start: gives
/// datasets an older weir wrote their Delta log before any task writes a
/// version, and removes what unfinished writes left (in the background).
async fn tend_data_folder(sched: &Scheduler, data_dir: PathBuf, tasks: &mut JoinSet<()>) {
    migrate_datasets(sched).await;
    tasks.spawn(clean_data_folder(data_dir));
}

/// Removes the temporary folders writes that never finished left in the
/// data folder (idle for [`LEFTOVER_IDLE`](weir_worker::data::verify::LEFTOVER_IDLE)),
/// naming each.
pub async fn clean_data_folder(data_dir: PathBuf) {
    use weir_worker::data::verify::{LEFTOVER_IDLE, clean_leftovers};
    for p in clean_leftovers(&data_dir, LEFTOVER_IDLE).await {
        tracing::warn!(
            "removed {}: a write that never finished (nothing written to it for {} minutes)",
            p.display(),
            LEFTOVER_IDLE.as_secs() / 60
        );
    }
}

/// Gives datasets written before their folders were Delta tables their
/// Delta log, before any task writes a version; a failure is logged, and
/// `weir datasets migrate` can be run again.
async fn migrate_datasets(sched: &Scheduler) {
    match weir_worker::data::migrate::migrate(sched.store().as_ref(), None).await {
        Ok(done) => {
            for m in done {
                tracing::info!(
                    "{}: {} version(s) committed to the Delta table in {}",
                    m.dataset,
                    m.versions.len(),
                    m.folder.display()
                );
            }
        }
        Err(e) => tracing::warn!("giving datasets their Delta log: {e}"),
    }
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
