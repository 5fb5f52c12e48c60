//! `weir datasets …` and `weir quality`: the data catalog and the outcome of
//! validate tasks.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};
use weir_core::config::Config;
use weir_core::store::DatasetVersionRecord;

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// `weir datasets` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Every dataset: newest version, rows, size, when and by which task it was written.
    List {
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// One dataset: its versions, the newest schema, and lineage up and down.
    Show {
        /// `zone.name`, like clean.orders.
        name: String,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Check that every kept version is on disk with its recorded size, and
    /// find what the data folder holds that the catalog does not (exit 1
    /// when anything is wrong).
    Verify {
        /// `zone.name` (default: every dataset).
        name: Option<String>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Erase the rows a condition matches from every kept version of
    /// datasets (a deletion request): each version is rewritten without
    /// them, recorded and audited. Versions written later are not touched.
    Erase {
        /// `zone.name` of each dataset, like raw.orders clean.orders quarantine.orders.
        #[arg(required = true)]
        names: Vec<String>,
        /// A SQL condition on the datasets' columns: the rows where it is
        /// true are erased (`customer_id = 42`).
        #[arg(long = "where", value_name = "CONDITION")]
        condition: String,
        /// Count the rows it would erase; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Give datasets written before their folders were Delta Lake tables
    /// their Delta log: every kept version becomes one commit, oldest first
    /// (`weir standalone` does it when it starts; a dataset with a log is
    /// left alone).
    Migrate {
        /// `zone.name` (default: every dataset).
        name: Option<String>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Record that a dataset was updated outside weir: the DAGs scheduled on
    /// it run as for a new version (audited).
    Updated {
        /// `zone.name`, as a DAG names it.
        name: String,
        /// What to say about the update: a JSON object.
        #[arg(long)]
        extra: Option<String>,
    },
}

/// A scheduler on `store`, to read DAG versions (datasets' metadata).
fn scheduler_on(
    store: &std::sync::Arc<dyn weir_core::store::Store>,
) -> weir_core::scheduler::Scheduler {
    weir_core::scheduler::Scheduler::new(
        store.clone(),
        std::sync::Arc::new(weir_core::scheduler::SystemClock),
        weir_core::scheduler::Options::default(),
    )
}

fn producer(v: &DatasetVersionRecord) -> String {
    match (&v.dag_id, &v.task_id, &v.run_id) {
        (Some(d), Some(t), Some(r)) => format!("{d}.{t} ({r})"),
        _ => "-".into(),
    }
}

fn version_json(v: &DatasetVersionRecord) -> Value {
    json!({
        "id": v.id, "dataset": v.dataset, "version": v.version, "rows": v.rows, "bytes": v.bytes,
        "path": v.path, "created_at": v.created_at, "deleted_at": v.deleted_at,
        "dag_id": v.dag_id, "run_id": v.run_id, "task_id": v.task_id, "try_number": v.try_number,
        "inputs": v.input_ids(), "delta_version": v.delta_version,
    })
}

/// Runs a `weir datasets` subcommand.
pub async fn run(command: DatasetsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    if let DatasetsCommand::Updated { name, extra } = command {
        return updated(config, &name, extra.as_deref()).await;
    }
    if let DatasetsCommand::Verify { name, output } = command {
        return verify(config, name.as_deref(), output).await;
    }
    if let DatasetsCommand::Migrate { name, output } = command {
        return migrate(config, name.as_deref(), output).await;
    }
    if let DatasetsCommand::Erase {
        names,
        condition,
        dry_run,
        output,
    } = command
    {
        return erase(config, &names, &condition, dry_run, output).await;
    }
    let store = super::store(config).await?;
    let all = store.dataset_versions(None).await?;
    match command {
        DatasetsCommand::Updated { .. }
        | DatasetsCommand::Verify { .. }
        | DatasetsCommand::Migrate { .. }
        | DatasetsCommand::Erase { .. } => {}
        DatasetsCommand::List { output } => {
            let newest = weir_core::catalog::summaries(&all);
            let writers: Vec<(&str, Option<&str>)> = newest
                .iter()
                .map(|(name, d)| (*name, d.latest.dag_id.as_deref()))
                .collect();
            let meta = scheduler_on(&store).datasets_metadata(&writers).await;
            let about = |name: &str| meta.get(name).cloned().unwrap_or_default();
            match output {
                OutputFormat::Json => print_json(&Value::Array(
                    newest
                        .values()
                        .map(|d| {
                            let m = about(&d.latest.dataset);
                            json!({"dataset": d.latest.dataset, "versions": d.versions, "latest": version_json(d.latest), "owner": m.owner, "tags": m.tags})
                        })
                        .collect(),
                )),
                OutputFormat::Table => print_table(
                    &["DATASET", "VERSION", "VERSIONS", "ROWS", "BYTES", "WRITTEN", "BY", "OWNER", "TAGS"],
                    &newest
                        .values()
                        .map(|d| {
                            let (v, n) = (d.latest, d.versions);
                            let m = about(&v.dataset);
                            vec![
                                v.dataset.clone(),
                                v.version.to_string(),
                                n.to_string(),
                                v.rows.map(|r| r.to_string()).unwrap_or_default(),
                                v.bytes.map(|b| b.to_string()).unwrap_or_default(),
                                time(Some(v.created_at)),
                                producer(v),
                                m.owner.unwrap_or_default(),
                                m.tags.join(","),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        DatasetsCommand::Show { name, output } => {
            let Some(lineage) = weir_core::catalog::lineage(&all, &name) else {
                bail!(
                    "no dataset `{name}`: `weir datasets list` shows the datasets written so far"
                );
            };
            let (versions, latest, upstream, downstream) = (
                &lineage.versions,
                lineage.latest,
                &lineage.upstream,
                &lineage.downstream,
            );
            let schema: Value = latest
                .schema
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            let meta = scheduler_on(&store)
                .dataset_metadata(&name, latest.dag_id.as_deref())
                .await
                .unwrap_or_default();
            match output {
                OutputFormat::Json => print_json(&json!({
                    "dataset": name,
                    "metadata": meta,
                    "versions": versions.iter().map(|v| version_json(v)).collect::<Vec<_>>(),
                    "schema": schema,
                    "upstream": upstream.iter().map(|v| json!({"dataset": v.dataset, "version": v.version, "checked": !weir_core::catalog::unchecked_edge(&v.dataset, &name)})).collect::<Vec<_>>(),
                    "downstream": downstream.iter().map(|(d, v)| json!({"dataset": d, "latest_version": v})).collect::<Vec<_>>(),
                })),
                OutputFormat::Table => {
                    println!("{name}: {} version(s)", versions.len());
                    if let Some(d) = &meta.description {
                        println!("{d}");
                    }
                    if let Some(o) = &meta.owner {
                        println!("owner: {o}");
                    }
                    if !meta.tags.is_empty() {
                        println!("tags: {}", meta.tags.join(", "));
                    }
                    println!();
                    print_table(
                        &[
                            "VERSION", "DELTA", "ROWS", "BYTES", "WRITTEN", "BY", "DELETED",
                        ],
                        &versions
                            .iter()
                            .map(|v| {
                                vec![
                                    v.version.to_string(),
                                    v.delta_version.map(|d| d.to_string()).unwrap_or_default(),
                                    v.rows.map(|r| r.to_string()).unwrap_or_default(),
                                    v.bytes.map(|b| b.to_string()).unwrap_or_default(),
                                    time(Some(v.created_at)),
                                    producer(v),
                                    time(v.deleted_at),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    );
                    println!("\nschema of version {}:", latest.version);
                    for f in schema.as_array().into_iter().flatten() {
                        let column = f["name"].as_str().unwrap_or_default();
                        let about = meta.columns.get(column);
                        let class = about
                            .and_then(|c| c.classification)
                            .map(|c| format!(" [{}]", c.as_str()))
                            .unwrap_or_default();
                        let text = about
                            .and_then(|c| c.description.as_deref())
                            .map(|d| format!(" — {d}"))
                            .unwrap_or_default();
                        println!(
                            "  {:<24} {}{}{class}{text}",
                            column,
                            f["type"].as_str().unwrap_or_default(),
                            if f["nullable"] == Value::Bool(true) {
                                ""
                            } else {
                                " not null"
                            }
                        );
                    }
                    println!("\nmade from (version {}):", latest.version);
                    for v in upstream {
                        let unchecked = if weir_core::catalog::unchecked_edge(&v.dataset, &name) {
                            " (unchecked)"
                        } else {
                            ""
                        };
                        println!("  {} version {}{unchecked}", v.dataset, v.version);
                    }
                    println!("\nread by:");
                    for (d, v) in downstream {
                        println!("  {d} (latest version {v})");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir quality DAG RUN`: each validate task's counts and check results.
pub async fn quality(
    config: &Config,
    dag_id: &str,
    run_id: &str,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    store.get_run(dag_id, run_id).await?;
    let results = store.quality_of_run(dag_id, run_id).await?;
    match output {
        OutputFormat::Json => print_json(&Value::Array(
            results
                .iter()
                .map(|(q, checks)| {
                    json!({
                        "task_id": q.task_id, "try_number": q.try_number, "dataset": q.dataset,
                        "rows_in": q.rows_in, "rows_clean": q.rows_clean, "rows_quarantined": q.rows_quarantined,
                        "reconciled": q.rows_in == q.rows_clean + q.rows_quarantined, "published": q.published,
                        "checks": checks.iter().map(|c| json!({
                            "name": c.name, "kind": c.kind.as_str(), "column": c.column_name, "passed": c.passed,
                            "failed": c.failed, "observed": c.observed, "threshold": c.threshold, "severity": c.severity.as_str(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            if results.is_empty() {
                println!("run {run_id} of {dag_id} has no validate results");
            }
            for (q, checks) in &results {
                println!(
                    "{} try {} on {}: {} in = {} clean + {} quarantined{}{}",
                    q.task_id,
                    q.try_number,
                    q.dataset,
                    q.rows_in,
                    q.rows_clean,
                    q.rows_quarantined,
                    if q.rows_in == q.rows_clean + q.rows_quarantined { "" } else { " (DOES NOT RECONCILE)" },
                    if q.published { "" } else { "; clean version NOT published" }
                );
                print_table(
                    &["CHECK", "KIND", "COLUMN", "RESULT", "FAILED", "OBSERVED", "LIMIT", "SEVERITY"],
                    &checks
                        .iter()
                        .map(|c| {
                            vec![
                                c.name.clone(),
                                c.kind.to_string(),
                                c.column_name.clone().unwrap_or_default(),
                                if c.passed { "passed".into() } else { "failed".into() },
                                c.failed.to_string(),
                                c.observed.clone().unwrap_or_default(),
                                c.threshold.clone().unwrap_or_default(),
                                c.severity.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir datasets updated NAME`: records an update made outside weir.
async fn updated(config: &Config, name: &str, extra: Option<&str>) -> anyhow::Result<ExitCode> {
    let extra: Option<Value> = extra
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--extra is not JSON: {e}"))?;
    let sched = super::scheduler(config).await?;
    let Some(asset) = sched
        .store()
        .list_assets(Some(name))
        .await?
        .into_iter()
        .find(|a| a.name == name)
    else {
        anyhow::bail!("no DAG names dataset `{name}`");
    };
    let event = sched
        .record_asset_event(&super::actor(), asset.id, extra.as_ref())
        .await?;
    println!("recorded update {} of {name}", event.id);
    Ok(ExitCode::SUCCESS)
}

/// `weir datasets erase`.
async fn erase(
    config: &Config,
    names: &[String],
    condition: &str,
    dry_run: bool,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    let home = crate::site::data_home(config)?;
    let found = weir_worker::data::erase::erase(
        store.as_ref(),
        &home,
        names,
        condition,
        &super::actor(),
        dry_run,
    )
    .await?;
    let matched: u64 = found.iter().map(|e| e.matched).sum();
    let touched = found.iter().filter(|e| e.matched > 0).count();
    match output {
        OutputFormat::Json => print_json(&json!({
            "where": condition,
            "dry_run": dry_run,
            "versions": found.iter().map(|e| json!({
                "dataset": e.dataset, "version": e.version, "matched": e.matched, "rows": e.rows,
            })).collect::<Vec<_>>(),
            "rows": matched,
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|e| {
                    vec![
                        e.dataset.clone(),
                        e.version.to_string(),
                        e.matched.to_string(),
                        e.rows.to_string(),
                    ]
                })
                .collect();
            let head = if dry_run { "WOULD ERASE" } else { "ERASED" };
            print_table(&["DATASET", "VERSION", head, "ROWS NOW"], &rows);
            if dry_run {
                println!("would erase {matched} row(s) from {touched} version(s); nothing changed");
            } else {
                println!("erased {matched} row(s) from {touched} version(s) (audited)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(
    config: &Config,
    name: Option<&str>,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    let done = weir_worker::data::migrate::migrate(store.as_ref(), name).await?;
    match output {
        OutputFormat::Json => print_json(&Value::Array(
            done.iter()
                .map(|m| {
                    json!({
                        "dataset": m.dataset, "folder": m.folder.display().to_string(),
                        "versions": m.versions.iter().map(|(v, d)| json!({"version": v, "delta_version": d})).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            for m in &done {
                println!(
                    "{}: {} version(s) committed to the Delta table in {}",
                    m.dataset,
                    m.versions.len(),
                    m.folder.display()
                );
            }
            println!("{} dataset(s) migrated", done.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir datasets verify [NAME]`.
async fn verify(
    config: &Config,
    name: Option<&str>,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    let home = crate::site::data_home(config)?;
    let report = weir_worker::data::verify::verify(store.as_ref(), &home, name).await?;
    let version = |f: &weir_worker::data::verify::Finding| {
        f.version
            .as_ref()
            .map(|(d, v)| format!("{d} v{v}"))
            .unwrap_or_default()
    };
    match output {
        OutputFormat::Json => print_json(&json!({
            "checked": report.checked,
            "findings": report.findings.iter().map(|f| json!({
                "version": version(f), "path": f.path.to_string(), "problem": f.problem.to_string(),
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            if !report.findings.is_empty() {
                let rows: Vec<Vec<String>> = report
                    .findings
                    .iter()
                    .map(|f| vec![version(f), f.path.to_string(), f.problem.to_string()])
                    .collect();
                print_table(&["VERSION", "PATH", "PROBLEM"], &rows);
            }
            println!(
                "{} kept version(s) checked, {} problem(s)",
                report.checked,
                report.findings.len()
            );
        }
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
