//! Server time of the web UI's heaviest pages, in process (no network):
//! the DAG page and a grid page with 1,000 runs × 50 tasks in the database,
//! and the datasets page with 100 datasets × 50 versions; and the page weight
//! of the DAG page (HTML and assets).
//!
//! `cargo run --release -p weir-api --example ui_bench [DATABASE_URL]`
//! (default: SQLite in a temporary folder; a URL must name an empty
//! database, which the benchmark migrates and fills).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;
use weir_core::access::{Role, UserRecord};
use weir_core::scheduler::{Options, Scheduler, SystemClock};
use weir_core::state::RunType;
use weir_core::store::{NewDatasetVersion, NewRun, NewTaskInstance, TryRef};

const RUNS: usize = 1000;
const TASKS: usize = 50;
const DATASETS: usize = 100;
const VERSIONS: usize = 50;
const REPEAT: usize = 25;

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let dir = tempfile::tempdir()?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let store = weir_core::store::open(&url).await?;
    store.migrate().await?;
    let dags = dir.path().join("dags");
    std::fs::create_dir_all(&dags)?;
    let mut yaml = String::from("dag: big\nschedule: manual\ntasks:\n");
    for t in 0..TASKS {
        yaml.push_str(&format!(
            "  t{t:02}:\n    kind: shell\n    command: \"true\"\n"
        ));
        if t > 0 {
            yaml.push_str(&format!("    depends_on: [t{:02}]\n", (t - 1) / 2));
        }
    }
    std::fs::write(dags.join("big.yaml"), yaml)?;
    let sched = Scheduler::new(store.clone(), Arc::new(SystemClock), Options::default());
    sched.sync_folder(&dags).await?;
    let version = store.get_dag("big").await?.latest_version_id;
    let started = Instant::now();
    let t0 = chrono::Utc::now() - chrono::Duration::days(2000);
    for r in 0..RUNS {
        let at = t0 + chrono::Duration::days(i64::try_from(r)?);
        store
            .create_run(&NewRun {
                dag_id: "big".into(),
                run_id: format!("run_{r:04}"),
                version_id: version,
                run_type: RunType::Manual,
                logical_date: Some(at),
                data_interval_start: Some(at),
                data_interval_end: Some(at),
                run_after: at,
                conf: "{}".into(),
                note: None,
                triggered_by: None,
                trigger_versions: None,
                queued_at: at,
                tasks: (0..TASKS)
                    .map(|t| NewTaskInstance {
                        task_id: format!("t{t:02}"),
                        max_tries: 0,
                        pool: "default".into(),
                        queue: "default".into(),
                        priority: 0,
                    })
                    .collect(),
            })
            .await?;
    }
    let mut previous = Vec::new();
    for v in 0..VERSIONS {
        let mut made = Vec::new();
        for d in 0..DATASETS {
            let rec = store
                .record_dataset_version(
                    &NewDatasetVersion {
                        dataset: format!("clean.set_{d:03}"),
                        producer: Some(TryRef {
                            dag_id: "big".into(),
                            run_id: format!("run_{v:04}"),
                            task_id: "t00".into(),
                            try_number: 1,
                        }),
                        rows: Some(1000),
                        path: Some(format!("data/clean/set_{d:03}/v={}", v + 1)),
                        schema: Some(
                            "[{\"name\":\"id\",\"type\":\"Int64\",\"nullable\":false}]".into(),
                        ),
                        bytes: Some(65536),
                        inputs: previous.get(d).copied().into_iter().collect(),
                        delta_version: None,
                    },
                    chrono::Utc::now(),
                )
                .await?;
            made.push(rec.id);
        }
        previous = made;
    }
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());
    store
        .create_user(&UserRecord {
            username: "bench".into(),
            password_hash: weir_api::auth::password::hash("bench-password")?,
            role: Role::Admin,
            created_at: chrono::Utc::now(),
            last_login_at: None,
        })
        .await?;
    let state = weir_api::AppState::new(
        sched.clone(),
        dir.path().join("logs"),
        None,
        chrono::Duration::hours(1),
    )
    .await?;
    let now = chrono::Utc::now();
    let token = state
        .auth
        .jwt()
        .issue("bench", now, now + chrono::Duration::hours(1))?;
    let app = weir_api::app(state);
    let get = |path: &str| {
        Request::get(path)
            .header(header::COOKIE, format!("weir_session={token}"))
            .body(Body::empty())
    };
    println!("| page | median | p90 | HTML | gzipped |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut dag_page = 0;
    for (name, path) in [
        ("DAG page (newest 25 runs, graph)", "/dags/big"),
        ("grid page (runs 501–525)", "/dags/big?offset=500"),
        ("DAG page, Gantt view", "/dags/big?view=gantt"),
        ("datasets", "/datasets"),
        (
            "one dataset (50 versions, lineage)",
            "/datasets/clean.set_050",
        ),
        ("DAGs (home)", "/"),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..REPEAT {
            let t = Instant::now();
            let resp = app.clone().oneshot(get(path)?).await?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
            times.push(t.elapsed());
            if status != StatusCode::OK {
                return Err(format!("{path}: {status}").into());
            }
            size = body.len();
        }
        times.sort();
        let mut zipped = get(path)?;
        zipped
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, "gzip".parse()?);
        let resp = app.clone().oneshot(zipped).await?;
        let gz = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await?
            .len();
        if path == "/dags/big" {
            dag_page = gz;
        }
        println!(
            "| {name} | {} | {} | {:.1} KB | {:.1} KB |",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            size as f64 / 1000.0,
            gz as f64 / 1000.0
        );
    }
    let mut assets = 0;
    for file in ["weir.css", "weir.js", "favicon.svg"] {
        let req = Request::get(format!("/static/{file}"))
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())?;
        let resp = app.clone().oneshot(req).await?;
        assets += axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await?
            .len();
    }
    println!(
        "\nDAG page weight, gzipped: {:.1} KB HTML + {:.1} KB assets (CSS, script, icon) = {:.1} KB",
        dag_page as f64 / 1000.0,
        assets as f64 / 1000.0,
        (dag_page + assets) as f64 / 1000.0
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
