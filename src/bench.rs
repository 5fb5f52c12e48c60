//! `weir bench`: synthetic DAGs of no-op shell tasks (`true`) run by the real
//! scheduler and worker pool in this process; every number comes from the
//! timestamps the store recorded.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use weir_core::scheduler::{Options, Scheduler, SystemClock, Trigger};
use weir_core::store::{Store, TaskInstanceRecord};
use weir_worker::PoolOptions;

use crate::site::{Site, SiteOptions};

/// A synthetic workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 50 tasks in a line: task-to-task latency.
    Chain50,
    /// 1 → 200 → 1.
    Fanout200,
    /// 10 layers of 100, each task depending on 2 tasks of the layer before.
    Layered1000,
    /// 100 layers of 100, each task depending on 2 tasks of the layer before.
    Tasks10000,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Chain50 => "chain-50",
            Workload::Fanout200 => "fanout-200",
            Workload::Layered1000 => "layered-1000",
            Workload::Tasks10000 => "tasks-10000",
        }
    }

    fn dag(self) -> String {
        let mut y = String::from("tasks:\n");
        let mut task = |id: &str, deps: &[String]| {
            // A list runs `true` itself, as the bare pool it is measured
            // against does; a string would start a shell first.
            let _ = writeln!(y, "  {id}:\n    kind: shell\n    command: [\"true\"]");
            if !deps.is_empty() {
                let _ = writeln!(y, "    depends_on: [{}]", deps.join(", "));
            }
        };
        match self {
            Workload::Chain50 => {
                for i in 0..50 {
                    let deps = if i == 0 {
                        vec![]
                    } else {
                        vec![format!("t{}", i - 1)]
                    };
                    task(&format!("t{i}"), &deps);
                }
            }
            Workload::Fanout200 => {
                task("start", &[]);
                let fan: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
                for f in &fan {
                    task(f, &["start".to_owned()]);
                }
                task("end", &fan);
            }
            Workload::Layered1000 | Workload::Tasks10000 => {
                let layers = if self == Workload::Layered1000 {
                    10
                } else {
                    100
                };
                for l in 0..layers {
                    for j in 0..100 {
                        let deps = if l == 0 {
                            vec![]
                        } else {
                            vec![
                                format!("l{}_{j}", l - 1),
                                format!("l{}_{}", l - 1, (j + 1) % 100),
                            ]
                        };
                        task(&format!("l{l}_{j}"), &deps);
                    }
                }
            }
        }
        y
    }
}

/// Runs the workloads and prints a table.
pub async fn run(
    database: Option<String>,
    slots: usize,
    workloads: Vec<Workload>,
) -> anyhow::Result<ExitCode> {
    let dir = tempfile_dir()?;
    let url = database.unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let store = weir_core::store::open(&url)
        .await
        .with_context(|| format!("opening {}", weir_core::config::redacted_url(&url)))?;
    store.upsert_pool("default", 100_000, None).await?;
    println!(
        "database: {}",
        match weir_core::store::Backend::of(&url)? {
            weir_core::store::Backend::Sqlite => "SQLite",
            weir_core::store::Backend::Postgres => "PostgreSQL",
        }
    );
    println!("slots: {slots}");
    println!();
    println!(
        "{:<14} {:>6} {:>10} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "workload",
        "tasks",
        "total",
        "median step",
        "p95 step",
        "mean wait",
        "mean try",
        "peak RSS"
    );
    for w in workloads {
        let r = run_one(store.clone(), &dir, w, slots).await?;
        let hop = |d: Option<f64>| {
            d.map(|v| format!("{:.2} ms", v * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<14} {:>6} {:>9.3}s {:>12} {:>12} {:>12} {:>12} {:>7} MB",
            w.name(),
            r.tasks,
            r.total,
            hop(r.median_hop),
            hop(r.p95_hop),
            hop(Some(r.mean_wait)),
            hop(Some(r.mean_try)),
            peak_rss_mb()
        );
        if r.slices.len() > 1 {
            let each: Vec<String> = r.slices.iter().map(|ms| format!("{ms:.2}")).collect();
            println!("  ms per try, by 1,000 tries: {}", each.join(" "));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

struct Result {
    tasks: usize,
    total: f64,
    /// Mean time from queued to started (waiting for a worker slot).
    mean_wait: f64,
    /// Mean time from started to ended (the try, including reporting it).
    mean_try: f64,
    median_hop: Option<f64>,
    p95_hop: Option<f64>,
    /// Milliseconds per try in each slice of 1,000 tries, in the order they
    /// ended: flat when the cost of a try does not grow with the run.
    slices: Vec<f64>,
}

async fn run_one(
    store: Arc<dyn Store>,
    dir: &Path,
    w: Workload,
    slots: usize,
) -> anyhow::Result<Result> {
    let dags = dir.join(w.name()).join("dags");
    std::fs::create_dir_all(&dags)?;
    let dag_id = format!("bench_{}", w.name().replace('-', "_"));
    std::fs::write(dags.join(format!("{dag_id}.yaml")), w.dag())?;
    let sched = Scheduler::new(store.clone(), Arc::new(SystemClock), Options::default());
    let report = sched.sync_folder(&dags).await?;
    if !report.errors.is_empty() {
        bail!("generated DAG did not load: {:?}", report.errors);
    }
    let site = Site::start(
        &sched,
        SiteOptions {
            pool: PoolOptions {
                slots,
                logs_dir: dir.join(w.name()).join("logs"),
                role: format!("bench-{}", w.name()),
                poll: Duration::from_secs(1),
                connections: Default::default(),
                home: weir_worker::data::home::Home::Local(dir.join(w.name()).join("data")),
                retention: Default::default(),
                lineage: Default::default(),
            },
            secrets: weir_worker::secrets::Secrets::default(),
            watch: None,
            serve: None,
            notify: None,
            lineage: None,
        },
    )
    .await?;
    let run = sched
        .trigger(
            &dag_id,
            Trigger {
                actor: "bench".into(),
                ..Trigger::default()
            },
        )
        .await?;
    let run = loop {
        let r = store.get_run_by_pk(run.id).await?;
        if r.state.is_finished() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    site.stop().await;
    if run.state != weir_core::state::RunState::Success {
        bail!("the {} run ended {}", w.name(), run.state);
    }
    let tis = store.list_task_instances(run.id).await?;
    let total = match (run.start_date, run.end_date) {
        (Some(s), Some(e)) => seconds(e - s),
        _ => 0.0,
    };
    let (median_hop, p95_hop) = if w == Workload::Chain50 {
        hops(&tis)
    } else {
        (None, None)
    };
    let mean = |f: &dyn Fn(&TaskInstanceRecord) -> Option<f64>| {
        let v: Vec<f64> = tis.iter().filter_map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let mean_wait = mean(&|t| Some(seconds(t.start_date? - t.queued_at?)));
    let mean_try = mean(&|t| Some(seconds(t.end_date? - t.start_date?)));
    Ok(Result {
        tasks: tis.len(),
        total,
        median_hop,
        p95_hop,
        mean_wait,
        mean_try,
        slices: slices(&tis, 1000),
    })
}

/// Milliseconds per try in each run of `size` tries, by end time.
fn slices(tis: &[TaskInstanceRecord], size: usize) -> Vec<f64> {
    let mut ends: Vec<_> = tis.iter().filter_map(|t| t.end_date).collect();
    ends.sort();
    (size..ends.len())
        .step_by(size)
        .map(|i| seconds(ends[i] - ends[i - size]) * 1e3 / size as f64)
        .collect()
}

/// Task-to-task steps along a chain `t0 → t1 → …`: when `t(i+1)` ended minus
/// when `t(i)` ended. A step holds the whole hand-over (report, schedule, claim,
/// spawn) and the next no-op task's own run, so it bounds the latency from above.
fn hops(tis: &[TaskInstanceRecord]) -> (Option<f64>, Option<f64>) {
    let by = |i: usize| tis.iter().find(|t| t.task_id == format!("t{i}"));
    let mut hops: Vec<f64> = (0..tis.len().saturating_sub(1))
        .filter_map(|i| Some(seconds(by(i + 1)?.end_date? - by(i)?.end_date?)))
        .collect();
    hops.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        hops.get(((hops.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    (pick(0.5), pick(0.95))
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(0) as f64 / 1e6
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
