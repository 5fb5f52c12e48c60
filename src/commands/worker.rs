//! `weir worker`: a remote worker that talks only HTTP to an API server,
//! and `weir workers …`: the workers view.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::config::Config;
use weir_worker::remote::{RemoteOptions, RemoteWorker};
use weir_worker::secrets::Secrets;

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// What `weir worker` is given on its command line.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The API server (`http://host:port`; default `[worker] server`); a
    /// comma-separated list is tried in turn when one cannot be reached.
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    /// A `worker` API token (`weir tokens create --role worker`; default `[worker] token`).
    #[arg(long)]
    token: Option<String>,
    /// Queues to serve, comma-separated (default `[worker] queues`, else `default`).
    #[arg(long, value_delimiter = ',')]
    queues: Vec<String>,
    /// Tries run at once (default `[worker] slots`, else cores × 2).
    #[arg(long)]
    slots: Option<usize>,
    /// The start of the worker's name (made unique to this start; default `worker`).
    #[arg(long, default_value = "worker")]
    name: String,
    /// Seconds running tries may go on after SIGTERM before they are stopped
    /// (default `[worker] grace`, else 60).
    #[arg(long)]
    grace: Option<u64>,
}

/// Runs a remote worker until SIGTERM (then drains) or until the server
/// asks it to drain.
pub async fn run(args: WorkerArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let servers = if args.server.is_empty() {
        config
            .worker
            .server
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        args.server
    };
    anyhow::ensure!(
        !servers.is_empty(),
        "no server: give --server http://HOST:PORT or set [worker] server"
    );
    let token = args
        .token
        .or_else(|| config.worker.token.clone())
        .context("no token: give --token (a `worker` API token) or set WEIR_WORKER_TOKEN")?;
    let queues = if args.queues.is_empty() {
        config
            .worker
            .queues
            .clone()
            .unwrap_or_else(|| vec!["default".to_owned()])
    } else {
        args.queues
    };
    let slots = args.slots.or(config.worker.slots).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
    });
    let (lineage, delivery) = weir_worker::lineage::Emitter::start(&config.openlineage)?;
    let home = crate::site::data_home(config)?;
    tokio::spawn(crate::site::clean_data_folder(
        home.local_dir().to_path_buf(),
    ));
    let options = RemoteOptions {
        servers,
        token,
        queues,
        slots,
        name: args.name,
        logs_dir: config.core.logs_dir.clone(),
        home,
        connections: config.connection_urls(std::env::vars()),
        retention: config.retention.clone(),
        grace: Duration::from_secs(args.grace.or(config.worker.grace).unwrap_or(60)),
        lineage,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::site::shutdown_signal().await;
        tracing::info!("stopping: no more claims; running tries finish within the grace period");
        stop.cancel();
        crate::site::shutdown_signal().await;
        tracing::warn!("exiting without waiting");
        std::process::exit(130);
    });
    let worker = RemoteWorker::connect(options, Secrets::from_env(std::env::vars()), &cancel)
        .await
        .context("registering with the server")?;
    tracing::info!("weir worker {}: claiming work", worker.name());
    worker.run(cancel).await;
    if let Some(d) = delivery {
        d.finish(crate::site::LINEAGE_FLUSH).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir workers` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Workers that run or ran lately: name, host, version, queues, slots,
    /// running tries, last heartbeat, state (active, draining, lost).
    List {
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Asks a worker to drain: it claims nothing more, finishes what it runs
    /// and stops.
    Drain {
        /// The worker's name.
        name: String,
    },
}

/// Runs a `weir workers` subcommand.
pub async fn run_workers(command: WorkersCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    match command {
        WorkersCommand::Drain { name } => {
            sched.drain_worker(&name, &super::actor()).await?;
            println!("worker {name} drains: it claims nothing more and stops when its tries end");
        }
        WorkersCommand::List { output } => {
            let view = sched.workers_view().await?;
            let queues =
                |q: &Option<Vec<String>>| q.as_ref().map_or("*".to_owned(), |q| q.join(","));
            match output {
                OutputFormat::Json => print_json(&json!({
                    "workers": view.iter().map(|v| json!({
                        "name": v.life.name, "hostname": v.life.hostname, "version": v.life.version,
                        "queues": v.life.queues, "slots": v.life.slots, "remote": v.life.remote,
                        "running": v.running, "heartbeat_at": v.life.heartbeat_at,
                        "state": v.standing.as_str(),
                    })).collect::<Vec<_>>(),
                })),
                OutputFormat::Table => print_table(
                    &[
                        "NAME",
                        "HOST",
                        "VERSION",
                        "QUEUES",
                        "SLOTS",
                        "RUNNING",
                        "HEARTBEAT",
                        "STATE",
                    ],
                    &view
                        .iter()
                        .map(|v| {
                            vec![
                                v.life.name.clone(),
                                v.life.hostname.clone(),
                                v.life.version.clone(),
                                queues(&v.life.queues),
                                v.life.slots.to_string(),
                                v.running.to_string(),
                                time(Some(v.life.heartbeat_at)),
                                v.standing.as_str().to_owned(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
