//! Command-line arguments and the dispatch to each command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use weir_core::config::Config;

use crate::commands::{
    self,
    connections::ConnectionsCommand,
    dags::DagsCommand,
    datasets::DatasetsCommand,
    db::DbCommand,
    runs::RunsCommand,
    tasks::TasksCommand,
    users::{TokensCommand, UsersCommand},
    variables::VariablesCommand,
};
use crate::output::OutputFormat;

/// weir: a workflow orchestrator for data pipelines.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Args {
    /// The configuration file (default: weir.toml in the working folder, if any).
    #[arg(long, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text or JSON.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scheduler, workers and HTTP server in one process, on the configured database.
    Standalone {
        /// The address to listen on (default from the configuration; port 0 picks a free one).
        #[arg(long)]
        bind: Option<String>,
        /// Task slots of the local worker pool (default: cores × 2).
        #[arg(long)]
        slots: Option<usize>,
    },
    /// The DAG loader and scheduler alone: no workers, no HTTP (any number
    /// may run on one PostgreSQL).
    Scheduler,
    /// A worker that talks only HTTP to an API server: it claims tries from
    /// the queues it serves, runs them and reports (no database credentials).
    Worker(commands::worker::WorkerArgs),
    /// Registered workers: list them, or ask one to drain.
    Workers {
        #[command(subcommand)]
        command: commands::worker::WorkersCommand,
    },
    /// The HTTP API alone, with the remote workers' endpoints (scheduling
    /// runs elsewhere on the same database).
    Api {
        /// The address to listen on (default from the configuration).
        #[arg(long)]
        bind: Option<String>,
    },
    /// The data catalog: dataset versions, schemas, lineage.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Check results and row reconciliation of each validate task of a run.
    Quality {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Users of the API and web UI.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Long-lived API tokens (for scripts and workers).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Variables templates read (`var.value.<key>`, `var.json.<key>`).
    Variables {
        #[command(subcommand)]
        command: VariablesCommand,
    },
    /// Connections weir keeps for tasks, their secrets sealed.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Check, list, inspect, trigger and test DAGs.
    Dags {
        #[command(subcommand)]
        command: DagsCommand,
    },
    /// DAG runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Task instances: list, logs, clear, mark.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Runs for every scheduled interval whose logical date is in a range
    /// (both ends included), paused DAGs too; a date with a run gets no second one.
    Backfill {
        /// The DAG id.
        dag_id: String,
        /// The first logical date (YYYY-MM-DD in the DAG's time zone, or RFC 3339).
        #[arg(long)]
        from: String,
        /// The last logical date (a date means the whole day).
        #[arg(long)]
        to: String,
        /// Keep at most this many of the DAG's runs active (default: the DAG's max_active_runs).
        #[arg(long)]
        max_active_runs: Option<usize>,
        /// Clear and run again the failed tasks of runs in the range that failed.
        #[arg(long)]
        rerun_failed: bool,
        /// Create the runs and return (a running `weir standalone` runs them).
        #[arg(long)]
        no_wait: bool,
    },
    /// Measure the engine on synthetic DAGs of no-op shell tasks.
    Bench {
        /// A database URL (default: a throwaway SQLite file). Use an empty database.
        #[arg(long)]
        database: Option<String>,
        /// Task slots of the worker pool.
        #[arg(long, default_value_t = 16)]
        slots: usize,
        /// Workloads to run (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        workloads: Vec<crate::bench::Workload>,
    },
    /// The state database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Copy the state database and every dataset version it records into a
    /// new folder, while weir runs (PostgreSQL: dump it with pg_dump).
    Backup {
        /// The folder to create (it must not exist or be empty).
        dir: std::path::PathBuf,
    },
    /// Put a backup back: the database (SQLite) and the data folder of this
    /// site's configuration, with the versions' places moved into it.
    Restore {
        /// The backup's folder.
        dir: std::path::PathBuf,
        /// Replace a database and data folder that are not empty.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the parsed command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let config = Config::load(args.config.as_deref(), &env).context("loading the configuration")?;
    let quiet = !matches!(
        args.command,
        Command::Standalone { .. } | Command::Api { .. } | Command::Scheduler | Command::Worker(_)
    );
    init_logging(args.log_format, quiet);
    let vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for unknown in weir_core::config::unknown_vars(vars.iter().map(String::as_str)) {
        tracing::warn!("{unknown}");
    }
    // Datasets in object storage are reached by URL from here on (the
    // catalog's paths, DataFusion, the Delta log).
    crate::site::data_home(&config).context("[core] data_dir")?;
    match args.command {
        Command::Standalone { bind, slots } => crate::standalone::run(&config, bind, slots).await,
        Command::Api { bind } => commands::api::run(&config, bind).await,
        Command::Scheduler => commands::scheduler::run(&config).await,
        Command::Worker(args) => commands::worker::run(args, &config).await,
        Command::Workers { command } => commands::worker::run_workers(command, &config).await,
        Command::Datasets { command } => commands::datasets::run(command, &config).await,
        Command::Quality {
            dag_id,
            run_id,
            output,
        } => commands::datasets::quality(&config, &dag_id, &run_id, output).await,
        Command::Users { command } => commands::users::run_users(command, &config).await,
        Command::Tokens { command } => commands::users::run_tokens(command, &config).await,
        Command::Variables { command } => commands::variables::run(command, &config).await,
        Command::Connections { command } => commands::connections::run(command, &config).await,
        Command::Dags { command } => commands::dags::run(command, &config).await,
        Command::Runs { command } => commands::runs::run(command, &config).await,
        Command::Tasks { command } => commands::tasks::run(command, &config).await,
        Command::Db { command } => commands::db::run(command, &config).await,
        Command::Backup { dir } => commands::db::backup(&config, &dir).await,
        Command::Restore { dir, force } => commands::db::restore(&config, &dir, force).await,
        Command::Backfill {
            dag_id,
            from,
            to,
            max_active_runs,
            rerun_failed,
            no_wait,
        } => {
            commands::backfill::run(
                &config,
                &dag_id,
                &from,
                &to,
                max_active_runs,
                rerun_failed,
                no_wait,
            )
            .await
        }
        Command::Bench {
            database,
            slots,
            workloads,
        } => {
            let all = vec![
                crate::bench::Workload::Chain50,
                crate::bench::Workload::Fanout200,
                crate::bench::Workload::Layered1000,
                crate::bench::Workload::Tasks10000,
            ];
            crate::bench::run(
                database,
                slots,
                if workloads.is_empty() { all } else { workloads },
            )
            .await
        }
    }
}

fn init_logging(format: LogFormat, quiet: bool) {
    // The Delta library warns on every vacuum that keeps chosen versions
    // (an API it calls experimental), which retention does by design; its
    // kernel logs an error for a table with no commit yet (a dataset's first
    // version), which weir expects. Errors it returns are weir's to report.
    let default = if quiet {
        "warn,deltalake_core::operations::vacuum=error,buoyant_kernel=off"
    } else {
        "info,sqlx=warn,deltalake_core=warn,deltalake_core::operations::vacuum=error,buoyant_kernel=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
