//! `weir dags …`: validate, list, show, schema, trigger, test, pause, unpause.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use weir_core::config::Config;
use weir_core::dag::{Dag, Task};
use weir_core::loader;
use weir_core::scheduler::{Options, Scheduler, SystemClock, Trigger};
use weir_core::state::TaskState;

use crate::site::{Site, SiteOptions};

use crate::output::{OutputFormat, print_json, print_table};

/// `weir dags` subcommands.
#[derive(Debug, Subcommand)]
pub enum DagsCommand {
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
    /// Trigger a run; a running `weir standalone` on the same database runs it.
    Trigger {
        /// The DAG id.
        dag_id: String,
        /// Conf: a JSON object that overrides the DAG's params.
        #[arg(long)]
        conf: Option<String>,
        /// The logical date (RFC 3339; default now).
        #[arg(long)]
        logical_date: Option<String>,
        /// The run id (default `manual__<logical date>`).
        #[arg(long)]
        run_id: Option<String>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Run one DAG run in this process to completion, printing each state
    /// change; exit 0 if the run succeeds, 1 if it fails. Uses a throwaway database.
    Test {
        /// The DAG id.
        dag_id: String,
        /// Conf: a JSON object that overrides the DAG's params.
        #[arg(long)]
        conf: Option<String>,
        /// Task slots.
        #[arg(long, default_value_t = 4)]
        slots: usize,
    },
    /// Pause a DAG: it creates no new runs.
    Pause {
        /// The DAG id.
        dag_id: String,
    },
    /// Unpause a DAG.
    Unpause {
        /// The DAG id.
        dag_id: String,
    },
}

/// How `dags show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ShowFormat {
    /// Tasks, kinds, dependencies and datasets.
    #[default]
    Text,
    /// A Graphviz graph.
    Dot,
}

/// Runs a `weir dags` subcommand.
pub async fn run(command: DagsCommand, config: &Config) -> anyhow::Result<ExitCode> {
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
            let report = load(dir).await?;
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
            let report = load(folder(dags_folder)).await?;
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
                            "next_run": (!d.paused).then(|| d.next_run_after(now)).flatten().map(|t| t.to_rfc3339()),
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
                                if d.paused {
                                    "paused".to_owned()
                                } else {
                                    d.next_run_after(now)
                                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                                        .unwrap_or_else(|| "-".into())
                                },
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
            let report = load(folder(dags_folder)).await?;
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
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
            run_id,
            output,
        } => {
            let sched = super::scheduler(config).await?;
            sync(&sched, config).await?;
            let trigger = Trigger {
                run_id,
                logical_date: logical_date.as_deref().map(parse_time).transpose()?,
                conf: conf.as_deref().map(parse_conf).transpose()?,
                note: None,
                actor: super::actor(),
            };
            let run = sched.trigger(&dag_id, trigger).await?;
            match output {
                OutputFormat::Json => print_json(
                    &json!({"dag_id": run.dag_id, "dag_run_id": run.run_id, "state": run.state.as_str()}),
                ),
                OutputFormat::Table => println!(
                    "triggered {} run {} ({})",
                    run.dag_id, run.run_id, run.state
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Test {
            dag_id,
            conf,
            slots,
        } => test(config, &dag_id, conf.as_deref(), slots).await,
        DagsCommand::Pause { dag_id } => {
            let sched = super::scheduler(config).await?;
            sync(&sched, config).await?;
            sched.pause(&dag_id, &super::actor()).await?;
            println!("{dag_id} is paused");
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Unpause { dag_id } => {
            let sched = super::scheduler(config).await?;
            sync(&sched, config).await?;
            sched.unpause(&dag_id, &super::actor()).await?;
            println!("{dag_id} is unpaused");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn load(dir: PathBuf) -> anyhow::Result<loader::LoadReport> {
    tokio::task::spawn_blocking(move || loader::load_folder(&dir))
        .await
        .context("loading DAG files")
}

/// Loads the DAG folder into the database, reporting import errors on stderr.
pub async fn sync(sched: &Scheduler, config: &Config) -> anyhow::Result<()> {
    let report = sched.sync_folder(&config.core.dags_folder).await?;
    for e in &report.errors {
        eprintln!("import error: {e}");
    }
    Ok(())
}

fn parse_conf(text: &str) -> anyhow::Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(text).context("--conf is not valid JSON")?;
    if !v.is_object() {
        bail!("--conf must be a JSON object, like '{{\"region\": \"eu\"}}'");
    }
    Ok(v)
}

fn parse_time(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--logical-date `{text}` is not YYYY-MM-DD or RFC 3339"))?
        .with_timezone(&chrono::Utc))
}

/// `weir dags test`: a throwaway SQLite database, one run, a local pool, and
/// every state change printed as it happens.
async fn test(
    config: &Config,
    dag_id: &str,
    conf: Option<&str>,
    slots: usize,
) -> anyhow::Result<ExitCode> {
    let tmp = std::env::temp_dir().join(format!(
        "weir-test-{}-{}.db",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let url = format!("sqlite://{}", tmp.display());
    let store = weir_core::store::open(&url).await?;
    let sched = Scheduler::new(
        store,
        Arc::new(SystemClock),
        Options {
            tick: Duration::from_millis(200),
            ..Options::default()
        },
    );
    sync(&sched, config).await?;
    // Only the DAG under test runs: no schedule creates runs in this database.
    for dag in sched.store().list_dags().await? {
        sched.store().set_paused(&dag.dag_id, true, None).await?;
    }
    let trigger = Trigger {
        conf: conf.map(parse_conf).transpose()?,
        actor: super::actor(),
        ..Trigger::default()
    };
    let run = sched.trigger(dag_id, trigger).await?;
    println!("{} run {}", run.dag_id, run.run_id);
    let mut options = SiteOptions::from_config(config, "dags-test", slots)?;
    options.pool.poll = Duration::from_millis(200);
    // Notifications are delivered before the command ends, retried briefly.
    options.notify = options
        .notify
        .map(|n| weir_worker::notify::NotifierOptions {
            first_retry: Duration::from_millis(500),
            attempts: 3,
            poll: Duration::from_millis(100),
            ..n
        });
    options.pool.home = weir_worker::data::home::Home::Local(
        std::env::temp_dir().join(format!("weir-dags-test-{}", std::process::id())),
    );
    let site = Site::start(&sched, options).await?;
    let mut seen: HashMap<String, (TaskState, i64)> = HashMap::new();
    let started = std::time::Instant::now();
    let final_state = loop {
        // The run before its task instances: once it has ended, the list
        // read after holds every task's last state, which is printed too.
        let r = sched.store().get_run_by_pk(run.id).await?;
        for ti in sched.store().list_task_instances(run.id).await? {
            let now = (ti.state, ti.try_number);
            // A mapped instance is shown as `task[2]`.
            let name = if ti.map_index < 0 {
                ti.task_id.clone()
            } else {
                format!("{}[{}]", ti.task_id, ti.map_index)
            };
            if seen.get(&name) != Some(&now) {
                let elapsed = started.elapsed().as_secs_f64();
                println!(
                    "{elapsed:>8.3}s  {name:<24} {:<16} try {}",
                    ti.state.as_str(),
                    ti.try_number
                );
                seen.insert(name, now);
            }
        }
        if r.state.is_finished() {
            break r.state;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let waited = std::time::Instant::now();
    loop {
        let all = sched.store().run_notifications(run.id).await?;
        if all.iter().all(|n| n.state != "pending") || waited.elapsed() > Duration::from_secs(30) {
            for n in all {
                let about = n
                    .task_id
                    .as_deref()
                    .map(|t| format!(" of {t}"))
                    .unwrap_or_default();
                let why = n.last_error.map(|e| format!(": {e}")).unwrap_or_default();
                println!(
                    "notification {}{about} ({}): {}{why}",
                    n.event.as_str(),
                    n.rule,
                    n.state
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    site.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    println!(
        "run {}: {final_state} (logs in {})",
        run.run_id,
        config.core.logs_dir.display()
    );
    Ok(if final_state == weir_core::state::RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
            "unchecked_reads": datasets(t.reads().into_iter().filter(|d| t.reads_unchecked(d)).collect()),
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
                dash(
                    t.reads()
                        .into_iter()
                        .map(|d| match t.reads_unchecked(d) {
                            true => format!("{d} (unchecked)"),
                            false => d.to_string(),
                        })
                        .collect(),
                ),
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
            EdgeKind::Dataset | EdgeKind::UncheckedDataset => {
                let shared: Vec<String> = b
                    .reads()
                    .into_iter()
                    .filter(|d| a.writes().contains(d))
                    .map(ToString::to_string)
                    .collect();
                let unchecked = if kind == EdgeKind::UncheckedDataset {
                    " (unchecked)\", color=red"
                } else {
                    "\""
                };
                format!(" [style=dashed, label=\"{}{unchecked}]", shared.join(", "))
            }
        };
        out.push_str(&format!("  \"{}\" -> \"{}\"{style};\n", a.id, b.id));
    }
    out.push_str("}\n");
    out
}
