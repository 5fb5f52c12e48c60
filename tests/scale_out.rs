//! weir scaled out on PostgreSQL as an operator runs it: `weir scheduler`,
//! `weir api` and `weir worker` processes on 127.0.0.1, killed, stopped and
//! resumed with real signals, and the database restarted under them. Every
//! wait polls with a deadline. The cases share the one PostgreSQL server, so
//! they run one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod support;

/// One case at a time: a case restarts the database server.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A folder with DAGs, a config on a fresh PostgreSQL database and the
/// processes started in it.
struct Cluster {
    dir: tempfile::TempDir,
    procs: HashMap<String, Child>,
    token: String,
}

impl Cluster {
    fn new(url: &str, lease: u64, dags: &[(&str, String)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dags")).unwrap();
        for (name, text) in dags {
            std::fs::write(dir.path().join("dags").join(name), text).unwrap();
        }
        let config = format!(
            "[core]\ndags_folder = \"{0}/dags\"\nlogs_dir = \"{0}/logs\"\ndata_dir = \"{0}/data\"\nlease = {lease}\n\
             [database]\nurl = \"{url}\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("weir.toml"), config).unwrap();
        let mut c = Cluster {
            dir,
            procs: HashMap::new(),
            token: String::new(),
        };
        let out = c.run(&["tokens", "create", "--role", "worker"]);
        c.token = out
            .lines()
            .find(|l| l.starts_with("weir_"))
            .unwrap_or_else(|| panic!("no token in: {out}"))
            .to_owned();
        c
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
        c.arg("--config")
            .arg(self.path("weir.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WEIR_DATABASE_URL")
            .env_remove("WEIR_CONFIG")
            .env_remove("WEIR_TEST_DATABASE_URL")
            .env_remove("WEIR_TEST_PYTHON");
        c
    }

    /// Runs a command to its end; returns its output.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("weir {args:?}: {e}: {out}"))
    }

    /// Starts a long-running process named `name`, logging to `<name>.log`.
    fn start(&mut self, name: &str, args: &[&str]) {
        let child = self
            .command(args)
            .env("WEIR_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path(&format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        self.procs.insert(name.to_owned(), child);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts `weir api` on a free port; returns its URL.
    fn api(&mut self, name: &str) -> String {
        self.start(name, &["api", "--bind", "127.0.0.1:0"]);
        self.wait_for(&format!("{name} to listen"), || {
            self.log(name).contains("listening on")
        });
        let log = self.log(name);
        let at = log.find("http://127.0.0.1:").unwrap();
        log[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
            .collect()
    }

    /// Starts `weir worker` against `servers`, serving `queues`, with logs
    /// of its own (as on another machine: the servers read them from the
    /// pieces it pushes).
    fn worker(&mut self, name: &str, servers: &[&str], queues: &str, slots: usize) {
        self.worker_with(name, servers, queues, slots, &[]);
    }

    /// [`Cluster::worker`] with these environment variables too.
    fn worker_with(
        &mut self,
        name: &str,
        servers: &[&str],
        queues: &str,
        slots: usize,
        env: &[(&str, &std::path::Path)],
    ) {
        let (servers, slots, token) = (servers.join(","), slots.to_string(), self.token.clone());
        let logs = self.path(&format!("worker-logs/{name}"));
        let child = self
            .command(&[
                "worker", "--server", &servers, "--token", &token, "--queues", queues, "--slots",
                &slots, "--name", name, "--grace", "2",
            ])
            .env("WEIR_LOG", "info,sqlx=warn")
            .env("WEIR_CORE_LOGS_DIR", logs)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path(&format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        self.procs.insert(name.to_owned(), child);
        self.wait_for(&format!("{name} to register"), || {
            self.log(name).contains("claiming work")
        });
    }

    fn signal(&self, name: &str, signal: &str) {
        let pid = self.procs[name].id().to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {name}");
    }

    /// SIGKILLs a process and reaps it.
    fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.procs.remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done() {
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .procs
                    .keys()
                    .map(|n| format!("--- {n}\n{}", tail(&self.log(n), 30)))
                    .collect();
                panic!("timed out waiting for {what}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run states of a DAG's runs.
    fn run_states(&self, dag: &str) -> Vec<String> {
        self.json(&["runs", "list", dag, "--limit", "100", "--output", "json"])["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["state"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The id of a DAG's newest run.
    fn newest_run(&self, dag: &str) -> String {
        self.json(&["runs", "list", dag, "--output", "json"])["dag_runs"][0]["dag_run_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn lines(&self, rel: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        for n in names {
            // A stopped process must be resumed to die of SIGKILL promptly.
            self.signal(&n, "-CONT");
            self.kill(&n);
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A DAG of `n` tasks in layers of 25 (each task follows the one 25 before
/// it), on `queue`; every try appends `dag.task,try,worker` to `effects.txt`.
fn layered(dag: &str, n: usize, queue: &str) -> String {
    let mut text = format!(
        "schedule: manual\ndefaults: {{queue: {queue}, retries: 2, retry_delay: 1s}}\ntasks:\n"
    );
    for i in 0..n {
        text.push_str(&format!(
            "  t{i:03}: {{kind: shell, command: 'echo \"{dag}.t{i:03},$WEIR_TRY_NUMBER,$WEIR_WORKER\" >> ../effects.txt'"
        ));
        if i >= 25 {
            text.push_str(&format!(", depends_on: [t{:03}]", i - 25));
        }
        text.push_str("}\n");
    }
    text
}

fn postgres() -> Option<(tokio::runtime::Runtime, weir_core::testing::TestDb)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(weir_core::testing::postgres())?;
    Some((runtime, db))
}

/// Restarts the PostgreSQL server, when this machine lets the test do it.
fn restart_postgres() -> bool {
    let found = Command::new("pg_lsclusters")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(list) = found else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must restart PostgreSQL here, but pg_lsclusters is missing"
        );
        eprintln!("notice: pg_lsclusters is not here; the database is not restarted");
        return false;
    };
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let Some(cluster) = text.lines().skip(1).find(|l| l.contains("5432")) else {
        eprintln!("notice: no cluster on port 5432; the database is not restarted");
        return false;
    };
    let fields: Vec<&str> = cluster.split_whitespace().collect();
    let restart = |extra: &[&str]| {
        Command::new("pg_ctlcluster")
            .args(extra)
            .args([fields[0], fields[1], "restart"])
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = restart(&["--skip-systemctl-redirect"]) || restart(&[]);
    assert!(
        ok,
        "pg_ctlcluster {} {} restart failed",
        fields[0], fields[1]
    );
    true
}

#[test]
fn schedulers_apis_and_workers_run_a_thousand_tasks_each_try_once_through_kills_and_a_database_restart()
 {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let dags = [
        ("a.yaml", layered("a", 250, "default")),
        ("b.yaml", layered("b", 250, "default")),
        ("c.yaml", layered("c", 250, "etl")),
        ("d.yaml", layered("d", 250, "gpu")),
    ];
    let dag_refs: Vec<(&str, String)> = dags.iter().map(|(n, t)| (*n, t.clone())).collect();
    let mut c = Cluster::new(&db.url, 5, &dag_refs);
    c.start("scheduler-1", &["scheduler"]);
    c.start("scheduler-2", &["scheduler"]);
    let api1 = c.api("api-1");
    let api2 = c.api("api-2");
    c.worker("w-default", &[&api1, &api2], "default", 8);
    c.worker("w-etl", &[&api2, &api1], "default,etl", 8);
    c.worker("w-gpu", &[&api2, &api1], "etl,gpu", 8);
    for dag in ["a", "b", "c", "d"] {
        c.run(&["dags", "trigger", dag]);
    }
    let done = |c: &Cluster| c.lines("effects.txt").len();
    c.wait_for("a quarter of the tasks", || done(&c) >= 250);
    // One scheduler and one API server die; the workers on that server move
    // to the other.
    c.kill("scheduler-1");
    c.kill("api-2");
    c.wait_for("half of the tasks", || done(&c) >= 500);
    let restarted = restart_postgres();
    c.wait_for("every run to end", || {
        ["a", "b", "c", "d"].iter().all(|d| {
            c.run_states(d)
                .iter()
                .all(|s| s == "success" || s == "failed")
        })
    });
    for dag in ["a", "b", "c", "d"] {
        assert_eq!(c.run_states(dag), ["success"], "DAG {dag}");
    }
    // Every try ran exactly once, on one worker: a line per try, no repeats.
    let lines = c.lines("effects.txt");
    let mut seen: HashMap<(String, String), Vec<String>> = HashMap::new();
    for l in &lines {
        let parts: Vec<&str> = l.split(',').collect();
        assert_eq!(parts.len(), 3, "{l}");
        seen.entry((parts[0].to_owned(), parts[1].to_owned()))
            .or_default()
            .push(parts[2].to_owned());
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "tries that ran more than once: {repeated:?}"
    );
    let tasks: std::collections::HashSet<&String> = seen.keys().map(|(t, _)| t).collect();
    assert_eq!(tasks.len(), 1000);
    // Each queue's tasks ran only on workers that serve it.
    for ((task, _), workers) in &seen {
        let allowed: &[&str] = match &task[..1] {
            "a" | "b" => &["w-default", "w-etl"],
            "c" => &["w-etl", "w-gpu"],
            _ => &["w-gpu"],
        };
        assert!(
            workers
                .iter()
                .all(|w| allowed.iter().any(|a| w.starts_with(a))),
            "{task} ran on {workers:?}"
        );
    }
    // The survivors noticed what happened and carried on.
    if restarted {
        let listed = c.json(&["workers", "list", "--output", "json"]);
        assert_eq!(listed["workers"].as_array().unwrap().len(), 3, "{listed}");
    }
    drop(c);
    runtime.block_on(db.cleanup());
}

/// One task whose first try takes long; the retry is quick.
const NAP: &str = "schedule: manual\ntasks:\n  nap:\n    kind: shell\n    retries: 1\n    retry_delay: 1s\n    command: >-\n      echo start,$WEIR_TRY_NUMBER,$WEIR_WORKER >> ../effects.txt;\n      if [ $WEIR_TRY_NUMBER = 1 ]; then sleep 20; fi;\n      echo end,$WEIR_TRY_NUMBER,$WEIR_WORKER >> ../effects.txt\n";

/// A scheduler, an API server and two workers (lease 3 s) running `NAP`,
/// once its first try has started; returns the worker running it.
fn nap_started(url: &str) -> (Cluster, String) {
    let mut c = Cluster::new(url, 3, &[("nap.yaml", NAP.to_owned())]);
    c.start("scheduler", &["scheduler"]);
    let api = c.api("api");
    c.worker("w-one", &[&api], "default", 2);
    c.worker("w-two", &[&api], "default", 2);
    c.run(&["dags", "trigger", "nap"]);
    c.wait_for("the first try to start", || {
        worker_in(&c.lines("effects.txt"), "start,1,").is_some()
    });
    let first = worker_in(&c.lines("effects.txt"), "start,1,").unwrap();
    (c, first)
}

/// The worker named in the line that starts with `prefix`.
fn worker_in(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(',').next())
        .and_then(|w| w.split('@').next())
        .map(str::to_owned)
}

#[test]
fn a_killed_worker_s_try_fails_after_its_lease_and_is_retried_on_another_worker() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let (mut c, first) = nap_started(&db.url);
    c.kill(&first);
    c.wait_for("the run to end", || {
        c.run_states("nap")
            .iter()
            .all(|s| s != "running" && s != "queued")
    });
    assert_eq!(c.run_states("nap"), ["success"]);
    let lines = c.lines("effects.txt");
    let second = worker_in(&lines, "end,2,").unwrap();
    assert_ne!(
        second, first,
        "the retry ran on the other worker: {lines:?}"
    );
    let run_id = c.newest_run("nap");
    let tries = c.json(&["tasks", "list", "nap", &run_id, "--output", "json"]);
    assert_eq!(tries["task_instances"][0]["try_number"], 2);
    // The second try's log was pushed by the worker and is read through the database.
    let log = c.run(&["tasks", "logs", "nap", &run_id, "nap", "--try", "2"]);
    assert!(log.contains("weir: the try succeeded"), "{log}");
    drop(c);
    runtime.block_on(db.cleanup());
}

#[test]
fn a_worker_stopped_past_its_lease_is_refused_kills_its_task_and_the_retry_stands() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let (c, stopped) = nap_started(&db.url);
    c.signal(&stopped, "-STOP");
    c.wait_for("the retry to succeed elsewhere", || {
        c.run_states("nap") == ["success"]
    });
    c.signal(&stopped, "-CONT");
    c.wait_for("the late worker to kill its try", || {
        let log = c.log(&stopped);
        log.contains("killing") && log.contains("the report was refused")
    });
    let lines = c.lines("effects.txt");
    assert!(
        !lines.iter().any(|l| l.starts_with("end,1,")),
        "the stale try was killed: {lines:?}"
    );
    assert_eq!(
        worker_in(&lines, "end,2,").as_deref().map(|w| w != stopped),
        Some(true)
    );
    assert_eq!(
        c.run_states("nap"),
        ["success"],
        "the retry's result stands"
    );
    let run_id = c.newest_run("nap");
    let tries = runtime.block_on(async {
        let ti = db
            .store
            .get_task_instance("nap", &run_id, "nap")
            .await
            .unwrap();
        db.store.list_tries(&ti.id).await.unwrap()
    });
    assert_eq!(tries.len(), 2);
    assert_eq!(
        tries[0].state,
        weir_core::state::TaskState::UpForRetry,
        "{tries:?}"
    );
    let error = tries[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("lease expired"),
        "the late report did not overwrite it: {error}"
    );
    assert_eq!(tries[1].state, weir_core::state::TaskState::Success);
    drop(c);
    runtime.block_on(db.cleanup());
}

#[test]
fn a_draining_worker_finishes_its_try_and_a_queue_nobody_serves_waits() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let slow = "schedule: manual\ntasks:\n  slow: {kind: shell, command: 'echo start >> ../effects.txt; sleep 1; echo done >> ../effects.txt'}\n  gpu: {kind: shell, command: 'true', queue: gpu}\n";
    let mut c = Cluster::new(&db.url, 5, &[("slow.yaml", slow.to_owned())]);
    c.start("scheduler", &["scheduler"]);
    let api = c.api("api");
    c.worker("w", &[&api], "default", 2);
    c.run(&["dags", "trigger", "slow"]);
    c.wait_for("the slow task to start", || {
        c.lines("effects.txt") == ["start"]
    });
    // SIGTERM drains: the running try finishes, nothing more is claimed.
    c.signal("w", "-TERM");
    c.wait_for("the worker to stop", || {
        c.log("w").contains("worker stopped")
    });
    assert_eq!(c.lines("effects.txt"), ["start", "done"]);
    let listed = c.json(&["workers", "list", "--output", "json"]);
    assert!(
        listed["workers"].as_array().unwrap().is_empty(),
        "a stopped worker leaves the list: {listed}"
    );
    // The GPU task waits: no worker serves its queue.
    let run_id = c.newest_run("slow");
    let tis = c.json(&["tasks", "list", "slow", &run_id, "--output", "json"]);
    let gpu = tis["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == "gpu")
        .unwrap()
        .clone();
    assert_eq!(gpu["state"], "queued", "{tis}");
    assert_eq!(c.run_states("slow"), ["running"]);
    drop(c);
    runtime.block_on(db.cleanup());
}

/// Extract, validate and transform: the data tasks of the people DAGs.
const PEOPLE_DATA_TASKS: &str = r#"
  extract:
    kind: extract
    source: {format: csv, path: "people.csv"}
    output: raw.people
  check:
    kind: validate
    input: raw.people
    contract:
      columns:
        id: {type: int64, required: true}
        age: {type: int32, min: 0}
    output: clean.people
    quarantine: quarantine.people
    max_quarantined: 50%
  summary:
    kind: transform
    inputs: [clean.people]
    sql: "select count(*) as people from clean.people"
    output: curated.summary
"#;

/// The people DAG's other tasks: a sensor on a stored connection, outputs
/// between tries, a mapped task.
const PEOPLE_MORE_TASKS: &str = r#"
  probe:
    kind: sensor
    sql: "select count(*) from dag_runs where run_id = '{{ run_id }}'"
    connection: kept_db
    poke_interval: 1s
    timeout: 60s
  report:
    kind: shell
    depends_on: [summary, probe]
    command: |
      echo "quarantined={{ tasks.check.output.quarantined }} rows={{ tasks.summary.output.rows }}"
      echo '{"reported": true}' > "$WEIR_OUTPUT"
  greet:
    kind: shell
    depends_on: [report]
    expand: {items: [ann, bob]}
    output: last_line
    command: echo "hi {{ item }}"
  greeted:
    kind: shell
    depends_on: [greet]
    command: echo "greeted {{ tasks.greet.output | join(',') }}"
"#;

/// Extract, validate and transform on a remote worker with a sensor,
/// outputs, a mapped task and a notification; a copy of the extract on a
/// queue whose worker sees another data folder is `ELSEWHERE`.
fn people() -> String {
    let head = r#"
schedule: manual
notify:
  - on: [success]
    command: echo "$WEIR_NOTIFY_DAG_ID succeeded" >> ../notified.txt
tasks:
"#;
    format!("{head}{PEOPLE_DATA_TASKS}{PEOPLE_MORE_TASKS}")
}

const ELSEWHERE: &str = r#"
schedule: manual
tasks:
  extract:
    kind: extract
    queue: elsewhere
    retries: 0
    source: {format: csv, path: "people.csv"}
    output: raw.elsewhere
"#;

#[test]
fn remote_workers_run_data_tasks_through_the_api_and_refuse_a_data_folder_not_the_sites() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let mut c = Cluster::new(
        &db.url,
        5,
        &[
            ("people.yaml", people()),
            ("elsewhere.yaml", ELSEWHERE.to_owned()),
        ],
    );
    std::fs::write(c.path("dags/people.csv"), "id,age\n1,30\n2,-4\n3,50\n").unwrap();
    c.start("scheduler", &["scheduler"]);
    let api = c.api("api");
    c.wait_for("the scheduler to mark the data folder", || {
        c.path("data/.weir-catalog").exists()
    });
    c.worker("w-data", &[&api], "default", 2);
    // A stored connection, its extra sealed with the site's key file: the
    // remote worker gets its URL with the claim of the task that names it.
    let kept = format!("{}?application_name=weir-probe", db.url);
    c.run(&["connections", "add", "kept_db", "--url", &kept]);
    assert!(
        c.path("weir.key").exists(),
        "the key file is made on first use"
    );
    let shown = c.json(&["connections", "get", "kept_db", "--output", "json"]);
    assert_eq!(
        shown["extra"], r#"{"application_name":"weir-probe"}"#,
        "{shown}"
    );
    c.run(&["dags", "trigger", "people"]);
    c.wait_for("the data run to end", || {
        c.run_states("people")
            .iter()
            .all(|s| s == "success" || s == "failed")
    });
    assert_eq!(c.run_states("people"), ["success"]);
    let list = c.json(&["datasets", "list", "--output", "json"]);
    let rows = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == name)
            .map(|d| d["latest"]["rows"].as_i64().unwrap())
    };
    assert_eq!(
        (
            rows("raw.people"),
            rows("clean.people"),
            rows("quarantine.people"),
            rows("curated.summary")
        ),
        (Some(3), Some(2), Some(1), Some(1)),
        "{list}"
    );
    // Outputs travel both ways: reported by the remote worker, handed to
    // the next try with its claim, shown by the CLI.
    let run_id = c.newest_run("people");
    let log = c.run(&["tasks", "logs", "people", &run_id, "report"]);
    assert!(log.contains("quarantined=1 rows=1"), "{log}");
    // A mapped task expands and runs its instances on the remote worker.
    let log = c.run(&["tasks", "logs", "people", &run_id, "greeted"]);
    assert!(log.contains("greeted hi ann,hi bob"), "{log}");
    let out = c.run(&[
        "tasks",
        "output",
        "people",
        &run_id,
        "greet",
        "--map-index",
        "1",
    ]);
    assert_eq!(out.trim(), r#""hi bob""#, "{out}");
    // The scheduler process delivers the run's notification and records it.
    c.wait_for("the run's notification", || {
        c.json(&[
            "runs",
            "notifications",
            "people",
            &run_id,
            "--output",
            "json",
        ])
        .as_array()
        .is_some_and(|all| all.len() == 1 && all[0]["state"] == "sent")
    });
    assert_eq!(
        std::fs::read_to_string(c.path("notified.txt")).unwrap_or_default(),
        "people succeeded\n"
    );
    let out = c.run(&["tasks", "output", "people", &run_id, "report"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"reported": true}),
        "{out}"
    );

    // A worker whose data folder is not the site's refuses data tasks.
    let other = c.path("elsewhere-data");
    let (servers, token) = (api.clone(), c.token.clone());
    let child = c
        .command(&[
            "worker",
            "--server",
            &servers,
            "--token",
            &token,
            "--queues",
            "elsewhere",
            "--name",
            "w-other",
        ])
        .env("WEIR_CORE_DATA_DIR", &other)
        .env("WEIR_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(c.path("w-other.log")).unwrap())
        .spawn()
        .unwrap();
    c.procs.insert("w-other".into(), child);
    c.run(&["dags", "trigger", "elsewhere"]);
    c.wait_for("the foreign run to end", || {
        c.run_states("elsewhere")
            .iter()
            .all(|s| s == "success" || s == "failed")
    });
    assert_eq!(c.run_states("elsewhere"), ["failed"]);
    let run_id = c.newest_run("elsewhere");
    let log = c.run(&["tasks", "logs", "elsewhere", &run_id, "extract"]);
    assert!(
        log.contains("has no readable .weir-catalog marker"),
        "{log}"
    );
    assert!(!other.join("raw").exists(), "nothing was written there");

    // A scheduler started on a dataset as an older weir left it (version
    // folders, no Delta log) gives it its log before any task writes.
    c.kill("scheduler");
    std::fs::remove_dir_all(c.path("data/raw/people/_delta_log")).unwrap();
    runtime.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "UPDATE dataset_versions SET delta_version = NULL WHERE dataset = 'raw.people'",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    c.start("scheduler-again", &["scheduler"]);
    c.wait_for("the scheduler to migrate raw.people", || {
        c.log("scheduler-again")
            .contains("raw.people: 1 version(s) committed to the Delta table")
    });
    assert!(c.path("data/raw/people/_delta_log").is_dir());
    let shown = c.json(&["datasets", "show", "raw.people", "--output", "json"]);
    assert_eq!(shown["versions"][0]["delta_version"], 0, "{shown}");
    drop(c);
    runtime.block_on(db.cleanup());
}

/// The S3-compatible server `WEIR_TEST_S3_ENDPOINT` names (`http://127.0.0.1:9000`),
/// or `None` (with a notice) when it is not set; under `CI=true` a missing
/// variable is a failure.
fn s3_endpoint() -> Option<String> {
    match std::env::var("WEIR_TEST_S3_ENDPOINT") {
        Ok(url) => Some(url.trim_end_matches('/').to_owned()),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("WEIR_TEST_S3_ENDPOINT is not set: the object storage tests must run in CI")
        }
        Err(_) => {
            eprintln!("notice: WEIR_TEST_S3_ENDPOINT is not set; skipping the object storage case");
            None
        }
    }
}

/// One plain HTTP/1.1 request to the test's S3 server (a local test server
/// that checks no signature, though a DELETE must carry one); answers the
/// status and body.
fn s3_request(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=weir/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The keys under `prefix` in `bucket`.
fn s3_keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let (status, body) = s3_request(
        endpoint,
        "GET",
        &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
    );
    assert_eq!(status, 200, "{body}");
    let mut keys: Vec<String> = body
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect();
    keys.sort();
    keys
}

/// Reads the `id` column of the Delta table at `argv[1]` (in S3, reached
/// through the `AWS_*` variables) with `argv[2]` (deltalake or polars) at
/// Delta version `argv[3]` (the latest when negative); prints the sorted ids.
const READ_S3_DELTA: &str = r#"
import json, os, sys
path, engine, version = sys.argv[1], sys.argv[2], int(sys.argv[3])
at = None if version < 0 else version
if engine == "deltalake":
    from deltalake import DeltaTable
    ids = DeltaTable(path, version=at).to_pyarrow_table(columns=["id"]).column("id").to_pylist()
else:
    import polars as pl
    ids = pl.read_delta(path, version=at, columns=["id"])["id"].to_list()
print(json.dumps(sorted(str(i) for i in ids)), flush=True)
os._exit(0)
"#;

#[test]
fn datasets_live_in_object_storage_and_remote_workers_need_no_shared_folder() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let Some((runtime, db)) = postgres() else {
        return;
    };
    let bucket = "weir-test";
    let (status, body) = s3_request(&endpoint, "PUT", &format!("/{bucket}"));
    assert!(matches!(status, 200 | 409), "creating the bucket: {body}");
    let mut c = Cluster::new(
        &db.url,
        5,
        &[(
            "people.yaml",
            format!("schedule: manual\ntasks:{PEOPLE_DATA_TASKS}"),
        )],
    );
    let prefix = format!(
        "site-{}",
        c.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let config = format!(
        "[core]\ndags_folder = \"{0}/dags\"\nlogs_dir = \"{0}/logs\"\n\
         data_dir = \"s3://{bucket}/{prefix}\"\nstaging_dir = \"{0}/staging\"\nlease = 5\n\
         [database]\nurl = \"{1}\"\n\
         [storage]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n\
         access_key_id = \"weir\"\nsecret_access_key = \"weir-secret\"\n\
         [retention.raw]\nkeep = 1\n",
        c.dir.path().display(),
        db.url
    );
    std::fs::write(c.path("weir.toml"), config).unwrap();
    std::fs::write(c.path("dags/people.csv"), "id,age\n1,30\n2,-4\n3,50\n").unwrap();
    c.start("scheduler", &["scheduler"]);
    let api = c.api("api");
    c.wait_for("the scheduler to mark the bucket", || {
        s3_keys(&endpoint, bucket, &prefix) == [format!("{prefix}/.weir-catalog")]
    });
    // The worker has a staging folder of its own and no data folder at all:
    // the bucket is what it shares with the servers.
    let worker_staging = c.path("worker-staging");
    c.worker_with(
        "w-s3",
        &[&api],
        "default",
        2,
        &[("WEIR_CORE_STAGING_DIR", &worker_staging)],
    );
    for n in 1..=2 {
        c.run(&["dags", "trigger", "people"]);
        c.wait_for("the run to end", || {
            let states = c.run_states("people");
            states.len() == n && states.iter().all(|s| s == "success" || s == "failed")
        });
    }
    assert_eq!(c.run_states("people"), ["success", "success"]);
    let list = c.json(&["datasets", "list", "--output", "json"]);
    let latest = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == name)
            .map(|d| {
                (
                    d["latest"]["version"].as_i64().unwrap(),
                    d["latest"]["rows"].as_i64().unwrap(),
                )
            })
    };
    assert_eq!(
        (
            latest("raw.people"),
            latest("clean.people"),
            latest("quarantine.people"),
            latest("curated.summary")
        ),
        (Some((2, 3)), Some((2, 2)), Some((2, 1)), Some((2, 1))),
        "{list}"
    );
    // Nothing of the data is on a local disk: versions are in the bucket,
    // their Delta logs beside them, the staging folders empty again.
    assert!(!c.path("data").exists());
    for staging in [c.path("staging"), worker_staging.clone()] {
        let left = support::files_under(&staging);
        assert!(left.is_empty(), "left in {}: {left:?}", staging.display());
    }
    let shown = c.json(&["datasets", "show", "clean.people", "--output", "json"]);
    let path = shown["versions"][1]["path"].as_str().unwrap().to_owned();
    assert_eq!(
        path,
        format!("s3://{bucket}/{prefix}/clean/people/v=2"),
        "{shown}"
    );
    let keys = s3_keys(&endpoint, bucket, &format!("{prefix}/clean/people/"));
    for expected in [
        "_delta_log/00000000000000000000.json",
        "_delta_log/00000000000000000001.json",
        "v=2/_weir_claim",
        "v=2/_weir_checksums.json",
    ] {
        let key = format!("{prefix}/clean/people/{expected}");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}/clean/people/v=2/"))
                && k.ends_with(".parquet")),
        "{keys:?}"
    );
    // Retention (keep 1 of raw) deleted raw's first version from the bucket.
    let raw = c.json(&["datasets", "show", "raw.people", "--output", "json"]);
    let deleted: Vec<bool> = raw["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| !v["deleted_at"].is_null())
        .collect();
    assert_eq!(deleted, [true, false], "{raw}");
    let raw_keys = s3_keys(&endpoint, bucket, &format!("{prefix}/raw/people/"));
    assert!(
        !raw_keys.iter().any(|k| k.contains("/v=1/"))
            && raw_keys.iter().any(|k| k.contains("/v=2/")),
        "{raw_keys:?}"
    );
    // The API reads the rows back from the bucket.
    let check = c.json(&["datasets", "verify", "--output", "json"]);
    assert_eq!(check["findings"], serde_json::json!([]), "{check}");
    assert!(check["checked"].as_i64().unwrap() >= 5, "{check}");

    // Other engines read the tables in the bucket, at the latest version
    // and at an older one (quarantine appends: its first commit holds one run's rows).
    let python = std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import deltalake, polars"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        let read = |table: &str, engine: &str, version: i64| {
            let out = Command::new(&python)
                .args(["-c", READ_S3_DELTA])
                .arg(format!("s3://{bucket}/{prefix}/{table}"))
                .args([engine, &version.to_string()])
                .env("AWS_ENDPOINT_URL", &endpoint)
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "weir")
                .env("AWS_SECRET_ACCESS_KEY", "weir-secret")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{engine}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        for engine in ["deltalake", "polars"] {
            assert_eq!(read("clean/people", engine, -1), r#"["1", "3"]"#);
            assert_eq!(read("quarantine/people", engine, -1), r#"["2", "2"]"#);
            assert_eq!(read("quarantine/people", engine, 0), r#"["2"]"#);
        }
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{python} has no deltalake and polars: .ci/run installs them");
    } else {
        eprintln!("notice: {python} has no deltalake and polars; skipping the readers");
    }

    // An erasure rewrites every kept version in the bucket.
    c.run(&["datasets", "erase", "clean.people", "--where", "id = 1"]);
    let shown = c.json(&["datasets", "show", "clean.people", "--output", "json"]);
    let rows: Vec<i64> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rows"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [1, 1], "{shown}");
    let keys = s3_keys(&endpoint, bucket, &format!("{prefix}/clean/people/"));
    assert!(
        !keys.iter().any(|k| k.contains("/v=2/")),
        "the old files go: {keys:?}"
    );
    let check = c.json(&["datasets", "verify", "--output", "json"]);
    assert_eq!(check["findings"], serde_json::json!([]), "{check}");

    // An upload no commit and no catalog entry names (a writer that died
    // mid-publish) is reported as an orphan, never read.
    let stray = format!("/{bucket}/{prefix}/clean/people/v=9/part-0.parquet");
    let (status, body) = s3_request(&endpoint, "PUT", &stray);
    assert_eq!(status, 200, "{body}");
    let out = c
        .command(&["datasets", "verify", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, String)> = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let problem = f["problem"].as_str().unwrap();
            (
                f["path"].as_str().unwrap().to_owned(),
                problem.split(':').next().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [(
            format!("s3://{bucket}/{prefix}/clean/people/v=9"),
            "orphan".to_owned()
        )],
        "{check}"
    );
    let (status, body) = s3_request(&endpoint, "DELETE", &stray);
    assert_eq!(status, 204, "{body}");

    // A backup copies the catalog and leaves the data in the bucket.
    let out = c.run(&["backup", c.path("backup").to_str().unwrap()]);
    assert!(out.contains("stay in object storage"), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("backup/backup.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["data_dir"],
        format!("s3://{bucket}/{prefix}"),
        "{manifest}"
    );
    assert!(support::files_under(&c.path("backup/data")).is_empty());

    // A file lost from the bucket is found by verify, named.
    let summary = s3_keys(&endpoint, bucket, &format!("{prefix}/curated/summary/v=2/"));
    let lost = summary.iter().find(|k| k.ends_with(".parquet")).unwrap();
    let (status, body) = s3_request(&endpoint, "DELETE", &format!("/{bucket}/{lost}"));
    assert_eq!(status, 204, "{body}");
    let out = c
        .command(&["datasets", "verify", "curated.summary"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("missing") && text.contains("v=2"), "{text}");
    drop(c);
    runtime.block_on(db.cleanup());
}
