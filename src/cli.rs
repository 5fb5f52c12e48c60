//! Command-line arguments and the dispatch to each command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use weir_core::config::Config;
use weir_core::dag::{Dag, Task};
use weir_core::loader;

use crate::output::{OutputFormat, print_json, print_table};

/// weir: a workflow orchestrator for data pipelines.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Args {
    /// The configuration file (default: weir.toml in the working folder, if any).
    #[arg(long, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, list and inspect DAG files.
    Dags {
        #[command(subcommand)]
        command: DagsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DagsCommand {
    /// Check every DAG file; print `path:line:col: message` per problem; exit 1 if any.
    Validate {
        /// The folder of DAG files (default: from the configuration).
        #[arg(long)]
        dags_folder: Option<PathBuf>,
        /// Print the problems as JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List the DAGs with their schedule and next run.
    List {
        /// The folder of DAG files (default: from the configuration).
        #[arg(long)]
        dags_folder: Option<PathBuf>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show one DAG's tasks in dependency order.
    Show {
        /// The DAG id.
        dag_id: String,
        /// The folder of DAG files (default: from the configuration).
        #[arg(long)]
        dags_folder: Option<PathBuf>,
        /// Text, or Graphviz `dot`.
        #[arg(long, value_enum, default_value_t)]
        format: ShowFormat,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print the JSON Schema of DAG files (the source of dags/schema.json).
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum ShowFormat {
    /// Tasks, kinds, dependencies and datasets.
    #[default]
    Text,
    /// A Graphviz graph.
    Dot,
}

/// Runs the parsed command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let config = Config::load(args.config.as_deref(), &env).context("loading the configuration")?;
    match args.command {
        Command::Dags { command } => dags(command, &config),
    }
}

fn dags(command: DagsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let folder = |f: Option<PathBuf>| f.unwrap_or_else(|| config.core.dags_folder.clone());
    match command {
        DagsCommand::Validate {
            dags_folder,
            output,
        } => {
            let dir = folder(dags_folder);
            if !dir.is_dir() {
                bail!("DAG folder {} does not exist", dir.display());
            }
            let report = loader::load_folder(&dir);
            match output {
                OutputFormat::Json => print_json(&json!({
                    "files": report.files,
                    "dags": report.dags.iter().map(|d| d.id.to_string()).collect::<Vec<_>>(),
                    "errors": report.errors.iter().map(|e| json!({
                        "file": e.file, "line": e.line, "column": e.column, "message": e.message,
                    })).collect::<Vec<_>>(),
                })),
                OutputFormat::Table => {
                    for e in &report.errors {
                        println!("{e}");
                    }
                    eprintln!(
                        "{} file(s), {} DAG(s) loaded, {} error(s)",
                        report.files,
                        report.dags.len(),
                        report.errors.len()
                    );
                }
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DagsCommand::List {
            dags_folder,
            output,
        } => {
            let report = loader::load_folder(&folder(dags_folder));
            for e in &report.errors {
                eprintln!("import error: {e}");
            }
            let now = chrono::Utc::now();
            match output {
                OutputFormat::Json => print_json(&json!(
                    report
                        .dags
                        .iter()
                        .map(|d| json!({
                            "dag_id": d.id.to_string(),
                            "schedule": d.schedule.describe(),
                            "timezone": d.timezone.name(),
                            "tasks": d.tasks.len(),
                            "next_run": d.next_run_after(now).map(|t| t.to_rfc3339()),
                            "owner": d.owner,
                            "tags": d.tags,
                            "paused": d.paused,
                            "fileloc": d.fileloc,
                        }))
                        .collect::<Vec<_>>()
                )),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = report
                        .dags
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.to_string(),
                                d.schedule.describe(),
                                d.timezone.name().to_owned(),
                                d.tasks.len().to_string(),
                                d.next_run_after(now)
                                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                                    .unwrap_or_else(|| "-".into()),
                                d.owner.clone().unwrap_or_else(|| "-".into()),
                                d.tags.join(","),
                            ]
                        })
                        .collect();
                    print_table(
                        &[
                            "DAG", "SCHEDULE", "TIMEZONE", "TASKS", "NEXT RUN", "OWNER", "TAGS",
                        ],
                        &rows,
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Show {
            dag_id,
            dags_folder,
            format,
            output,
        } => {
            let report = loader::load_folder(&folder(dags_folder));
            let Some(dag) = report.dags.iter().find(|d| d.id.as_str() == dag_id) else {
                let failed = report
                    .errors
                    .iter()
                    .filter(|e| e.file.file_stem().is_some_and(|s| s == dag_id.as_str()));
                for e in failed {
                    eprintln!("import error: {e}");
                }
                bail!("no DAG `{dag_id}` loaded from {}", folder(None).display());
            };
            match (format, output) {
                (ShowFormat::Dot, _) => print!("{}", to_dot(dag)),
                (ShowFormat::Text, OutputFormat::Json) => print_json(&show_json(dag)),
                (ShowFormat::Text, OutputFormat::Table) => show_text(dag),
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Schema => {
            print!("{}", weir_core::schema::dag_file_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn names(dag: &Dag, idx: &[usize]) -> Vec<String> {
    idx.iter()
        .filter_map(|&i| dag.task_at(i))
        .map(|t| t.id.to_string())
        .collect()
}

fn datasets(list: Vec<&weir_core::dag::DatasetName>) -> Vec<String> {
    list.into_iter().map(ToString::to_string).collect()
}

fn ordered_tasks(dag: &Dag) -> impl Iterator<Item = (usize, &Task)> {
    dag.graph
        .topological_order()
        .iter()
        .filter_map(|&i| dag.task_at(i).map(|t| (i, t)))
}

fn show_json(dag: &Dag) -> serde_json::Value {
    json!({
        "dag_id": dag.id.to_string(),
        "description": dag.description,
        "schedule": dag.schedule.describe(),
        "timezone": dag.timezone.name(),
        "fileloc": dag.fileloc,
        "version": dag.version.hash,
        "tasks": ordered_tasks(dag).map(|(i, t)| json!({
            "task_id": t.id.to_string(),
            "kind": t.kind.name().as_str(),
            "trigger_rule": t.trigger_rule.as_str(),
            "upstream": names(dag, &dag.graph.upstream(i)),
            "reads": datasets(t.reads()),
            "writes": datasets(t.writes()),
        })).collect::<Vec<_>>(),
    })
}

fn show_text(dag: &Dag) {
    println!("{}  ({})", dag.id, dag.fileloc.display());
    if let Some(d) = &dag.description {
        println!("{d}");
    }
    println!(
        "schedule: {} ({}), version {}",
        dag.schedule.describe(),
        dag.timezone.name(),
        &dag.version.hash[..12]
    );
    println!();
    let rows: Vec<Vec<String>> = ordered_tasks(dag)
        .map(|(i, t)| {
            let dash = |v: Vec<String>| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(", ")
                }
            };
            vec![
                t.id.to_string(),
                t.kind.name().as_str().to_owned(),
                dash(names(dag, &dag.graph.upstream(i))),
                dash(datasets(t.reads())),
                dash(datasets(t.writes())),
            ]
        })
        .collect();
    print_table(&["TASK", "KIND", "UPSTREAM", "READS", "WRITES"], &rows);
}

fn to_dot(dag: &Dag) -> String {
    use weir_core::dag::graph::EdgeKind;
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        dag.id
    );
    for (_, t) in ordered_tasks(dag) {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            t.id,
            t.id,
            t.kind.name().as_str()
        ));
    }
    for (a, b, kind) in dag.graph.edges() {
        let (Some(a), Some(b)) = (dag.task_at(a), dag.task_at(b)) else {
            continue;
        };
        let style = match kind {
            EdgeKind::Explicit => String::new(),
            EdgeKind::Dataset => {
                let shared: Vec<String> = b
                    .reads()
                    .into_iter()
                    .filter(|d| a.writes().contains(d))
                    .map(ToString::to_string)
                    .collect();
                format!(" [style=dashed, label=\"{}\"]", shared.join(", "))
            }
        };
        out.push_str(&format!("  \"{}\" -> \"{}\"{style};\n", a.id, b.id));
    }
    out.push_str("}\n");
    out
}
