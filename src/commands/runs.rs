//! `weir runs …`: run history.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use weir_core::config::Config;
use weir_core::state::RunState;
use weir_core::store::{RunFilter, RunOrder};

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// `weir runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only this DAG.
        dag_id: Option<String>,
        /// Only runs in this state (queued, running, success, failed).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 25)]
        limit: i64,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// The notifications a run fired: event, rule, delivery state, attempts
    /// and why the last attempt failed.
    Notifications {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// Runs a `weir runs` subcommand.
pub async fn run(command: RunsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let (dag_id, state, limit, output) = match command {
        RunsCommand::List {
            dag_id,
            state,
            limit,
            output,
        } => (dag_id, state, limit, output),
        RunsCommand::Notifications {
            dag_id,
            run_id,
            output,
        } => return notifications(config, &dag_id, &run_id, output).await,
    };
    let states = match state {
        Some(s) => vec![s.parse::<RunState>().map_err(anyhow::Error::msg)?],
        None => Vec::new(),
    };
    let sched = super::scheduler(config).await?;
    let filter = RunFilter {
        dag_id,
        states,
        order: Some((RunOrder::RunAfter, true)),
        limit: Some(limit),
        offset: None,
        ..RunFilter::default()
    };
    let (runs, total) = sched.store().list_runs(&filter).await?;
    let duration = |r: &weir_core::store::RunRecord| match (r.start_date, r.end_date) {
        (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    match output {
        OutputFormat::Json => print_json(&json!({
            "dag_runs": runs.iter().map(|r| json!({
                "dag_id": r.dag_id, "dag_run_id": r.run_id, "run_type": r.run_type.as_str(), "state": r.state.as_str(),
                "logical_date": r.logical_date, "start_date": r.start_date, "end_date": r.end_date,
                "duration": duration(r),
            })).collect::<Vec<_>>(),
            "total_entries": total,
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.dag_id.clone(),
                        r.run_id.clone(),
                        r.run_type.to_string(),
                        r.state.to_string(),
                        time(r.start_date),
                        time(r.end_date),
                        super::seconds(duration(r)),
                    ]
                })
                .collect();
            print_table(
                &["DAG", "RUN", "TYPE", "STATE", "START", "END", "DURATION"],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir runs notifications DAG RUN`.
async fn notifications(
    config: &Config,
    dag_id: &str,
    run_id: &str,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    let run = store.get_run(dag_id, run_id).await?;
    let all = store.run_notifications(run.id).await?;
    match output {
        OutputFormat::Json => {
            print_json(&json!(all.iter().map(|n| json!({
            "id": n.id, "event": n.event.as_str(), "rule": n.rule, "task_id": n.task_id,
            "try_number": n.try_number, "state": n.state, "attempts": n.attempts,
            "last_error": n.last_error, "created_at": n.created_at, "sent_at": n.sent_at,
        })).collect::<Vec<_>>()))
        }
        OutputFormat::Table => print_table(
            &[
                "EVENT",
                "RULE",
                "TASK",
                "TRY",
                "STATE",
                "ATTEMPTS",
                "SENT",
                "LAST ERROR",
            ],
            &all.iter()
                .map(|n| {
                    vec![
                        n.event.as_str().to_owned(),
                        n.rule.clone(),
                        n.task_id.clone().unwrap_or_default(),
                        n.try_number.map(|t| t.to_string()).unwrap_or_default(),
                        n.state.clone(),
                        n.attempts.to_string(),
                        time(n.sent_at),
                        n.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(ExitCode::SUCCESS)
}
