//! `weir standalone` and the engine commands as a user runs them: real
//! processes, a real database, real signals. Waiting polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(dags: &[(&str, &str)]) -> Site {
        Site::with_database(dags, None)
    }

    /// A site on the given database URL (default: SQLite in the site's folder).
    fn with_database(dags: &[(&str, &str)], url: Option<&str>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dags")).unwrap();
        for (name, text) in dags {
            std::fs::write(dir.path().join("dags").join(name), text).unwrap();
        }
        let sqlite = format!("sqlite://{}/weir.db", dir.path().display());
        let config = format!(
            "[core]\ndags_folder = \"{0}/dags\"\nlogs_dir = \"{0}/logs\"\ndata_dir = \"{0}/data\"\n[database]\nurl = \"{1}\"\n",
            dir.path().display(),
            url.unwrap_or(&sqlite)
        );
        std::fs::write(dir.path().join("weir.toml"), config).unwrap();
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
        c.arg("--config")
            .arg(self.path("weir.toml"))
            .args(args)
            .current_dir(self.dir.path());
        c.env_remove("WEIR_DATABASE_URL").env_remove("WEIR_CONFIG");
        c
    }

    /// Runs weir to completion, killing it if it takes more than a minute.
    fn run(&self, args: &[&str]) -> Output {
        let mut child = Guard::new(
            self.command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.child().try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "weir {args:?} did not finish within a minute"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.into_inner().wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "weir {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn standalone(&self) -> Guard {
        self.standalone_as("standalone", 4)
    }

    /// A standalone with its own log file `<name>.log` and `slots` task slots.
    fn standalone_as(&self, name: &str, slots: usize) -> Guard {
        let slots = slots.to_string();
        Guard::new(
            self.command(&["standalone", "--bind", "127.0.0.1:0", "--slots", &slots])
                .stdout(std::fs::File::create(self.path(&format!("{name}.out"))).unwrap())
                .stderr(std::fs::File::create(self.path(&format!("{name}.log"))).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits until the standalone logging to `<name>.log` listens; returns
    /// the name of its worker.
    fn worker_of(&self, name: &str) -> String {
        let log = self.path(&format!("{name}.log"));
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        self.wait_for(&format!("{name} to start"), || {
            read().contains("listening on")
        });
        let text = read();
        let at = text.find(", worker ").unwrap() + ", worker ".len();
        text[at..].split_whitespace().next().unwrap().to_owned()
    }

    /// Triggers a run of `dag` with `weir dags trigger`.
    fn trigger(&self, dag: &str) {
        let out = self.run(&["dags", "trigger", dag]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The task instances of a DAG's newest run, as `weir tasks list` shows them.
    fn tasks(&self, dag: &str) -> Vec<serde_json::Value> {
        let runs = self.json(&["runs", "list", dag, "--output", "json"]);
        let run_id = runs["dag_runs"][0]["dag_run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.json(&["tasks", "list", dag, &run_id, "--output", "json"])["task_instances"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the standalone listens; returns its address.
    fn address(&self) -> String {
        self.address_of("standalone")
    }

    /// Waits until the standalone logging to `<name>.log` listens; returns its address.
    fn address_of(&self, name: &str) -> String {
        let path = self.path(&format!("{name}.log"));
        self.wait_for("startup", || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("listening on")
        });
        let log = std::fs::read_to_string(&path).unwrap();
        let at = log.find("http://127.0.0.1:").unwrap() + "http://".len();
        log[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect()
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            let log = std::fs::read_to_string(self.path("standalone.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{log}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn run_state(&self, dag: &str) -> Option<String> {
        let runs = self.json(&["runs", "list", dag, "--output", "json"]);
        runs["dag_runs"]
            .get(0)
            .and_then(|r| r["state"].as_str())
            .map(str::to_owned)
    }
}

/// A child process that is killed when the test ends, passing or not.
struct Guard(Option<Child>);

impl Guard {
    fn new(child: Child) -> Guard {
        Guard(Some(child))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn into_inner(mut self) -> Child {
        self.0.take().unwrap()
    }

    fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request on a fresh connection: the status and the JSON body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

const CRASH: &str = r#"
tasks:
  first:
    kind: shell
    command: echo first >> effects.txt
  slow:
    kind: shell
    depends_on: [first]
    retries: 1
    retry_delay: 1s
    command: echo slow-start >> effects.txt; sleep 8; echo slow-end >> effects.txt
  last:
    kind: shell
    depends_on: [slow]
    command: echo last >> effects.txt
"#;

#[test]
fn a_killed_standalone_resumes_and_runs_each_side_effect_as_the_retry_rules_allow() {
    crash_and_resume(&Site::new(&[("crash.yaml", CRASH)]));
}

#[test]
fn a_killed_standalone_on_postgres_resumes_too() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(weir_core::testing::postgres()) else {
        return;
    };
    crash_and_resume(&Site::with_database(
        &[("crash.yaml", CRASH)],
        Some(&db.url),
    ));
    runtime.block_on(db.cleanup());
}

fn crash_and_resume(site: &Site) {
    let effects = site.path("dags/effects.txt");
    let mut first = site.standalone();
    site.trigger("crash");
    site.wait_for("the slow task to start", || {
        lines(&effects).contains(&"slow-start".to_owned())
    });
    // Kill -9: no chance to clean up. The orphaned `sleep 8` leaves the restart
    // time to stop it before it could write `slow-end`.
    first.kill();
    let mut second = site.standalone();
    site.wait_for("the run to succeed", || {
        site.run_state("crash").as_deref() == Some("success")
    });
    second.kill();
    let got = lines(&effects);
    let count = |s: &str| got.iter().filter(|l| *l == s).count();
    assert_eq!(count("first"), 1, "{got:?}");
    assert_eq!(
        count("slow-start"),
        2,
        "the killed try and its one retry: {got:?}"
    );
    assert_eq!(
        count("slow-end"),
        1,
        "the killed try never finished: {got:?}"
    );
    assert_eq!(count("last"), 1, "{got:?}");
    let run_id =
        site.json(&["runs", "list", "crash", "--output", "json"])["dag_runs"][0]["dag_run_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let tasks = site.json(&["tasks", "list", "crash", &run_id, "--output", "json"]);
    let slow = tasks["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == "slow")
        .unwrap();
    assert_eq!(slow["try_number"], 2);
    let log1 = String::from_utf8_lossy(
        &site
            .run(&["tasks", "logs", "crash", &run_id, "slow", "--try", "1"])
            .stdout,
    )
    .into_owned();
    assert!(log1.contains("weir: running"), "{log1}");
}

/// Runs until the test creates `release.flag` (a minute at most).
const NAP: &str = r#"
tasks:
  nap:
    kind: shell
    retries: 2
    retry_delay: 1s
    command: >-
      echo nap-start >> effects.txt;
      for i in $(seq 600); do [ -f release.flag ] && break; sleep 0.1; done;
      echo nap-end >> effects.txt
"#;

const QUICK: &str = "tasks:\n  quick: {kind: shell, command: 'echo quick >> effects.txt'}\n";

#[test]
fn a_second_standalone_leaves_the_first_ones_tries_alone() {
    second_standalone(&Site::new(&[("nap.yaml", NAP), ("quick.yaml", QUICK)]));
}

#[test]
fn a_second_standalone_on_postgres_leaves_the_first_ones_tries_alone() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(weir_core::testing::postgres()) else {
        return;
    };
    // A password in the URL (the local server trusts 127.0.0.1 and ignores
    // it) must show in no log or output.
    let url = db
        .url
        .replacen("postgres@", "postgres:pw-must-not-show@", 1);
    assert_ne!(url, db.url, "{}", db.url);
    let site = Site::with_database(&[("nap.yaml", NAP), ("quick.yaml", QUICK)], Some(&url));
    second_standalone(&site);
    for file in ["a.log", "a.out", "b.log", "b.out"] {
        let text = std::fs::read_to_string(site.path(file)).unwrap_or_default();
        assert!(!text.contains("pw-must-not-show"), "{file}:\n{text}");
    }
    let upgrade = site.run(&["db", "upgrade"]);
    assert!(
        !String::from_utf8_lossy(&upgrade.stdout).contains("pw-must-not-show"),
        "{}",
        String::from_utf8_lossy(&upgrade.stdout)
    );
    runtime.block_on(db.cleanup());
}

fn second_standalone(site: &Site) {
    let effects = site.path("dags/effects.txt");
    // A has one slot, which the nap takes; only B can run what comes next.
    let mut a = site.standalone_as("a", 1);
    let a_worker = site.worker_of("a");
    site.trigger("nap");
    site.wait_for("the nap to start", || {
        lines(&effects).contains(&"nap-start".to_owned())
    });
    let mut b = site.standalone_as("b", 2);
    let b_worker = site.worker_of("b");
    assert_ne!(a_worker, b_worker, "each process is a worker of its own");

    site.trigger("quick");
    site.wait_for("B to run the quick task", || {
        site.run_state("quick").as_deref() == Some("success")
    });
    assert_eq!(site.tasks("quick")[0]["executor"], b_worker.as_str());
    // Both are listed as active workers by the API (asked through B).
    let addr = site.address_of("b");
    let out = site.run(&["tokens", "create", "--role", "viewer"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (status, workers) = http(&addr, "GET", "/api/v2/workers", Some(&token), None);
    assert_eq!(status, 200, "{workers}");
    let names: Vec<&str> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(
        names.contains(&a_worker.as_str()) && names.contains(&b_worker.as_str()),
        "{workers}"
    );

    std::fs::write(site.path("dags/release.flag"), "").unwrap();
    site.wait_for("the nap to succeed", || {
        site.run_state("nap").as_deref() == Some("success")
    });
    let nap = &site.tasks("nap")[0];
    assert_eq!(nap["try_number"], 1, "A's try was never failed: {nap}");
    assert_eq!(nap["executor"], a_worker.as_str());
    let run_id = nap["dag_run_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            site.json(&["runs", "list", "nap", "--output", "json"])["dag_runs"][0]["dag_run_id"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    let log = site.run(&["tasks", "logs", "nap", &run_id, "nap"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains(&format!("on worker {a_worker}")), "{log}");
    assert_eq!(
        lines(&effects).iter().filter(|l| *l == "nap-end").count(),
        1,
        "the nap ran to its end once"
    );
    assert!(b.child().try_wait().unwrap().is_none(), "B is still up");
    assert!(a.child().try_wait().unwrap().is_none(), "A is still up");
    let b_log = std::fs::read_to_string(site.path("b.log")).unwrap();
    assert!(!b_log.contains("is gone"), "B took A for gone:\n{b_log}");
}

#[test]
fn graceful_stop_on_sigterm() {
    let site = Site::new(&[(
        "quick.yaml",
        "tasks:\n  a: {kind: shell, command: 'true'}\n",
    )]);
    let mut child = site.standalone();
    site.wait_for("startup", || {
        std::fs::read_to_string(site.path("standalone.log"))
            .unwrap_or_default()
            .contains("listening on")
    });
    // --bind 127.0.0.1:0 picked a free port and logged it; the health endpoint answers there.
    let addr = site.address();
    let (status, answer) = http(&addr, "GET", "/api/v2/monitor/health", None, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["metadatabase"]["status"], "healthy", "{answer}");
    let pid = nix::unistd::Pid::from_raw(child.child().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "standalone did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit: {status:?}");
    assert!(
        std::fs::read_to_string(site.path("standalone.log"))
            .unwrap()
            .contains("stopped")
    );
}

const CHAIN: &str = r#"
params: {who: world}
tasks:
  hello: {kind: shell, command: 'echo "hello {{ params.who }}"'}
  check: {kind: shell, command: 'test -f ok.flag', depends_on: [hello]}
  after: {kind: shell, command: 'true', depends_on: [check]}
"#;

#[test]
fn dags_test_prints_state_changes_and_exits_by_outcome() {
    let site = Site::new(&[("chain.yaml", CHAIN)]);
    let failed = site.run(&["dags", "test", "chain"]);
    let text = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(text.contains("check") && text.contains("failed"), "{text}");
    assert!(text.contains("upstream_failed"), "{text}");
    std::fs::write(site.path("dags/ok.flag"), "").unwrap();
    let ok = site.run(&["dags", "test", "chain", "--conf", r#"{"who": "ada"}"#]);
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("success"), "{text}");
    let bad = site.run(&["dags", "test", "chain", "--conf", "[1]"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--conf must be a JSON object"));
}

#[test]
fn clear_and_mark_from_the_command_line() {
    let site = Site::new(&[("chain.yaml", CHAIN)]);
    let mut sa = site.standalone();
    let trig = site.json(&[
        "dags", "trigger", "chain", "--run-id", "r1", "--output", "json",
    ]);
    assert_eq!(trig["dag_run_id"], "r1");
    site.wait_for("the run to fail", || {
        site.run_state("chain").as_deref() == Some("failed")
    });
    std::fs::write(site.path("dags/ok.flag"), "").unwrap();
    let out = site.run(&["tasks", "clear", "chain", "r1", "check", "--downstream"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cleared check, after"
    );
    site.wait_for("the cleared run to succeed", || {
        site.run_state("chain").as_deref() == Some("success")
    });
    let tasks = site.json(&["tasks", "list", "chain", "r1", "--output", "json"]);
    let tries: Vec<(String, i64)> = tasks["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap().to_owned(),
                t["try_number"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        tries.contains(&("hello".into(), 1)) && tries.contains(&("check".into(), 2)),
        "{tries:?}"
    );
    let log = String::from_utf8_lossy(&site.run(&["tasks", "logs", "chain", "r1", "hello"]).stdout)
        .into_owned();
    assert!(log.contains("hello world"), "{log}");
    let mark = site.run(&["tasks", "mark", "chain", "r1", "after", "--state", "failed"]);
    assert!(
        mark.status.success(),
        "{}",
        String::from_utf8_lossy(&mark.stderr)
    );
    assert_eq!(site.run_state("chain").as_deref(), Some("failed"));
    let missing = site.run(&["tasks", "clear", "chain", "nope", "check"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let table = String::from_utf8_lossy(&site.run(&["runs", "list"]).stdout).into_owned();
    assert!(table.starts_with("DAG") && table.contains("r1"), "{table}");
    sa.kill();
    let backup = site.path("copy.db");
    let out = site.run(&["db", "backup", backup.to_str().unwrap()]);
    assert!(
        out.status.success() && backup.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn backfill_from_the_command_line_runs_every_date_once() {
    let dag = "schedule: '0 2 * * *'\nstart_date: 2026-01-01\npaused: true\ntasks:\n  a: {kind: shell, command: 'echo {{ ds }} >> dates.txt'}\n";
    let site = Site::new(&[("daily.yaml", dag)]);
    let _sa = site.standalone();
    let out = site.run(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03",
        "--max-active-runs",
        "2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 interval(s)"), "{text}");
    assert!(
        text.contains("3/3 done (0 running, 0 queued, 0 failed)"),
        "{text}"
    );
    let mut dates = lines(&site.path("dags/dates.txt"));
    dates.sort();
    assert_eq!(dates, vec!["2026-01-01", "2026-01-02", "2026-01-03"]);
    let again = site.run(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03",
    ]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 new run(s)"));
    assert_eq!(
        lines(&site.path("dags/dates.txt")).len(),
        3,
        "a second backfill runs nothing again"
    );
}

#[test]
fn pause_and_unpause_from_the_command_line() {
    let dag = "schedule: '@hourly'\nstart_date: 2026-01-01\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let site = Site::new(&[("hourly.yaml", dag)]);
    let out = site.run(&["dags", "pause", "hourly"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hourly is paused"
    );
    let _sa = site.standalone();
    site.wait_for("startup", || {
        std::fs::read_to_string(site.path("standalone.log"))
            .unwrap_or_default()
            .contains("listening on")
    });
    // That a paused DAG gets no run, whatever the time, is shown with a
    // manual clock (`end_date_and_pause_limit_runs`); here, the pause made
    // from the command line holds for the scheduler that starts after it.
    assert_eq!(site.run_state("hourly"), None);
    let out = site.run(&["dags", "unpause", "hourly"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hourly is unpaused"
    );
    site.wait_for("the latest hour to run", || {
        site.run_state("hourly").as_deref() == Some("success")
    });
    let runs = site.json(&["runs", "list", "hourly", "--output", "json"]);
    assert_eq!(
        runs["total_entries"], 1,
        "catchup is off: only the latest interval"
    );
    assert!(
        runs["dag_runs"][0]["dag_run_id"]
            .as_str()
            .unwrap()
            .starts_with("scheduled__")
    );
}

#[test]
fn the_first_start_prints_the_admin_password_once_and_roles_hold_over_http() {
    let site = Site::new(&[(
        "quick.yaml",
        "tasks:\n  a: {kind: shell, command: 'true'}\n",
    )]);
    let mut first = site.standalone();
    let addr = site.address();
    let out = std::fs::read_to_string(site.path("standalone.out")).unwrap();
    let password = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 20 && l.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| panic!("no password in {out}"))
        .to_owned();
    let login = |user: &str, pw: &str| {
        http(
            &addr,
            "POST",
            "/auth/token",
            None,
            Some(serde_json::json!({"username": user, "password": pw})),
        )
    };
    let (status, body) = login("admin", &password);
    assert_eq!(status, 201, "{body}");
    let admin = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(login("admin", "not the password").0, 401);
    let (status, dags) = http(&addr, "GET", "/api/v2/dags", Some(&admin), None);
    assert_eq!(
        (status, dags["dags"][0]["dag_id"].as_str()),
        (200, Some("quick"))
    );

    // A viewer made on the command line may read but not trigger.
    let out = site.run(&[
        "users",
        "create",
        "--username",
        "bob",
        "--role",
        "viewer",
        "--password",
        "bob-secret-1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = login("bob", "bob-secret-1").1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        http(&addr, "GET", "/api/v2/dags/quick/dagRuns", Some(&bob), None).0,
        200
    );
    let trigger = |token: &str| {
        http(
            &addr,
            "POST",
            "/api/v2/dags/quick/dagRuns",
            Some(token),
            Some(serde_json::json!({})),
        )
    };
    assert_eq!(trigger(&bob).0, 403);
    let users = site.json(&["users", "list", "--output", "json"]);
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");

    // An operator token from the command line triggers, until it is revoked.
    let out = site.run(&[
        "tokens",
        "create",
        "--role",
        "operator",
        "--description",
        "ci",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (status, run) = trigger(&token);
    assert_eq!(status, 200, "{run}");
    let id = token.split('_').nth(1).unwrap().to_owned();
    assert!(site.run(&["tokens", "revoke", &id]).status.success());
    assert_eq!(trigger(&token).0, 401);
    let audit = http(&addr, "GET", "/api/v2/auditLog", Some(&admin), None).1;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["create_user", "create_token", "trigger", "revoke_token"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }

    // The password is printed on the first start only.
    first.kill();
    let _second = site.standalone();
    site.address();
    let out = std::fs::read_to_string(site.path("standalone.out")).unwrap();
    assert!(
        !out.contains(&password) && !out.contains("Created the user"),
        "{out}"
    );
}

const DATA_DAG: &str = r#"
tasks:
  extract:
    kind: extract
    source: {format: csv, path: "people.csv"}
    output: raw.people
  check:
    kind: validate
    input: raw.people
    contract:
      owner: people-team
      tags: [hr]
      columns:
        id: {type: int64, required: true}
        age: {type: int32, min: 0, classification: confidential, description: Years}
      primary_key: [id]
      checks:
        - row_count: {min: 1}
    output: clean.people
  summary:
    kind: transform
    inputs: [clean.people]
    sql: "select count(*) as people, max(age) as oldest from clean.people"
    output: curated.summary
"#;

/// A site with [`DATA_DAG`] and five people, three of them bad.
fn people_site() -> Site {
    let site = Site::new(&[("people.yaml", DATA_DAG)]);
    std::fs::write(
        site.path("dags/people.csv"),
        "id,age\n1,30\n2,-4\n3,x\n3,50\n4,61\n",
    )
    .unwrap();
    site
}

#[test]
fn datasets_and_quality_from_the_command_line() {
    let site = people_site();
    let _standalone = site.standalone();
    site.address();
    let out = site.run(&["dags", "trigger", "people", "--run-id", "r1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.wait_for("the data run", || {
        matches!(
            site.run_state("people").as_deref(),
            Some("success" | "failed")
        )
    });
    assert_eq!(site.run_state("people").as_deref(), Some("success"));

    let list = site.json(&["datasets", "list", "--output", "json"]);
    let rows: std::collections::BTreeMap<String, i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["dataset"].as_str().unwrap().to_owned(),
                d["latest"]["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("clean.people".to_owned(), 2),
            ("curated.summary".into(), 1),
            ("quarantine.people".into(), 3),
            ("raw.people".into(), 5),
        ]
        .into()
    );
    let owners: Vec<&serde_json::Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["owner"])
        .collect();
    assert_eq!(
        owners,
        [
            &serde_json::json!("people-team"),
            &serde_json::Value::Null,
            &serde_json::json!("people-team"),
            &serde_json::Value::Null
        ],
        "clean and quarantine people are described by the validate's contract"
    );
    let show = site.json(&["datasets", "show", "clean.people", "--output", "json"]);
    assert_eq!(show["metadata"]["tags"], serde_json::json!(["hr"]));
    assert_eq!(
        show["metadata"]["columns"]["age"],
        serde_json::json!({"classification": "confidential", "description": "Years"})
    );
    let table = site.run(&["datasets", "show", "clean.people"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("[confidential] — Years"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
    assert_eq!(show["upstream"][0]["dataset"], "raw.people");
    assert_eq!(show["downstream"][0]["dataset"], "curated.summary");
    assert_eq!(show["schema"][0]["name"], "id");
    assert!(site.path("data/clean/people/v=1").is_dir());

    let quality = site.json(&["quality", "people", "r1", "--output", "json"]);
    let q = &quality[0];
    assert_eq!(
        (
            q["rows_in"].as_i64(),
            q["rows_clean"].as_i64(),
            q["rows_quarantined"].as_i64()
        ),
        (Some(5), Some(2), Some(3))
    );
    assert_eq!(q["reconciled"], true);
    let failed: Vec<(String, i64)> = q["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["failed"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            ("type".to_owned(), 1),
            ("min".into(), 1),
            ("primary_key".into(), 2)
        ]
    );
    let missing = site.run(&["datasets", "show", "clean.nothing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dataset `clean.nothing`"));

    let verified = site.run(&["datasets", "verify"]);
    assert!(verified.status.success());
    assert!(
        String::from_utf8_lossy(&verified.stdout)
            .contains("4 kept version(s) checked, 0 problem(s)"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // A file whose bytes changed but not its size is found by its checksum.
    let file = support::files_under(&site.path("data/clean"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let original = std::fs::read(&file).unwrap();
    let mut changed = original.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0xff;
    std::fs::write(&file, &changed).unwrap();
    let verified = site.run(&["datasets", "verify"]);
    let said = String::from_utf8_lossy(&verified.stdout).into_owned();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!verified.status.success(), "{said}");
    assert!(
        said.contains("checksum:") && said.contains(&name) && said.contains("1 problem(s)"),
        "{said}"
    );
    std::fs::write(&file, &original).unwrap();
    assert!(site.run(&["datasets", "verify"]).status.success());

    // Every dataset was written as a Delta table: nothing to migrate.
    let migrated = site.run(&["datasets", "migrate"]);
    assert!(migrated.status.success());
    assert!(
        String::from_utf8_lossy(&migrated.stdout).contains("0 dataset(s) migrated"),
        "{}",
        String::from_utf8_lossy(&migrated.stdout)
    );

    // A backup taken while weir runs, restored into a fresh site that reads
    // it (verify below finds every other version's Delta commit whole).
    let backup = site.path("backup");
    let backup = backup.to_str().unwrap();
    let out = site.run(&["backup", backup]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("4 dataset version(s)"), "{said}");
    let again = site.run(&["backup", backup]);
    assert!(
        !again.status.success(),
        "a backup goes into an empty folder"
    );
    drop(_standalone);
    // The original data is gone: the fresh site can only read its own copy.
    std::fs::remove_dir_all(site.path("data")).unwrap();
    let fresh = Site::new(&[("count.yaml", COUNT_DAG)]);
    let out = fresh.run(&["restore", backup]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = fresh.json(&["datasets", "list", "--output", "json"]);
    let moved = list.to_string().replace(
        site.path("data").to_str().unwrap(),
        fresh.path("data").to_str().unwrap(),
    );
    assert_eq!(
        restored,
        serde_json::from_str::<serde_json::Value>(&moved).unwrap(),
        "the same datasets and versions, kept in the fresh site's data folder"
    );
    let twice = fresh.run(&["restore", backup]);
    assert!(!twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    let _fresh = fresh.standalone();
    fresh.address();
    fresh.trigger("count");
    fresh.wait_for("the run over restored data", || {
        matches!(
            fresh.run_state("count").as_deref(),
            Some("success" | "failed")
        )
    });
    assert_eq!(fresh.run_state("count").as_deref(), Some("success"));
    let counted = fresh.json(&["datasets", "show", "curated.counted", "--output", "json"]);
    assert_eq!(
        counted["versions"][0]["rows"], 2,
        "a row per clean person, each read with the other three datasets: {counted}"
    );

    // Verify finds what does not match the catalog, and says so by its exit code.
    let data = |rel: &str| fresh.path(&format!("data/{rel}"));
    std::fs::create_dir_all(data("clean/people/.tmp-crashed")).unwrap();
    std::fs::create_dir_all(data("clean/people/v=9")).unwrap();
    std::fs::remove_dir_all(data("curated/summary/v=1")).unwrap();
    let raw = support::files_under(&data("raw/people/v=1"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&raw)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"xx"))
        .unwrap();
    let out = fresh.run(&["datasets", "verify", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut problems: Vec<String> = found["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let problem = f["problem"].as_str().unwrap();
            let what = problem.split(':').next().unwrap();
            format!("{} {what}", f["version"].as_str().unwrap())
        })
        .collect();
    problems.sort();
    assert_eq!(
        problems,
        [
            " leftover",
            " orphan",
            "curated.summary v1 missing",
            "raw.people v1 checksum",
            "raw.people v1 delta",
            "raw.people v1 size"
        ],
        "{found}"
    );
}

#[test]
fn erasing_rows_rewrites_every_kept_version_and_is_audited() {
    let site = people_site();
    let _standalone = site.standalone();
    let addr = site.address();
    for run in ["r1", "r2"] {
        let out = site.run(&["dags", "trigger", "people", "--run-id", run]);
        assert!(out.status.success());
        site.wait_for("the data run", || {
            site.json(&["runs", "list", "people", "--output", "json"])["dag_runs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| matches!(r["state"].as_str(), Some("success" | "failed")))
        });
    }
    let rows = |name: &str| -> Vec<i64> {
        site.json(&["datasets", "show", name, "--output", "json"])["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["rows"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(rows("raw.people"), [5, 5]);
    assert_eq!(rows("quarantine.people"), [3, 3]);
    let deltas = |name: &str| -> Vec<Option<i64>> {
        site.json(&["datasets", "show", name, "--output", "json"])["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["delta_version"].as_i64())
            .collect()
    };
    assert_eq!(deltas("raw.people"), [Some(0), Some(1)]);
    assert_eq!(deltas("quarantine.people"), [Some(0), Some(1)]);
    let names = ["raw.people", "clean.people", "quarantine.people"];
    let erase = |extra: &[&str]| {
        let mut args = vec!["datasets", "erase"];
        args.extend(names);
        args.extend(["--where", "id = 3", "--output", "json"]);
        args.extend(extra);
        site.json(&args)
    };

    // A dry run counts and changes nothing.
    let dry = erase(&["--dry-run"]);
    let matched: Vec<(String, i64, u64)> = dry["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["dataset"].as_str().unwrap().to_owned(),
                v["version"].as_i64().unwrap(),
                v["matched"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        matched,
        [
            ("raw.people".to_owned(), 1, 2),
            ("raw.people".into(), 2, 2),
            ("clean.people".into(), 1, 0),
            ("clean.people".into(), 2, 0),
            ("quarantine.people".into(), 1, 2),
            ("quarantine.people".into(), 2, 2),
        ]
    );
    assert_eq!(rows("raw.people"), [5, 5]);

    // The erasure: every kept version without the rows, on disk and in the catalog.
    let done = erase(&[]);
    assert_eq!(done["rows"], 8, "{done}");
    assert_eq!(rows("raw.people"), [3, 3]);
    assert_eq!(rows("quarantine.people"), [1, 1]);
    assert_eq!(rows("clean.people"), [2, 2]);
    // In the Delta tables, a commit replaced the files the latest snapshot
    // held; the older version of a snapshot dataset has no Delta history
    // left (its old files are gone), and quarantine's versions, appended,
    // are all in the latest snapshot. Untouched versions keep theirs.
    assert_eq!(deltas("raw.people"), [None, Some(2)]);
    assert_eq!(deltas("clean.people"), [Some(0), Some(1)]);
    assert_eq!(deltas("quarantine.people"), [Some(2), Some(3)]);
    let again = erase(&["--dry-run"]);
    assert_eq!(again["rows"], 0, "nothing is left to erase: {again}");
    let verified = site.run(&["datasets", "verify"]);
    assert!(
        verified.status.success(),
        "the rewritten versions are whole: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    // Runs go on reading the rewritten versions.
    site.trigger("people");
    site.wait_for("the run after the erasure", || {
        site.json(&["runs", "list", "people", "--output", "json"])["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| matches!(r["state"].as_str(), Some("success" | "failed")))
    });
    assert_eq!(rows("raw.people"), [3, 3, 5]);

    // Each rewritten version is in the audit log with the condition.
    site.run(&[
        "users",
        "create",
        "--username",
        "dpo",
        "--role",
        "admin",
        "--password",
        "dpo-password",
    ]);
    let (status, token) = http(
        &addr,
        "POST",
        "/auth/token",
        None,
        Some(serde_json::json!({"username": "dpo", "password": "dpo-password"})),
    );
    assert_eq!(status, 201, "{token}");
    let (status, audit) = http(
        &addr,
        "GET",
        "/api/v2/eventLogs?event=erase_rows",
        token["access_token"].as_str(),
        None,
    );
    assert_eq!(status, 200, "{audit}");
    let entries = audit["event_logs"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{audit}");
    assert!(
        entries
            .iter()
            .all(|e| e.to_string().contains("id = 3") && e.to_string().contains("rows_erased")),
        "{audit}"
    );

    // Bad input is named.
    let out = site.run(&["datasets", "erase", "raw.people", "--where", "nope = 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = site.run(&["datasets", "erase", "raw.nothing", "--where", "id = 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw.nothing"));
}

#[test]
fn leftovers_of_writes_that_never_finished_are_removed_at_start() {
    let site = people_site();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let leftover = |rel: &str, old: bool| {
        let dir = site.path(rel);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("part-0.parquet");
        std::fs::write(&file, b"half a file").unwrap();
        if old {
            for p in [&file, &dir] {
                std::fs::File::open(p)
                    .unwrap()
                    .set_modified(two_hours_ago)
                    .unwrap();
            }
        }
        dir
    };
    let crashed = leftover("data/raw/people/.tmp-crashed", true);
    let scratch = leftover("data/.extract-crashed", true);
    let live = leftover("data/raw/people/.tmp-being-written", false);
    let _standalone = site.standalone();
    site.address();
    site.wait_for("the leftovers to be removed", || {
        !crashed.exists() && !scratch.exists()
    });
    let log = std::fs::read_to_string(site.path("standalone.log")).unwrap();
    assert!(
        log.contains(".tmp-crashed: a write that never finished"),
        "each removal is reported: {log}"
    );
    assert!(live.exists(), "a folder still being written is left alone");
}

/// Reads every restored dataset.
const COUNT_DAG: &str = r#"
tasks:
  counted:
    kind: transform
    inputs: [clean.people, curated.summary, raw.people, quarantine.people]
    unchecked_inputs: [raw.people, quarantine.people]
    sql: >-
      select c.id, s.people, (select count(*) from raw.people) as raw,
      (select count(*) from quarantine.people) as quarantined
      from clean.people c cross join curated.summary s
    output: curated.counted
"#;

/// Validate and load over enough rows that a kill lands inside them.
const KILLED_DATA: &str = r#"
tasks:
  extract:
    kind: extract
    source: {format: csv, path: rows.csv}
    output: raw.rows
  check:
    kind: validate
    retries: 9
    retry_delay: 1s
    input: raw.rows
    contract:
      columns:
        id: {type: int64, required: true}
        n: {type: int64, min: 0}
      primary_key: [id]
    output: clean.rows
  load:
    kind: load
    retries: 9
    retry_delay: 1s
    input: clean.rows
    target: {connection: warehouse, table: rows, mode: replace}
"#;

#[test]
fn killed_during_validate_and_load_the_catalog_files_and_table_agree() {
    killed_during_data(&Site::new(&[("killed.yaml", KILLED_DATA)]), None);
}

#[test]
fn killed_during_validate_and_load_on_postgres_the_catalog_files_and_table_agree() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(weir_core::testing::postgres()) else {
        return;
    };
    let site = Site::with_database(&[("killed.yaml", KILLED_DATA)], Some(&db.url));
    killed_during_data(&site, Some(&db.url));
    runtime.block_on(db.cleanup());
}

/// Kills weir (SIGKILL) while `check`, then `load`, is running, at several
/// points, restarts it each time, and checks what survived: every published
/// version has its quality record and its files, and the table holds exactly
/// the newest clean version's rows.
fn killed_during_data(site: &Site, url: Option<&str>) {
    let warehouse = site.path("warehouse.db");
    let mut config = std::fs::read_to_string(site.path("weir.toml")).unwrap();
    config.push_str(&format!(
        "[connections.warehouse]\nurl = \"sqlite://{}\"\n",
        warehouse.display()
    ));
    std::fs::write(site.path("weir.toml"), config).unwrap();
    let mut csv = String::from("id,n\n");
    for i in 0..300_000 {
        let n = if i % 100 == 0 { -1 } else { i % 7 };
        csv.push_str(&format!("{i},{n}\n"));
    }
    std::fs::write(site.path("dags/rows.csv"), csv).unwrap();

    let mut weir = site.standalone();
    site.address();
    site.trigger("killed");
    let running = |task: &str| {
        site.tasks("killed")
            .iter()
            .any(|t| t["task_id"] == task && t["state"] == "running")
    };
    for (task, pause_ms) in [("check", 0), ("check", 150), ("load", 0), ("load", 100)] {
        site.wait_for(&format!("{task} to run"), || running(task));
        std::thread::sleep(Duration::from_millis(pause_ms));
        weir.kill();
        weir = site.standalone();
        site.address();
    }
    site.wait_for("the run to end", || {
        matches!(
            site.run_state("killed").as_deref(),
            Some("success" | "failed")
        )
    });
    assert_eq!(site.run_state("killed").as_deref(), Some("success"));
    for task in site.tasks("killed") {
        if task["task_id"] != "extract" {
            assert!(
                task["try_number"].as_i64() >= Some(3),
                "two kills hit two tries of {task}"
            );
        }
    }
    weir.kill();

    let sqlite = format!("sqlite://{}/weir.db", site.dir.path().display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = weir_core::store::open(url.unwrap_or(&sqlite))
            .await
            .unwrap();
        let versions = store.dataset_versions(None).await.unwrap();
        let runs = site.json(&["runs", "list", "killed", "--output", "json"]);
        let mut quality = Vec::new();
        for run in runs["dag_runs"].as_array().unwrap() {
            let run_id = run["dag_run_id"].as_str().unwrap();
            quality.extend(store.quality_of_run("killed", run_id).await.unwrap());
        }
        for v in versions.iter().filter(|v| v.deleted_at.is_none()) {
            let path = v.path.as_deref().unwrap();
            assert!(
                Path::new(path).is_dir(),
                "{} v{}: {path} is gone",
                v.dataset,
                v.version
            );
            if v.dataset == "clean.rows" || v.dataset == "quarantine.rows" {
                assert!(
                    quality.iter().any(|(q, _)| q.clean_version == Some(v.id)
                        || q.quarantine_version == Some(v.id)),
                    "{} version {} was published without its quality record",
                    v.dataset,
                    v.version
                );
            }
        }
        let clean = versions
            .iter()
            .filter(|v| v.dataset == "clean.rows")
            .max_by_key(|v| v.version)
            .unwrap();
        assert_eq!(clean.rows, Some(297_000));
        let (q, _) = quality
            .iter()
            .find(|(q, _)| q.clean_version == Some(clean.id))
            .unwrap();
        assert_eq!(
            (q.rows_in, q.rows_clean, q.rows_quarantined),
            (300_000, 297_000, 3_000)
        );
        // The table holds one whole load: no half-loaded or doubled rows.
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", warehouse.display()))
            .await
            .unwrap();
        let counts: (i64, i64) = sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT id) FROM rows")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(counts, (297_000, 297_000));
    });
}
