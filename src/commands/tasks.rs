//! `weir tasks …`: task instances of a run, their logs, clear and mark.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use weir_core::config::Config;
use weir_core::state::TaskState;

use super::{seconds, time};
use crate::output::{OutputFormat, print_json, print_table};

/// `weir tasks` subcommands.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The task instances of a run: state, try, start, end, duration; a
    /// mapped task's instances with their map index and item.
    List {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print the log of a try (default: the latest).
    Logs {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// The task id.
        task_id: String,
        /// The try number.
        #[arg(long = "try")]
        try_number: Option<i64>,
        /// A mapped instance of the task (its map index).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
    },
    /// Print the output (JSON) a try published (default: the latest try).
    Output {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// The task id.
        task_id: String,
        /// The try number.
        #[arg(long = "try")]
        try_number: Option<i64>,
        /// A mapped instance of the task (its map index).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
    },
    /// Clear a task instance so it runs again (a new try); the run reopens.
    Clear {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// The task id.
        task_id: String,
        /// Also clear every task downstream of it.
        #[arg(long)]
        downstream: bool,
        /// Only tasks that failed.
        #[arg(long)]
        only_failed: bool,
    },
    /// Mark a task instance success or failed by hand (recorded in the audit log).
    Mark {
        /// The DAG id.
        dag_id: String,
        /// The run id.
        run_id: String,
        /// The task id.
        task_id: String,
        /// The new state.
        #[arg(long, value_enum)]
        state: MarkState,
        /// Only this mapped instance (default: the task, every mapped instance).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
    },
}

/// States a task can be marked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarkState {
    /// success
    Success,
    /// failed
    Failed,
}

/// Runs a `weir tasks` subcommand.
pub async fn run(command: TasksCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    let store = sched.store();
    match command {
        TasksCommand::List {
            dag_id,
            run_id,
            output,
        } => {
            let run = store.get_run(&dag_id, &run_id).await?;
            let tis = store.list_task_instances(run.id).await?;
            match output {
                OutputFormat::Json => print_json(&json!({
                    "task_instances": tis.iter().map(|t| json!({
                        "task_id": t.task_id, "map_index": t.map_index, "item": t.item(),
                        "state": (t.state != TaskState::None).then(|| t.state.as_str()),
                        "try_number": t.try_number, "max_tries": t.max_tries, "start_date": t.start_date,
                        "end_date": t.end_date, "duration": t.duration(), "hostname": t.hostname,
                        "executor": t.worker,
                    })).collect::<Vec<_>>(),
                    "total_entries": tis.len(),
                })),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = tis
                        .iter()
                        .map(|t| {
                            vec![
                                t.task_id.clone(),
                                if t.map_index < 0 {
                                    String::new()
                                } else {
                                    t.map_index.to_string()
                                },
                                t.item().map(|v| v.to_string()).unwrap_or_default(),
                                t.state.to_string(),
                                t.try_number.to_string(),
                                time(t.start_date),
                                time(t.end_date),
                                seconds(t.duration()),
                                t.worker.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    print_table(
                        &[
                            "TASK", "MAP", "ITEM", "STATE", "TRY", "START", "END", "DURATION",
                            "WORKER",
                        ],
                        &rows,
                    );
                }
            }
        }
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            map_index,
        } => {
            let (ti, t) = find_try(
                store.as_ref(),
                (&dag_id, &run_id, &task_id, map_index),
                try_number,
            )
            .await?;
            // A remote worker's log is in the database; a local pool's in the logs folder.
            let text = match weir_worker::logs::read(&config.core.logs_dir, &t.log_path, 0).await {
                Ok((text, _)) => text,
                Err(e) => match store.read_log(&ti.id, t.try_number, 0).await? {
                    Some((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
                    None => {
                        return Err(e).with_context(|| {
                            format!(
                                "reading {}",
                                config.core.logs_dir.join(&t.log_path).display()
                            )
                        });
                    }
                },
            };
            print!("{text}");
        }
        TasksCommand::Output {
            dag_id,
            run_id,
            task_id,
            try_number,
            map_index,
        } => {
            let (_, t) = find_try(
                store.as_ref(),
                (&dag_id, &run_id, &task_id, map_index),
                try_number,
            )
            .await?;
            let Some(text) = t.output else {
                bail!(
                    "try {} of `{task_id}` published no output (a shell task writes JSON to $WEIR_OUTPUT or sets `output: last_line`)",
                    t.try_number
                );
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).context("the stored output is not JSON")?;
            print_json(&value);
        }
        TasksCommand::Clear {
            dag_id,
            run_id,
            task_id,
            downstream,
            only_failed,
        } => {
            let cleared = sched
                .clear(
                    &dag_id,
                    &run_id,
                    &weir_core::scheduler::ClearSpec {
                        task_ids: vec![task_id],
                        downstream,
                        only_failed,
                        ..Default::default()
                    },
                    &super::actor(),
                )
                .await?;
            if cleared.is_empty() {
                println!("nothing to clear");
            } else {
                println!("cleared {}", cleared.join(", "));
            }
        }
        TasksCommand::Mark {
            dag_id,
            run_id,
            task_id,
            state,
            map_index,
        } => {
            let state = match state {
                MarkState::Success => TaskState::Success,
                MarkState::Failed => TaskState::Failed,
            };
            sched
                .mark_instance(
                    &dag_id,
                    &run_id,
                    &task_id,
                    map_index,
                    state,
                    &super::actor(),
                )
                .await?;
            println!("marked {task_id} {state}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A task instance (DAG, run, task, map index) and one of its tries
/// (default: the latest).
async fn find_try(
    store: &dyn weir_core::store::Store,
    (dag_id, run_id, task_id, map_index): (&str, &str, &str, i64),
    try_number: Option<i64>,
) -> anyhow::Result<(
    weir_core::store::TaskInstanceRecord,
    weir_core::store::TryRecord,
)> {
    let ti = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    let mut tries = store.list_tries(&ti.id).await?;
    let chosen = match try_number {
        Some(n) => tries.iter().position(|t| t.try_number == n),
        None => tries.len().checked_sub(1),
    };
    let Some(i) = chosen else {
        bail!(
            "task `{task_id}` has no try {}",
            try_number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "yet".into())
        );
    };
    Ok((ti, tries.swap_remove(i)))
}
