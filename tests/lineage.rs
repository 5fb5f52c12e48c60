//! OpenLineage events of real runs (`weir dags test`): one START and one
//! COMPLETE or FAIL per try, checked against the OpenLineage client's
//! models of the official schema, delivered in order to a lineage service
//! on 127.0.0.1, and never in the way of a run when the service is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The example DAGs and a DAG whose only task fails, in a fresh folder.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("dags"))
        .arg(repo().join("weir.toml"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.path().join("dags/fails.yaml"),
        "tasks:\n  boom: {kind: shell, command: 'exit 3', retries: 0}\n",
    )
    .unwrap();
    dir
}

fn dags_test(dir: &Path, dag: &str, env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["dags", "test", dag])
        .current_dir(dir)
        .env_remove("WEIR_CONFIG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l.rsplit('\t').next().unwrap()).unwrap())
        .collect()
}

/// Runs the checker on `file`: its exit status and what it printed.
fn check(file: &Path) -> (bool, String) {
    let out = Command::new(python())
        .arg(repo().join("tests/lineage/check_events.py"))
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn job(e: &Value) -> &str {
    e["job"]["name"].as_str().unwrap()
}

fn kind(e: &Value) -> &str {
    e["eventType"].as_str().unwrap()
}

/// The one end event of `name`.
fn end_of<'a>(all: &'a [Value], name: &str) -> &'a Value {
    let ends: Vec<&Value> = all
        .iter()
        .filter(|e| job(e) == name && kind(e) != "START")
        .collect();
    assert_eq!(ends.len(), 1, "{name}: {ends:?}");
    ends[0]
}

#[test]
fn every_try_sends_a_start_and_an_end_event_that_match_the_openlineage_schema() {
    let dir = site();
    let file = dir.path().join("events.jsonl");
    let env = [
        ("WEIR_OPENLINEAGE_TRANSPORT", "file".to_owned()),
        ("WEIR_OPENLINEAGE_PATH", file.display().to_string()),
        ("WEIR_OPENLINEAGE_NAMESPACE", "acme".to_owned()),
    ];
    let out = dags_test(dir.path(), "orders_daily", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dags_test(dir.path(), "fails", &env);
    assert!(!out.status.success(), "the failing DAG fails");

    let text = std::fs::read_to_string(&file).unwrap();
    let all = events(&text);
    // 7 tries of orders_daily and 1 of fails, two events each.
    assert_eq!(all.len(), 16, "{text}");
    let (ok, said) = check(&file);
    assert!(ok, "the events do not match the schema: {said}");
    assert_eq!(said.trim(), "16");

    // One START then one end per try, under one run id; every task of a
    // DAG run has the same parent.
    let mut by_run: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &all {
        by_run
            .entry(e["run"]["runId"].as_str().unwrap())
            .or_default()
            .push(kind(e));
        assert_eq!(e["job"]["namespace"], "acme");
        let parent = &e["run"]["facets"]["parent"];
        let dag = parent["job"]["name"].as_str().unwrap();
        assert!(job(e).starts_with(&format!("{dag}.")), "{e}");
        parents
            .entry(dag)
            .or_default()
            .push(parent["run"]["runId"].as_str().unwrap());
    }
    assert_eq!(by_run.len(), 8);
    for kinds in by_run.values() {
        assert!(
            kinds == &["START", "COMPLETE"] || kinds == &["START", "FAIL"],
            "{kinds:?}"
        );
    }
    for ids in parents.values() {
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    }

    // An extract names its files as inputs and its dataset as output.
    let extract = end_of(&all, "orders_daily.extract_orders");
    let inputs: Vec<&str> = extract["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs.len(), 3, "{inputs:?}");
    assert!(
        inputs
            .iter()
            .all(|i| i.ends_with(".csv") && i.contains("/dags/data/orders/"))
    );
    assert_eq!(extract["inputs"][0]["namespace"], "file");
    let output = &extract["outputs"][0];
    assert!(
        output["name"].as_str().unwrap().ends_with("/raw/orders"),
        "{output}"
    );
    assert_eq!(output["facets"]["version"]["datasetVersion"], "1");
    assert_eq!(
        output["facets"]["storage"],
        serde_json::json!({
            "storageLayer": "delta", "fileFormat": "parquet", "_producer": output["facets"]["storage"]["_producer"],
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/StorageDatasetFacet.json#/$defs/StorageDatasetFacet",
        }),
        "a zone dataset is a Delta table"
    );
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 37);
    let fields: Vec<&str> = output["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"order_id") && fields.contains(&"amount"),
        "{fields:?}"
    );

    // A validate says what it found about the dataset it read.
    let validate = end_of(&all, "orders_daily.validate_orders");
    let read = validate["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"].as_str().unwrap().ends_with("/raw/orders"))
        .unwrap();
    let metrics = &read["inputFacets"]["dataQualityMetrics"];
    assert_eq!(metrics["rowCount"], 37, "{read}");
    assert!(
        metrics["columnMetrics"]["order_id"]["nullCount"].is_number(),
        "{metrics}"
    );
    let assertions = read["inputFacets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .unwrap();
    assert!(
        assertions
            .iter()
            .any(|a| a["assertion"] == "min" && a["column"] == "amount" && a["success"] == false),
        "{assertions:?}"
    );
    let written: Vec<&str> = validate["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        written.iter().any(|o| o.ends_with("/clean/orders")),
        "{written:?}"
    );
    assert!(
        written.iter().any(|o| o.ends_with("/quarantine/orders")),
        "{written:?}"
    );

    // A transform's job carries the SQL it ran.
    let transform = end_of(&all, "orders_daily.daily_revenue");
    let sql = &transform["job"]["facets"]["sql"];
    assert_eq!(sql["dialect"], "datafusion", "{transform}");
    assert!(
        sql["query"].as_str().unwrap().contains("sum(o.amount)"),
        "{sql}"
    );

    // A load names its target table on its connection.
    let load = end_of(&all, "orders_daily.load_revenue");
    let target = &load["outputs"][0];
    assert_eq!(target["name"], "daily_revenue", "{load}");
    assert!(
        target["namespace"]
            .as_str()
            .unwrap()
            .starts_with("sqlite:///"),
        "{target}"
    );
    assert!(
        target["namespace"]
            .as_str()
            .unwrap()
            .ends_with("/warehouse.db"),
        "{target}"
    );

    // A failed try says why.
    let failed = end_of(&all, "fails.boom");
    assert_eq!(kind(failed), "FAIL");
    let error = &failed["run"]["facets"]["errorMessage"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{error}"
    );

    // The checker is not a formality: a facet with a key its schema lacks,
    // and one missing a required key, are refused.
    let broken = dir.path().join("broken.jsonl");
    let mut extra = failed.clone();
    extra["run"]["facets"]["errorMessage"]["severity"] = Value::from("high");
    std::fs::write(&broken, format!("{extra}\n")).unwrap();
    let (ok, said) = check(&broken);
    assert!(!ok && said.contains("severity"), "{said}");
    let mut missing = failed.clone();
    missing["run"]["facets"]["errorMessage"]
        .as_object_mut()
        .unwrap()
        .remove("programmingLanguage");
    std::fs::write(&broken, format!("{missing}\n")).unwrap();
    let (ok, said) = check(&broken);
    assert!(!ok && said.contains("programmingLanguage"), "{said}");
}

struct Receiver {
    child: std::process::Child,
    port: u16,
    events: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(dir: &Path) -> Receiver {
    let events = dir.join("received.txt");
    let port_file = dir.join("port");
    let child = Command::new(python())
        .arg(repo().join("tests/lineage/receiver.py"))
        .arg(&port_file)
        .arg(&events)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p.trim().parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the lineage receiver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Receiver {
        child,
        port,
        events,
    }
}

#[test]
fn a_lineage_service_gets_the_events_in_order_and_one_that_is_down_fails_nothing() {
    let dir = site();
    let r = receiver(dir.path());
    let env = [
        ("WEIR_OPENLINEAGE_TRANSPORT", "http".to_owned()),
        (
            "WEIR_OPENLINEAGE_URL",
            format!("http://127.0.0.1:{}/", r.port),
        ),
        ("WEIR_OPENLINEAGE_API_KEY", "k3y".to_owned()),
    ];
    let out = dags_test(dir.path(), "hello_shell", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Queued events are delivered before the command ends.
    let text = std::fs::read_to_string(&r.events).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("Bearer k3y\t")),
        "every event carries the key: {text}"
    );
    let all = events(&text);
    assert!(all.len() >= 4, "{text}");
    // In the order they were made: a try's START before its end, and a
    // try's times never go back (tries running side by side stamp their
    // events a moment before queueing them, so two tries' events may
    // interleave by a millisecond).
    let mut last: HashMap<&str, &str> = HashMap::new();
    for e in &all {
        let id = e["run"]["runId"].as_str().unwrap();
        let at = e["eventTime"].as_str().unwrap();
        match last.insert(id, at) {
            None => assert_eq!(kind(e), "START", "an end before its start: {e}"),
            Some(before) => assert!(before <= at, "a try's time went back: {e}"),
        }
    }
    // The mapped instances are tries of their own.
    let mapped = all
        .iter()
        .filter(|e| job(e) == "hello_shell.per_region" && kind(e) == "COMPLETE")
        .count();
    assert_eq!(
        mapped, 4,
        "the task's own try and its three instances: {text}"
    );
    let stored = dir.path().join("stored.jsonl");
    std::fs::write(
        &stored,
        all.iter().map(|e| format!("{e}\n")).collect::<String>(),
    )
    .unwrap();
    let (ok, said) = check(&stored);
    assert!(ok, "{said}");

    // A service that is down costs the run nothing.
    drop(r);
    let env = [
        ("WEIR_OPENLINEAGE_TRANSPORT", "http".to_owned()),
        ("WEIR_OPENLINEAGE_URL", "http://127.0.0.1:9/".to_owned()),
    ];
    let out = dags_test(dir.path(), "hello_shell", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OpenLineage"),
        "the failed delivery is reported"
    );
}

#[test]
fn the_console_transport_prints_one_event_per_line() {
    let dir = site();
    let out = dags_test(
        dir.path(),
        "fails",
        &[("WEIR_OPENLINEAGE_TRANSPORT", "console".to_owned())],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("eventType").is_some())
        .collect();
    let kinds: Vec<&str> = printed.iter().map(kind).collect();
    assert_eq!(kinds, ["START", "FAIL"], "{text}");
    let file = dir.path().join("printed.jsonl");
    std::fs::write(
        &file,
        printed.iter().map(|e| format!("{e}\n")).collect::<String>(),
    )
    .unwrap();
    let (ok, said) = check(&file);
    assert!(ok, "{said}");
}

#[test]
fn incomplete_lineage_settings_are_refused_by_name() {
    let dir = site();
    let out = dags_test(
        dir.path(),
        "hello_shell",
        &[("WEIR_OPENLINEAGE_TRANSPORT", "http".to_owned())],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[openlineage]") && err.contains("url"),
        "{err}"
    );
    let out = dags_test(
        dir.path(),
        "hello_shell",
        &[("WEIR_OPENLINEAGE_TRANSPORT", "kafka".to_owned())],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WEIR_OPENLINEAGE_TRANSPORT") && err.contains("kafka"),
        "{err}"
    );
}
