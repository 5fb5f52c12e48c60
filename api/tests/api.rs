//! The REST API through the whole HTTP stack, in process, on both backends:
//! each endpoint's answers, its errors, and who may call it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use weir_api::auth::tokens;
use weir_core::access::Role;
use weir_core::both_backends;
use weir_core::scheduler::{Options, Outcome, Report, Scheduler, SystemClock};
use weir_core::testing::TestDb;

mod common;

const DEMO: &str = r#"
dag: demo
schedule: manual
params: {who: nobody}
tasks:
  extract:
    kind: shell
    command: echo {{ params.who }}
  publish:
    kind: shell
    depends_on: [extract]
    retries: 0
    command: echo publish {{ tasks.extract.output }}
"#;

const NIGHTLY: &str = r#"
dag: nightly
schedule: "0 2 * * *"
start_date: 2026-01-01
catchup: false
paused: true
tags: [finance]
dagrun_timeout: 90m
tasks:
  only:
    kind: shell
    retries: 2
    retry_delay: 90s
    timeout: 1d
    command: "true"
"#;

/// The secret key the test site seals connections with.
const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Api {
    app: Router,
    sched: Scheduler,
    logs: tempfile::TempDir,
    _dags: tempfile::TempDir,
    admin: String,
    operator: String,
    viewer: String,
}

async fn api(db: &TestDb) -> Api {
    let dags = tempfile::tempdir().unwrap();
    std::fs::write(dags.path().join("demo.yaml"), DEMO).unwrap();
    std::fs::write(dags.path().join("nightly.yaml"), NIGHTLY).unwrap();
    std::fs::write(dags.path().join("broken.yaml"), "dag: broken\ntasks: [").unwrap();
    let options = Options {
        secret_key: weir_core::secret_key::KeySource::Value(TEST_KEY.into()),
        ..Options::default()
    };
    let sched = Scheduler::new(db.store.clone(), Arc::new(SystemClock), options);
    sched.sync_folder(dags.path()).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let state = weir_api::AppState::new(
        sched.clone(),
        logs.path().to_path_buf(),
        None,
        chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    let app = weir_api::app(state);
    common::add_people(db.store.as_ref()).await;
    let mut tokens = Vec::new();
    for (name, _) in common::PEOPLE {
        let (status, body) = call(
            &app,
            "POST",
            "/auth/token",
            None,
            Some(json!({"username": name, "password": format!("{name}-password")})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    Api {
        app,
        sched,
        logs,
        _dags: dags,
        admin: tokens[0].clone(),
        operator: tokens[1].clone(),
        viewer: tokens[2].clone(),
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let raw = body.map(|b| b.to_string());
    call_raw(app, method, path, token, raw.as_deref()).await
}

async fn call_raw(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let (status, body) = call(&self.app, "GET", path, Some(&self.viewer), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        call(&self.app, method, path, Some(&self.operator), Some(body)).await
    }

    /// Runs queued work: every task succeeds except those named in `fail`.
    /// Triggers runs of `demo` (id, logical day of `month`), then runs them
    /// all with `publish` failing.
    async fn failed_demo_runs(&self, month: &str, runs: &[(&str, &str)]) {
        for (run, day) in runs {
            let (status, body) = self
                .send(
                    "POST",
                    "/api/v2/dags/demo/dagRuns",
                    json!({"dag_run_id": run, "logical_date": format!("2026-{month}-{day}T00:00:00Z")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        self.drive(&["publish"]).await;
    }

    /// Sends `body` and checks that it is refused with 422 naming `what`.
    async fn refused(&self, method: &str, path: &str, body: Value, what: &str) {
        let (status, err) = self.send(method, path, body.clone()).await;
        let context = format!("{method} {path} {body}: {err}");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{context}");
        assert!(
            err["detail"].as_str().is_some_and(|d| d.contains(what)),
            "{context}"
        );
    }

    async fn drive(&self, fail: &[&str]) {
        self.drive_with(|c| {
            let failed = fail.contains(&c.task_id.as_str());
            weir_core::scheduler::Ended {
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Success
                },
                exit_code: Some(i64::from(failed)),
                error: failed.then(|| "boom".to_owned()),
                pid: None,
                // `extract` publishes an output naming its try.
                output: (!failed && c.task_id == "extract")
                    .then(|| json!({"rows": c.try_number, "task": "extract"}).to_string()),
            }
        })
        .await;
    }

    /// Runs queued work, each try ending as `ended` says, writing a log line
    /// naming the task instance.
    async fn drive_with(
        &self,
        ended: impl Fn(&weir_core::store::Claim) -> weir_core::scheduler::Ended,
    ) {
        for _ in 0..50 {
            self.sched.dispatch().await.unwrap();
            let claims = self
                .sched
                .claim("test-worker", "localhost", 100, None)
                .await
                .unwrap();
            if claims.is_empty() {
                return;
            }
            for c in claims {
                let log = self.logs.path().join(&c.log_path);
                std::fs::create_dir_all(log.parent().unwrap()).unwrap();
                let name = match c.map_index {
                    i if i < 0 => c.task_id.clone(),
                    i => format!("{}[{i}]", c.task_id),
                };
                std::fs::write(&log, format!("line one of {name}\nline two\n")).unwrap();
                let ended = ended(&c);
                self.sched
                    .finish(&Report { ended, claim: c })
                    .await
                    .unwrap();
            }
        }
    }
}

both_backends!(
    dags_runs_and_task_instances,
    dags_runs_and_task_instances_case
);
async fn dags_runs_and_task_instances_case(db: &TestDb) {
    let a = api(db).await;

    let dags = a.get("/api/v2/dags").await;
    assert_eq!(dags["total_entries"], 2);
    let ids: Vec<&str> = dags["dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo", "nightly"]);
    let nightly = a.get("/api/v2/dags/nightly").await;
    assert_eq!(nightly["is_paused"], true);
    assert_eq!(nightly["timetable_summary"], "0 2 * * *");
    assert_eq!(nightly["is_backfillable"], true);
    // Airflow's shapes: a tag names its DAG, durations are timedeltas.
    assert_eq!(
        nightly["tags"],
        json!([{"name": "finance", "dag_id": "nightly", "dag_display_name": "nightly"}])
    );
    let details = a.get("/api/v2/dags/nightly/details").await;
    assert_eq!(details["dag_run_timeout"], "PT1H30M");
    let only = a.get("/api/v2/dags/nightly/tasks/only").await;
    assert_eq!(
        (
            &only["retry_delay"],
            &only["execution_timeout"],
            &only["queue"]
        ),
        (
            &json!({"__type": "TimeDelta", "days": 0, "seconds": 90, "microseconds": 0}),
            &json!({"__type": "TimeDelta", "days": 1, "seconds": 0, "microseconds": 0}),
            &json!("default")
        )
    );
    assert_eq!(a.get("/api/v2/dags?paused=false").await["total_entries"], 1);
    assert_eq!(
        a.get("/api/v2/dags?dag_id_pattern=NIGHT").await["dags"][0]["dag_id"],
        "nightly"
    );
    assert_eq!(
        a.get("/api/v2/dags?order_by=-dag_id&limit=1").await["dags"][0]["dag_id"],
        "nightly"
    );

    let (status, body) = a
        .send("PATCH", "/api/v2/dags/demo", json!({"is_paused": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_paused"], true);
    let (_, body) = a
        .send("PATCH", "/api/v2/dags/demo", json!({"is_paused": false}))
        .await;
    assert_eq!(body["is_paused"], false);

    let details = a.get("/api/v2/dags/demo/details").await;
    assert_eq!(details["params"], json!({"who": "nobody"}));
    assert_eq!(details["latest_dag_version"]["version_number"], 1);
    let tasks = a.get("/api/v2/dags/demo/tasks").await;
    assert_eq!(tasks["tasks"][0]["task_id"], "extract");
    assert_eq!(tasks["tasks"][0]["downstream_task_ids"], json!(["publish"]));
    assert_eq!(a.get("/api/v2/dags/demo/tasks/publish").await["retries"], 0);

    // Trigger with conf; the same run id twice is a conflict.
    let (status, run) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "r1", "conf": {"who": "ada"}, "note": "first"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["conf"], json!({"who": "ada"}));
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["triggering_user_name"], "otto");
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "r1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    a.drive(&["publish"]).await;
    let run = a.get("/api/v2/dags/demo/dagRuns/r1").await;
    assert_eq!(run["state"], "failed");
    assert!(run["duration"].as_f64().is_some());
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns?state=failed").await["total_entries"],
        1
    );
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns?state=success").await["total_entries"],
        0
    );
    assert_eq!(
        a.get("/api/v2/dags/~/dagRuns?run_type=manual&order_by=-run_after")
            .await["dag_runs"][0]["dag_run_id"],
        "r1"
    );
    assert_eq!(a.get("/api/v2/dags/~/dagRuns?logical_date_gte=2000-01-01T00:00:00Z&logical_date_lte=2000-01-02T00:00:00Z").await["total_entries"], 0);

    let tis = a.get("/api/v2/dags/demo/dagRuns/r1/taskInstances").await;
    assert_eq!(tis["total_entries"], 2);
    let failed = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances?state=failed")
        .await;
    assert_eq!(failed["task_instances"][0]["task_id"], "publish");
    assert_eq!(
        a.get("/api/v2/dags/~/dagRuns/~/taskInstances?task_id=extract")
            .await["total_entries"],
        1
    );
    let ti = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish")
        .await;
    assert_eq!(
        (
            ti["state"].as_str(),
            ti["try_number"].as_i64(),
            ti["map_index"].as_i64()
        ),
        (Some("failed"), Some(1), Some(-1))
    );
    let tries = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish/tries")
        .await;
    assert_eq!(tries["task_instances"][0]["state"], "failed");
    assert_eq!(tries["task_instances"][0]["error"], "boom");
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish/tries/1")
            .await["try_number"],
        1
    );

    // Logs: the whole log of an ended try, and pieces that continue.
    let log = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish/logs/1")
        .await;
    assert_eq!(
        log["content"],
        json!([{"event": "line one of publish"}, {"event": "line two"}])
    );
    assert_eq!(log["continuation_token"], Value::Null);
    let rest = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish/logs/1?token=20")
        .await;
    assert_eq!(rest["content"], json!([{"event": "line two"}]));

    // Clearing: a dry run changes nothing; then the failed task runs again.
    let (status, preview) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dag_run_id": "r1", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["task_instances"][0]["task_id"], "publish");
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/r1").await["state"],
        "failed"
    );
    // Without `dry_run`, as in Airflow, it is a preview too.
    let (status, preview) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dag_run_id": "r1", "task_ids": ["publish"]}),
        )
        .await;
    assert_eq!(
        (status, &preview["total_entries"]),
        (StatusCode::OK, &json!(1)),
        "{preview}"
    );
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/r1").await["state"],
        "failed",
        "dry_run defaults to true"
    );
    // What weir cannot honour is refused, never dropped.
    for (body, names) in [
        (
            json!({"dag_run_id": "r1", "dry_run": false, "bogus": 1}),
            "bogus",
        ),
        (
            json!({"dag_run_id": "r1", "dry_run": false, "reset_dag_runs": false}),
            "reset_dag_runs",
        ),
        (
            json!({"dag_run_id": "r1", "dry_run": false, "note": "why"}),
            "note",
        ),
        (
            json!({"dag_run_id": "r1", "dry_run": false, "run_on_latest_version": true}),
            "run_on_latest_version",
        ),
        (
            json!({"dag_run_id": "r1", "dry_run": false, "only_running": true}),
            "only_running",
        ),
    ] {
        a.refused("POST", "/api/v2/dags/demo/clearTaskInstances", body, names)
            .await;
    }
    // The official client sends every field with its default.
    let (_, cleared) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dag_run_id": "r1", "task_ids": ["publish"], "dry_run": false,
                   "only_failed": true, "only_running": false, "include_downstream": false,
                   "include_upstream": false, "include_past": false, "include_future": false,
                   "reset_dag_runs": true, "prevent_running_task": false}),
        )
        .await;
    assert_eq!(cleared["total_entries"], 1, "{cleared}");
    a.drive(&[]).await;
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/r1").await["state"],
        "success"
    );
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/r1/taskInstances/publish/tries")
            .await["total_entries"],
        2
    );

    // Clearing a whole run, marking it, and its note.
    let (_, preview) = a
        .send("POST", "/api/v2/dags/demo/dagRuns/r1/clear", json!({}))
        .await;
    assert_eq!(preview["total_entries"], 2, "{preview}");
    let (status, body) = a
        .send(
            "PATCH",
            "/api/v2/dags/demo/dagRuns/r1",
            json!({"note": "checked", "state": "failed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["note"].as_str(), body["state"].as_str()),
        (Some("checked"), Some("failed"))
    );
    let (_, body) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns/r1/clear",
            json!({"dry_run": false}),
        )
        .await;
    assert!(
        matches!(body["state"].as_str(), Some("queued" | "running")),
        "{body}"
    );

    // Who did what is in the audit log.
    let audit = a.get("/api/v2/auditLog?dag_id=demo").await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    for expected in [
        ("otto", "pause"),
        ("otto", "unpause"),
        ("otto", "trigger"),
        ("otto", "clear"),
        ("otto", "note"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
}

both_backends!(a_running_try_log_can_be_followed, follow_log_case);
async fn follow_log_case(db: &TestDb) {
    let a = api(db).await;
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "f"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    a.sched.dispatch().await.unwrap();
    let claim = a
        .sched
        .claim("test-worker", "localhost", 1, None)
        .await
        .unwrap()
        .remove(0);
    let file = a.logs.path().join(&claim.log_path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "first\nsec").unwrap();
    let url = "/api/v2/dags/demo/dagRuns/f/taskInstances/extract/logs/1";
    // Only whole lines are handed out while the try runs; the token continues.
    let piece = a.get(url).await;
    assert_eq!(piece["content"], json!([{"event": "first"}]));
    let token = piece["continuation_token"].as_str().unwrap().to_owned();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"ond\n")
        .unwrap();
    let piece = a.get(&format!("{url}?token={token}")).await;
    assert_eq!(piece["content"], json!([{"event": "second"}]));
    let token = piece["continuation_token"].as_str().unwrap().to_owned();
    let piece = a.get(&format!("{url}?token={token}")).await;
    assert_eq!(
        (
            piece["content"].clone(),
            piece["continuation_token"].is_string()
        ),
        (json!([]), true)
    );
    // Once the try ended and all was read, there is no token.
    a.sched
        .finish(&Report {
            ended: weir_core::scheduler::Ended {
                outcome: Outcome::Success,
                exit_code: Some(0),
                error: None,
                pid: None,
                output: None,
            },
            claim,
        })
        .await
        .unwrap();
    let piece = a.get(&format!("{url}?token={token}")).await;
    assert_eq!(
        (
            piece["content"].clone(),
            piece["continuation_token"].clone()
        ),
        (json!([]), Value::Null)
    );
    let (status, body) = call(
        &a.app,
        "GET",
        &format!("{url}?token=999999"),
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = call(
        &a.app,
        "GET",
        &format!("{url}?token=abc"),
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/dags/demo/dagRuns/f/taskInstances/extract/logs/7",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(pools_backfills_tokens_and_more, pools_backfills_tokens_case);
async fn pools_backfills_tokens_case(db: &TestDb) {
    let a = api(db).await;
    let admin = Some(a.admin.as_str());

    // Pools: create, read, change, delete; the default pool stays.
    let (status, pool) = call(
        &a.app,
        "POST",
        "/api/v2/pools",
        admin,
        Some(json!({"name": "db", "slots": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pool}");
    assert_eq!(pool["open_slots"], 2);
    let (status, _) = call(
        &a.app,
        "POST",
        "/api/v2/pools",
        admin,
        Some(json!({"name": "db", "slots": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, pool) = call(
        &a.app,
        "PATCH",
        "/api/v2/pools/db",
        admin,
        Some(json!({"slots": 5})),
    )
    .await;
    assert_eq!(pool["slots"], 5);
    assert_eq!(a.get("/api/v2/pools").await["total_entries"], 2);
    let (status, _) = call(&a.app, "DELETE", "/api/v2/pools/db", admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&a.app, "DELETE", "/api/v2/pools/default", admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call(
        &a.app,
        "POST",
        "/api/v2/pools",
        admin,
        Some(json!({"name": "bad name!", "slots": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Import errors name the file and the place.
    let errors = a.get("/api/v2/importErrors").await;
    assert_eq!(errors["total_entries"], 1);
    assert!(
        errors["import_errors"][0]["filename"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml")
    );
    let id = errors["import_errors"][0]["import_error_id"]
        .as_i64()
        .unwrap();
    assert!(
        a.get(&format!("/api/v2/importErrors/{id}")).await["stack_trace"]
            .as_str()
            .unwrap()
            .contains("broken.yaml")
    );

    // A backfill creates its runs within max_active_runs, and can be cancelled.
    let (status, b) = a
        .send(
            "POST",
            "/api/v2/backfills",
            json!({"dag_id": "nightly", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-05T00:00:00Z", "max_active_runs": 2, "dag_run_conf": {"x": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let runs = a
        .get("/api/v2/dags/nightly/dagRuns?run_type=backfill")
        .await;
    assert_eq!(runs["total_entries"], 2, "{runs}");
    assert_eq!(runs["dag_runs"][0]["conf"], json!({"x": 1}));
    let (status, _) = a
        .send("POST", "/api/v2/backfills", json!({"dag_id": "nightly", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-02T00:00:00Z"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one unfinished backfill per DAG"
    );
    let id = b["id"].as_i64().unwrap();
    assert_eq!(
        a.get(&format!("/api/v2/backfills/{id}")).await["max_active_runs"],
        2
    );
    let (_, paused) = a
        .send("PUT", &format!("/api/v2/backfills/{id}/pause"), json!({}))
        .await;
    assert_eq!(paused["is_paused"], true);
    let (_, cancelled) = a
        .send("PUT", &format!("/api/v2/backfills/{id}/cancel"), json!({}))
        .await;
    assert!(cancelled["completed_at"].is_string(), "{cancelled}");
    assert_eq!(
        a.get("/api/v2/backfills?dag_id=nightly").await["total_entries"],
        1
    );
    let (status, _) = a
        .send("POST", "/api/v2/backfills", json!({"dag_id": "demo", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-02T00:00:00Z"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a manual DAG has no intervals"
    );

    // API tokens: shown once, work as bearer tokens, stop when revoked.
    let (status, t) = call(
        &a.app,
        "POST",
        "/api/v2/tokens",
        admin,
        Some(json!({"role": "viewer", "description": "ci"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    let (status, _) = call(&a.app, "GET", "/api/v2/dags", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = call(&a.app, "GET", "/api/v2/tokens", admin, None).await.1;
    assert!(
        !listed.to_string().contains(&token),
        "secrets are never listed"
    );
    let (status, _) = call(
        &a.app,
        "DELETE",
        &format!("/api/v2/tokens/{}", t["id"].as_str().unwrap()),
        admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&a.app, "GET", "/api/v2/dags", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Workers, version, health, metrics and the OpenAPI document.
    assert_eq!(a.get("/api/v2/workers").await["total_entries"], 0);
    let (status, version) = call(&a.app, "GET", "/api/v2/version", None, None).await;
    assert_eq!(
        (status, version["version"].as_str()),
        (StatusCode::OK, Some(env!("CARGO_PKG_VERSION"))),
        "the version needs no token, as in Airflow"
    );
    let (status, health) = call(&a.app, "GET", "/api/v2/monitor/health", None, None).await;
    assert_eq!(
        (status, health["metadatabase"]["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    let (status, metrics) = call(&a.app, "GET", "/metrics", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    for name in [
        "weir_dag_runs{state=\"running\"} 2",
        "weir_queue_depth",
        "weir_scheduling_latency_seconds_bucket",
        "weir_task_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    let doc = a.get("/api/v2/openapi.json").await;
    for path in [
        "/api/v2/dags",
        "/api/v2/dags/{dag_id}/dagRuns",
        "/api/v2/dags/{dag_id}/clearTaskInstances",
        "/api/v2/backfills",
        "/auth/token",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}

both_backends!(bad_input_gets_json_4xx, bad_input_case);
async fn bad_input_case(db: &TestDb) {
    let a = api(db).await;
    let op = Some(a.operator.as_str());
    let expect = |status: StatusCode, body: &Value, want: StatusCode| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["status"], want.as_u16(), "{body}");
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
    };
    let (s, b) = call(&a.app, "GET", "/api/v2/dags/nope", op, None).await;
    expect(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/demo/dagRuns/nope/taskInstances/extract",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = call_raw(
        &a.app,
        "POST",
        "/api/v2/dags/demo/dagRuns",
        op,
        Some("{\"conf\": "),
    )
    .await;
    expect(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = call(
        &a.app,
        "POST",
        "/api/v2/dags/demo/dagRuns",
        op,
        Some(json!({"conf": [1, 2]})),
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "POST",
        "/api/v2/dags/demo/dagRuns",
        op,
        Some(json!({"logical_date": "yesterday"})),
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "PATCH",
        "/api/v2/dags/demo",
        op,
        Some(json!({"is_paused": "yes"})),
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let big = json!({"conf": {"blob": "x".repeat(2 << 20)}});
    let (s, b) = call(&a.app, "POST", "/api/v2/dags/demo/dagRuns", op, Some(big)).await;
    expect(s, &b, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/~/dagRuns?order_by=nonsense",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(&a.app, "GET", "/api/v2/dags/~/dagRuns?limit=-1", op, None).await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/~/dagRuns?limit=100000",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/~/dagRuns?state=exploded",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/~/dagRuns?start_date_gte=soon",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(
        &a.app,
        "GET",
        "/api/v2/dags/demo/dagRuns/x/taskInstances/y/logs/one",
        op,
        None,
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = call(&a.app, "GET", "/api/v2/nothing/here", op, None).await;
    expect(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = call(&a.app, "DELETE", "/api/v2/dags", op, None).await;
    expect(s, &b, StatusCode::METHOD_NOT_ALLOWED);

    // SQL metacharacters and `../` in paths and queries are data, nothing more.
    for hostile in [
        "x'%20OR%20'1'='1",
        "..%2F..%2Fetc%2Fpasswd",
        "demo%3B%20DROP%20TABLE%20dag_runs%3B--",
        "%25",
    ] {
        let (s, b) = call(&a.app, "GET", &format!("/api/v2/dags/{hostile}"), op, None).await;
        expect(s, &b, StatusCode::NOT_FOUND);
        let (s, b) = call(
            &a.app,
            "GET",
            &format!("/api/v2/dags/demo/dagRuns/{hostile}/taskInstances/extract/logs/1"),
            op,
            None,
        )
        .await;
        expect(s, &b, StatusCode::NOT_FOUND);
        let (s, b) = call(
            &a.app,
            "GET",
            &format!("/api/v2/dags/~/dagRuns?state={hostile}"),
            op,
            None,
        )
        .await;
        expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = call(
            &a.app,
            "GET",
            &format!("/api/v2/dags?dag_id_pattern={hostile}&tags={hostile}"),
            op,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(
            &a.app,
            "GET",
            &format!("/api/v2/dags/~/dagRuns?run_id_pattern={hostile}"),
            op,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(
        a.get("/api/v2/dags").await["total_entries"],
        2,
        "the tables are intact"
    );
}

/// A concrete path for each documented path template.
fn concrete(template: &str) -> String {
    template
        .replace("{dag_id}", "demo")
        .replace("{dag_run_id}", "r1")
        .replace("{task_id}", "extract")
        .replace("{try_number}", "1")
        .replace("{backfill_id}", "1")
        .replace("{import_error_id}", "1")
        .replace("{event_log_id}", "1")
        .replace("{pool_name}", "default")
        .replace("{variable_key}", "bucket")
        .replace("{token_id}", "abc")
        .replace("{dataset}", "clean.x")
}

both_backends!(every_endpoint_needs_the_right_token, auth_case);
async fn auth_case(db: &TestDb) {
    let a = api(db).await;
    let doc = a.get("/api/v2/openapi.json").await;
    let open = ["/api/v2/monitor/health", "/api/v2/version", "/auth/token"];
    let now = chrono::Utc::now();
    let worker = tokens::generate(Role::Worker, None, "ada", None, now).unwrap();
    db.store.create_token(&worker.record).await.unwrap();
    let (mut writes, mut worker_ops) = (0, 0);
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let path = concrete(template);
            let body = (method != "GET" && method != "DELETE").then(|| json!({}));
            if open.contains(&template.as_str()) {
                continue;
            }
            let (s, b) = call(&a.app, &method, &path, None, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token: {b}"
            );
            if template.starts_with("/api/worker/") {
                // The worker protocol is for worker tokens only.
                worker_ops += 1;
                for (who, token) in [("an admin", &a.admin), ("a viewer", &a.viewer)] {
                    let (s, b) = call(&a.app, &method, &path, Some(token), body.clone()).await;
                    assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as {who}: {b}");
                }
                continue;
            }
            // A worker token reaches nothing but the worker protocol.
            let (s, b) = call(&a.app, &method, &path, Some(&worker.token), body.clone()).await;
            assert_eq!(
                s,
                StatusCode::FORBIDDEN,
                "{method} {path} with a worker token: {b}"
            );
            // Airflow's `…/list` endpoints read with a body: a viewer may.
            let reads_with_a_body = method == "POST" && template.ends_with("/list");
            let (s, b) = call(&a.app, &method, &path, Some(&a.viewer), body).await;
            if reads_with_a_body {
                // Allowed (the run the path names may not exist here).
                assert!(
                    s == StatusCode::OK || s == StatusCode::NOT_FOUND,
                    "{method} {path} as a viewer: {s} {b}"
                );
            } else if method != "GET" {
                writes += 1;
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as a viewer: {b}");
            }
        }
    }
    assert!(writes >= 14, "{writes} writes checked");
    assert_eq!(worker_ops, 8, "every worker endpoint was checked");
    let (s, _) = call(&a.app, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Operators cannot manage pools or tokens; admins can.
    let (s, _) = call(
        &a.app,
        "POST",
        "/api/v2/pools",
        Some(&a.operator),
        Some(json!({"name": "p", "slots": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&a.app, "GET", "/api/v2/tokens", Some(&a.operator), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Wrong passwords, tampered, expired and foreign tokens are refused.
    let (s, _) = call(
        &a.app,
        "POST",
        "/auth/token",
        None,
        Some(json!({"username": "ada", "password": "wrong"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &a.app,
        "POST",
        "/auth/token",
        None,
        Some(json!({"username": "nobody", "password": "wrong"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut tampered = a.viewer.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let mut forged = a.viewer.split('.').collect::<Vec<_>>();
    let admin_claims = a.admin.split('.').nth(1).unwrap().to_owned();
    forged[1] = &admin_claims;
    let forged = forged.join(".");
    let secret = db
        .store
        .setting_or_insert("jwt_secret", "unused")
        .await
        .unwrap();
    let jwt = weir_api::auth::jwt::Jwt::new(secret.as_bytes());
    let now = chrono::Utc::now();
    let expired = jwt
        .issue(
            "ada",
            now - chrono::Duration::hours(2),
            now - chrono::Duration::hours(1),
        )
        .unwrap();
    let foreign = weir_api::auth::jwt::Jwt::new(b"some other site's secret")
        .issue("ada", now, now + chrono::Duration::hours(1))
        .unwrap();
    for bad in [
        tampered.as_str(),
        forged.as_str(),
        expired.as_str(),
        foreign.as_str(),
        "garbage",
        "weir_00_00",
    ] {
        let (s, b) = call(&a.app, "GET", "/api/v2/dags", Some(bad), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}: {b}");
    }

    // A deleted user's token stops working at once.
    db.store.delete_user("vera").await.unwrap();
    let (s, _) = call(&a.app, "GET", "/api/v2/dags", Some(&a.viewer), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let expired_token = tokens::generate(
        Role::Admin,
        None,
        "ada",
        Some(now - chrono::Duration::seconds(1)),
        now,
    )
    .unwrap();
    db.store.create_token(&expired_token.record).await.unwrap();
    let (s, _) = call(
        &a.app,
        "GET",
        "/api/v2/dags",
        Some(&expired_token.token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

both_backends!(datasets_lineage_and_quality, datasets_case);
async fn datasets_case(db: &TestDb) {
    use weir_core::store::{CheckResultRecord, NewDatasetVersion, NewQuality, NewValidation};
    let a = api(db).await;
    let now = chrono::Utc::now();
    let write = |name: &str, inputs: Vec<i64>| NewDatasetVersion {
        dataset: name.into(),
        producer: Some(try_ref("t")),
        rows: Some(10),
        schema: Some(r#"[{"name":"id","type":"Int64","nullable":false}]"#.into()),
        inputs,
        ..Default::default()
    };
    let raw = db
        .store
        .record_dataset_version(&write("raw.x", vec![]), now)
        .await
        .unwrap();
    let clean = db
        .store
        .record_validation(
            &NewValidation {
                quality: NewQuality {
                    producer: try_ref("check"),
                    dataset: "raw.x".into(),
                    input_version: Some(raw.id),
                    rows_in: 12,
                    rows_clean: 10,
                    rows_quarantined: 2,
                    checks: vec![CheckResultRecord {
                        name: "required".into(),
                        kind: weir_core::dag::contract::CheckResultKind::Required,
                        column_name: Some("id".into()),
                        passed: false,
                        failed: 2,
                        observed: None,
                        threshold: None,
                        severity: weir_core::dag::contract::Severity::Error,
                    }],
                },
                quarantine: None,
                clean: Some(NewDatasetVersion {
                    delta_version: Some(4),
                    ..write("clean.x", vec![raw.id])
                }),
            },
            now,
        )
        .await
        .unwrap()
        .clean
        .unwrap();
    db.store
        .record_dataset_version(&write("curated.y", vec![clean.id]), now)
        .await
        .unwrap();
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "r1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let list = a.get("/api/v2/datasets").await;
    assert_eq!(list["total_entries"], 3);
    assert_eq!(list["datasets"][0]["dataset"], "clean.x");
    let detail = a.get("/api/v2/datasets/clean.x").await;
    assert_eq!(detail["versions"][0]["delta_version"], 4, "{detail}");
    let raw_detail = a.get("/api/v2/datasets/raw.x").await;
    assert_eq!(raw_detail["versions"][0]["delta_version"], json!(null));
    assert_eq!(
        detail["upstream"],
        json!([{"dataset": "raw.x", "version": 1, "checked": true}])
    );
    // Raw data read by anything but validate is marked in the lineage.
    db.store
        .record_dataset_version(&write("curated.peek", vec![raw.id]), now)
        .await
        .unwrap();
    let peek = a.get("/api/v2/datasets/curated.peek").await;
    assert_eq!(
        peek["upstream"],
        json!([{"dataset": "raw.x", "version": 1, "checked": false}])
    );
    assert_eq!(
        detail["downstream"],
        json!([{"dataset": "curated.y", "version": 1}])
    );
    assert_eq!(detail["schema"][0]["name"], "id");
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/datasets/clean.nothing",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let quality = a.get("/api/v2/dags/demo/dagRuns/r1/quality").await;
    assert_eq!(quality["results"][0]["reconciled"], true);
    assert_eq!(quality["results"][0]["checks"][0]["failed"], 2);
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/dags/demo/dagRuns/nope/quality",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Try 1 of `task` in run `r1` of `demo`.
fn try_ref(task: &str) -> weir_core::store::TryRef {
    weir_core::store::TryRef {
        dag_id: "demo".into(),
        run_id: "r1".into(),
        task_id: task.into(),
        try_number: 1,
    }
}

both_backends!(
    remote_workers_speak_http_under_their_leases,
    remote_worker_case
);
async fn remote_worker_case(db: &TestDb) {
    let a = api(db).await;
    let now = chrono::Utc::now();
    let token = tokens::generate(Role::Worker, None, "ada", None, now).unwrap();
    db.store.create_token(&token.record).await.unwrap();
    let w = |path: &str, body: Value| {
        let app = a.app.clone();
        let (path, secret) = (format!("/api/worker/v1/{path}"), token.token.clone());
        async move { call(&app, "POST", &path, Some(&secret), Some(body)).await }
    };
    let register = |protocol: u32, queues: Value| {
        json!({"name": "w1@h:1", "hostname": "h", "pid": 1, "process_token": "", "version": "9.9.9",
               "protocol": protocol, "queues": queues, "slots": 2})
    };
    // Another protocol version, and bad queues, are refused with the reason.
    let (s, b) = w("register", register(99, json!(["default"]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("speaks worker protocol 1"),
        "{b}"
    );
    let (s, b) = w("register", register(1, json!(["a b"]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = w("register", json!({"name": "x", "surprise": 1})).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown and missing fields: {b}"
    );
    let (s, reg) = w("register", register(1, json!(["default"]))).await;
    assert_eq!(s, StatusCode::OK, "{reg}");
    assert_eq!(reg["lease_seconds"], 30.0);
    assert!(!reg["catalog_id"].as_str().unwrap().is_empty());

    // Nothing queued: the claim waits, then answers with no tries.
    let (s, none) = w(
        "claim",
        json!({"worker": "w1@h:1", "queues": ["default"], "free_slots": 2, "wait_seconds": 0.2}),
    )
    .await;
    assert_eq!(
        (s, none["tries"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );

    let (s, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "r1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, got) = w(
        "claim",
        json!({"worker": "w1@h:1", "queues": ["default"], "free_slots": 2, "wait_seconds": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let t = got["tries"][0].clone();
    assert_eq!(t["task_id"], "extract");
    let lease = json!({"dag_id": "demo", "run_id": "r1", "task_id": "extract", "ti_id": t["ti_id"],
                       "try_number": 1, "lease_id": t["lease_id"]});
    let (s, v) = call(
        &a.app,
        "GET",
        &format!("/api/worker/v1/versions/{}", t["version_id"]),
        Some(&token.token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["definition"].as_str().unwrap().contains("extract"));

    // Log pieces are kept by offset; any server reads them back.
    let piece = |offset: u64, data: &str| json!({"lease": lease, "offset": offset, "data": data});
    let (s, ack) = w("logs", piece(0, "hello from far away\n")).await;
    assert_eq!((s, ack["next_offset"].as_u64()), (StatusCode::OK, Some(20)));
    let (_, ack) = w("logs", piece(0, "hello from far away\n")).await;
    assert_eq!(
        ack["next_offset"].as_u64(),
        Some(20),
        "a piece sent again adds nothing"
    );
    let log = a
        .get("/api/v2/dags/demo/dagRuns/r1/taskInstances/extract/logs/1")
        .await;
    assert_eq!(log["content"][0]["event"], "hello from far away");

    // A report under another lease is refused (409); the right one is
    // recorded, once, and brings the next try for the freed slot.
    let mut forged = lease.clone();
    forged["lease_id"] = json!("nope");
    let report = |lease: &Value| {
        json!({"worker": "w1@h:1", "lease": lease, "outcome": "success", "exit_code": 0,
                                        "claim_next": ["default"]})
    };
    let (s, b) = w("report", report(&forged)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("kill it"), "{b}");
    let mut too_big = report(&lease);
    too_big["output"] = json!("x".repeat(70_000));
    let (s, b) = w("report", too_big).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("limited to 65536 bytes"),
        "{b}"
    );
    // The report carries the try's output; the next try, whose command
    // reads it, is handed it with its claim.
    let mut with_output = report(&lease);
    with_output["output"] = json!({"rows": 5});
    let (s, r) = w("report", with_output).await;
    assert_eq!((s, &r["recorded"]), (StatusCode::OK, &json!(true)), "{r}");
    assert_eq!(r["next"]["task_id"], "publish");
    assert_eq!(r["next"]["outputs"], json!({"extract": {"rows": 5}}), "{r}");
    let (s, again) = w("report", report(&lease)).await;
    assert_eq!(
        (s, &again["recorded"]),
        (StatusCode::OK, &json!(false)),
        "{again}"
    );

    // The workers view shows the remote worker and what it runs.
    let view = a.get("/api/v2/workers").await;
    let me = view["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "w1@h:1")
        .unwrap()
        .clone();
    assert_eq!(
        (
            me["state"].as_str(),
            me["remote"].as_bool(),
            me["running"].as_i64()
        ),
        (Some("active"), Some(true), Some(1))
    );
    assert_eq!(me["queues"], json!(["default"]));

    // An admin asks it to drain; its next heartbeat says so, and it claims nothing more.
    let (s, _) = call(
        &a.app,
        "POST",
        "/api/v2/workers/w1@h:1/drain",
        Some(&a.admin),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, beat) = w("heartbeat", json!({"worker": "w1@h:1", "tries": []})).await;
    assert_eq!(beat["drain"], true);
    let (s, b) = w("stop", json!({"worker": "w1@h:1"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
}

both_backends!(clearing_reaches_earlier_and_later_runs, clear_range_case);
async fn clear_range_case(db: &TestDb) {
    let a = api(db).await;
    a.failed_demo_runs("03", &[("a", "01"), ("b", "02"), ("c", "03")])
        .await;
    let runs_of = |body: &Value| -> Vec<String> {
        let mut r: Vec<String> = body["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["dag_run_id"].as_str().unwrap().to_owned())
            .collect();
        r.sort();
        r
    };
    for (extra, want) in [
        (json!({}), vec!["b"]),
        (json!({"include_past": true}), vec!["a", "b"]),
        (json!({"include_future": true}), vec!["b", "c"]),
        (
            json!({"include_past": true, "include_future": true}),
            vec!["a", "b", "c"],
        ),
    ] {
        let mut body = json!({"dag_run_id": "b", "task_ids": ["publish"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, preview) = a
            .send("POST", "/api/v2/dags/demo/clearTaskInstances", body.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}: {preview}");
        assert_eq!(runs_of(&preview), want, "{body}");
    }
    let (_, cleared) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dag_run_id": "b", "task_ids": ["publish"], "include_future": true, "dry_run": false}),
        )
        .await;
    assert_eq!(runs_of(&cleared), ["b", "c"], "{cleared}");
    for (run, state) in [("a", "failed"), ("b", "running"), ("c", "running")] {
        assert_eq!(
            a.get(&format!("/api/v2/dags/demo/dagRuns/{run}")).await["state"],
            state,
            "run {run}"
        );
    }

    // A running try is never cleared: asking to is refused, naming it.
    a.sched.dispatch().await.unwrap();
    let claimed = a
        .sched
        .claim("test-worker", "localhost", 100, None)
        .await
        .unwrap();
    assert!(!claimed.is_empty());
    let (status, err) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dag_run_id": "b", "only_failed": false, "dry_run": false}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("`publish` of run `b` is running"),
        "{err}"
    );
}

both_backends!(dag_stats_and_sources, dag_stats_case);
async fn dag_stats_case(db: &TestDb) {
    let a = api(db).await;
    for run in ["s1", "s2"] {
        let (status, body) = a
            .send(
                "POST",
                "/api/v2/dags/demo/dagRuns",
                json!({"dag_run_id": run}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    a.drive(&["publish"]).await;
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "s3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let counts = |dag: &Value| -> Vec<(String, i64)> {
        dag["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["state"].as_str().unwrap().to_owned(),
                    s["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let stats = a.get("/api/v2/dagStats?dag_ids=demo").await;
    assert_eq!(stats["total_entries"], 1, "{stats}");
    assert_eq!(stats["dags"][0]["dag_id"], "demo");
    let s3 = a.get("/api/v2/dags/demo/dagRuns/s3").await["state"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut want = vec![
        ("queued".to_owned(), 0),
        ("running".to_owned(), 0),
        ("success".to_owned(), 0),
        ("failed".to_owned(), 2),
    ];
    if let Some(w) = want.iter_mut().find(|(s, _)| *s == s3) {
        w.1 += 1;
    }
    assert_eq!(counts(&stats["dags"][0]), want, "{stats}");
    let all = a.get("/api/v2/dagStats").await;
    let ids: Vec<&str> = all["dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo", "nightly"], "{all}");
    assert!(
        counts(&all["dags"][1]).iter().all(|(_, n)| *n == 0),
        "{all}"
    );
    let (status, err) = call(
        &a.app,
        "GET",
        "/api/v2/dagStats?dag_ids=demo&dag_ids=nope",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("nope"), "{err}");

    // The DAG file's text as the version read it.
    let source = a.get("/api/v2/dagSources/demo").await;
    assert_eq!(
        (
            source["content"].as_str(),
            source["version_number"].as_i64()
        ),
        (Some(DEMO), Some(1)),
        "{source}"
    );
    assert_eq!(
        a.get("/api/v2/dagSources/demo?version_number=1").await["content"],
        DEMO
    );
    let (status, err) = call(
        &a.app,
        "GET",
        "/api/v2/dagSources/demo?version_number=7",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
}

both_backends!(event_logs_in_airflows_shape, event_logs_case);
async fn event_logs_case(db: &TestDb) {
    let a = api(db).await;
    for run in ["e1", "e2"] {
        let (status, _) = a
            .send(
                "POST",
                "/api/v2/dags/demo/dagRuns",
                json!({"dag_run_id": run}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = a
        .send("PATCH", "/api/v2/dags/nightly", json!({"is_paused": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = |body: &Value| -> Vec<(String, String)> {
        body["event_logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["run_id"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect()
    };
    let all = a.get("/api/v2/eventLogs").await;
    assert_eq!(
        events(&all),
        [
            ("trigger".to_owned(), "e1".to_owned()),
            ("trigger".to_owned(), "e2".to_owned()),
            ("unpause".to_owned(), "-".to_owned())
        ],
        "oldest first, as in Airflow: {all}"
    );
    assert_eq!(all["total_entries"], 3);
    let first = &all["event_logs"][0];
    assert_eq!(
        (
            first["owner"].as_str(),
            first["dag_id"].as_str(),
            first["dag_display_name"].as_str()
        ),
        (Some("otto"), Some("demo"), Some("demo")),
        "{first}"
    );
    let newest = a.get("/api/v2/eventLogs?order_by=-when&limit=1").await;
    assert_eq!(events(&newest), [("unpause".to_owned(), "-".to_owned())]);
    assert_eq!(newest["total_entries"], 3);
    let demo = a
        .get("/api/v2/eventLogs?dag_id=demo&run_id=e2&event=trigger&owner=otto")
        .await;
    assert_eq!(
        events(&demo),
        [("trigger".to_owned(), "e2".to_owned())],
        "{demo}"
    );
    let after = first["when"].as_str().unwrap().replace('+', "%2B");
    let later = a.get(&format!("/api/v2/eventLogs?after={after}")).await;
    assert!(
        events(&later).iter().all(|(_, run)| run != "e1"),
        "strictly after the first: {later}"
    );
    let id = first["event_log_id"].as_i64().unwrap();
    let one = a.get(&format!("/api/v2/eventLogs/{id}")).await;
    assert_eq!(one["run_id"], "e1", "{one}");
    for (path, names) in [
        ("/api/v2/eventLogs?event=explode", "explode"),
        ("/api/v2/eventLogs?try_number=1", "try_number"),
        (
            "/api/v2/eventLogs?included_events=trigger",
            "included_events",
        ),
        ("/api/v2/eventLogs?order_by=owner", "order_by"),
    ] {
        let (status, err) = call(&a.app, "GET", path, Some(&a.viewer), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {err}");
        assert!(
            err["detail"].as_str().unwrap().contains(names),
            "{path}: {err}"
        );
    }
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/eventLogs/999999",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(patching_task_instances, patch_ti_case);
async fn patch_ti_case(db: &TestDb) {
    let a = api(db).await;
    a.failed_demo_runs("04", &[("p1", "01"), ("p2", "02"), ("p3", "03")])
        .await;
    let changed = |body: &Value| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = body["task_instances"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|t| {
                (
                    t["dag_run_id"].as_str().unwrap().to_owned(),
                    t["task_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let pair = |r: &str, t: &str| (r.to_owned(), t.to_owned());
    let ti = "/api/v2/dags/demo/dagRuns/p2/taskInstances/publish";
    // A dry run says what would change and changes nothing.
    let (status, preview) = a
        .send(
            "PATCH",
            &format!("{ti}/dry_run"),
            json!({"new_state": "success", "include_future": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        changed(&preview),
        [pair("p2", "publish"), pair("p3", "publish")]
    );
    assert_eq!(a.get(ti).await["state"], "failed");
    // The task and the same task in later runs; the runs follow.
    let (status, done) = a
        .send(
            "PATCH",
            ti,
            json!({"new_state": "success", "include_future": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        changed(&done),
        [pair("p2", "publish"), pair("p3", "publish")]
    );
    for (run, want) in [("p1", "failed"), ("p2", "success"), ("p3", "success")] {
        assert_eq!(
            a.get(&format!("/api/v2/dags/demo/dagRuns/{run}")).await["state"],
            want,
            "run {run}"
        );
    }
    // Upstream too; a task already in the state is left alone.
    let (status, done) = a
        .send(
            "PATCH",
            "/api/v2/dags/demo/dagRuns/p3/taskInstances/publish?update_mask=new_state",
            json!({"new_state": "failed", "include_upstream": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        changed(&done),
        [pair("p3", "extract"), pair("p3", "publish")]
    );
    let (_, again) = a
        .send(
            "PATCH",
            "/api/v2/dags/demo/dagRuns/p3/taskInstances/extract",
            json!({"new_state": "failed"}),
        )
        .await;
    assert_eq!(
        changed(&again),
        Vec::<(String, String)>::new(),
        "already failed"
    );
    // What weir cannot do is refused, naming why.
    for (path, body, names) in [
        (ti.to_owned(), json!({"new_state": "skipped"}), "skipped"),
        (
            ti.to_owned(),
            json!({"new_state": "success", "note": "why"}),
            "note",
        ),
        (
            ti.to_owned(),
            json!({"new_state": "success", "bogus": true}),
            "bogus",
        ),
        (ti.to_owned(), json!({}), "new_state"),
        (
            format!("{ti}?update_mask=note"),
            json!({"new_state": "success"}),
            "update_mask",
        ),
    ] {
        a.refused("PATCH", &path, body, names).await;
    }
    // A task that did not expand has no mapped instance 2.
    let (status, body) = a
        .send(
            "PATCH",
            &format!("{ti}?map_index=2"),
            json!({"new_state": "success"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("map index 2"),
        "{body}"
    );
    let (status, _) = a
        .send(
            "PATCH",
            "/api/v2/dags/demo/dagRuns/p2/taskInstances/nope",
            json!({"new_state": "success"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let marks = a
        .get("/api/v2/eventLogs?dag_id=demo&event=mark_success")
        .await;
    assert_eq!(marks["total_entries"], 2, "{marks}");
}

both_backends!(listing_runs_with_a_body, runs_batch_case);
async fn runs_batch_case(db: &TestDb) {
    let a = api(db).await;
    a.failed_demo_runs("05", &[("b1", "01"), ("b2", "02"), ("b3", "03")])
        .await;
    let list = |body: Value| {
        let a = &a;
        async move {
            let (status, answer) = a
                .send("POST", "/api/v2/dags/~/dagRuns/list", body.clone())
                .await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            let ids: Vec<String> = answer["dag_runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["dag_run_id"].as_str().unwrap().to_owned())
                .collect();
            (ids, answer["total_entries"].as_i64().unwrap())
        }
    };
    assert_eq!(
        list(json!({})).await,
        (vec!["b1".into(), "b2".into(), "b3".into()], 3)
    );
    assert_eq!(
        list(json!({"dag_ids": ["demo", "nightly"], "order_by": "-logical_date", "page_limit": 2}))
            .await,
        (vec!["b3".into(), "b2".into()], 3)
    );
    assert_eq!(list(json!({"dag_ids": ["nightly"]})).await, (vec![], 0));
    assert_eq!(
        list(json!({"logical_date_gt": "2026-05-01T00:00:00Z", "logical_date_lt": "2026-05-03T00:00:00Z"})).await,
        (vec!["b2".into()], 1),
        "_gt and _lt leave out their ends"
    );
    assert_eq!(
        list(json!({"logical_date_gte": "2026-05-02T00:00:00Z", "states": ["failed"], "page_offset": 1})).await,
        (vec!["b3".into()], 2)
    );
    let (status, demo) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns/list",
            json!({"states": ["success"]}),
        )
        .await;
    assert_eq!(
        (status, &demo["total_entries"]),
        (StatusCode::OK, &json!(0)),
        "{demo}"
    );
    for (path, body, names) in [
        (
            "/api/v2/dags/~/dagRuns/list",
            json!({"duration_gt": -1.0}),
            "duration_gt",
        ),
        ("/api/v2/dags/~/dagRuns/list", json!({"bogus": 1}), "bogus"),
        (
            "/api/v2/dags/~/dagRuns/list",
            json!({"states": ["exploded"]}),
            "exploded",
        ),
        (
            "/api/v2/dags/~/dagRuns/list",
            json!({"page_limit": 5000}),
            "limit",
        ),
        (
            "/api/v2/dags/demo/dagRuns/list",
            json!({"dag_ids": ["demo"]}),
            "dag_ids",
        ),
    ] {
        a.refused("POST", path, body, names).await;
    }
    let (status, _) = a
        .send("POST", "/api/v2/dags/nope/dagRuns/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The GET list takes the strict bounds and a run-id pattern too.
    let got = |query: &'static str| {
        let a = &a;
        async move {
            let body = a.get(&format!("/api/v2/dags/~/dagRuns?{query}")).await;
            body["dag_runs"]
                .as_array()
                .unwrap_or_else(|| panic!("{query}: {body}"))
                .iter()
                .map(|r| r["dag_run_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        got("logical_date_gt=2026-05-01T00:00:00Z&logical_date_lt=2026-05-03T00:00:00Z").await,
        ["b2"]
    );
    assert_eq!(
        got("run_id_pattern=B%253").await,
        ["b3"],
        "case-insensitive, % wildcard"
    );
    assert_eq!(
        got("run_id_pattern=b&order_by=-run_id").await,
        ["b3", "b2", "b1"]
    );
    let (status, err) = call(
        &a.app,
        "GET",
        "/api/v2/dags/~/dagRuns?order_by=run_id&order_by=state",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["detail"].as_str().unwrap().contains("order_by"),
        "{err}"
    );
    // Durations count only ended runs; conf is searched as text.
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "b4", "conf": {"Region": "EU"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (body, want) in [
        (json!({"duration_gte": 0}), 3),
        (json!({"duration_lt": 3600}), 3),
        (json!({"duration_gt": 3600}), 0),
        (json!({"conf_contains": "REGION"}), 1),
        (json!({"conf_contains": "asia"}), 0),
    ] {
        assert_eq!(list(body.clone()).await.1, want, "{body}");
    }
    let runs = a
        .get("/api/v2/dags/~/dagRuns?duration_lte=3600&conf_contains=")
        .await;
    assert_eq!(runs["total_entries"], 3, "{runs}");
    let runs = a.get("/api/v2/dags/demo/dagRuns?conf_contains=EU").await;
    assert_eq!(runs["dag_runs"][0]["dag_run_id"], "b4", "{runs}");
    // Runs are history: deleting one is refused with what to do instead.
    let (status, err) = call(
        &a.app,
        "DELETE",
        "/api/v2/dags/demo/dagRuns/b1",
        Some(&a.operator),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("PATCH"), "{err}");
    let (status, _) = call(
        &a.app,
        "DELETE",
        "/api/v2/dags/demo/dagRuns/nope",
        Some(&a.operator),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.get("/api/v2/dags/demo/dagRuns/b1").await["dag_run_id"],
        "b1",
        "still there"
    );
}

const FEEDS: &str = r#"
dag: feeds
schedule: {datasets: [raw.vendor_feed]}
tasks:
  load:
    kind: extract
    source: {format: csv, path: "in/*.csv"}
    output: raw.orders
  check:
    kind: validate
    input: raw.orders
    contract: {columns: {id: {type: int64}}}
    output: clean.orders
"#;

both_backends!(datasets_as_assets_and_updates_from_outside, assets_case);
async fn assets_case(db: &TestDb) {
    let a = api(db).await;
    std::fs::write(a._dags.path().join("feeds.yaml"), FEEDS).unwrap();
    a.sched.sync_folder(a._dags.path()).await.unwrap();
    let all = a.get("/api/v2/assets?order_by=name").await;
    let names: Vec<&str> = all["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "clean.orders",
            "quarantine.orders",
            "raw.orders",
            "raw.vendor_feed"
        ],
        "{all}"
    );
    let by_name = |n: &str| {
        all["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()
            .clone()
    };
    let orders = by_name("raw.orders");
    assert_eq!(
        (orders["group"].as_str(), orders["uri"].as_str()),
        (Some("raw"), Some("raw.orders"))
    );
    assert_eq!(orders["producing_tasks"][0]["task_id"], "load", "{orders}");
    assert_eq!(orders["consuming_tasks"][0]["task_id"], "check", "{orders}");
    assert_eq!(
        (orders["aliases"].clone(), orders["watchers"].clone()),
        (json!([]), json!([]))
    );
    let feed = by_name("raw.vendor_feed");
    assert_eq!(feed["scheduled_dags"][0]["dag_id"], "feeds", "{feed}");
    assert_eq!(feed["last_asset_event"], Value::Null, "never updated yet");
    let feed_id = feed["id"].as_i64().unwrap();
    assert_eq!(
        a.get(&format!("/api/v2/assets/{feed_id}")).await["name"],
        "raw.vendor_feed"
    );
    for (q, want) in [
        ("name_pattern=VENDOR", 1),
        ("uri_pattern=orders", 3),
        ("dag_ids=demo", 0),
        ("dag_ids=feeds", 4),
        ("limit=1", 4),
    ] {
        assert_eq!(
            a.get(&format!("/api/v2/assets?{q}")).await["total_entries"],
            want,
            "{q}"
        );
    }
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/assets/999999",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An update from outside: recorded, audited, and the DAG scheduled on it runs.
    let (status, ev) = a
        .send(
            "POST",
            "/api/v2/assets/events",
            json!({"asset_id": feed_id, "extra": {"file": "feed.csv"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ev}");
    assert_eq!(
        (ev["asset_id"].as_i64(), ev["name"].as_str()),
        (Some(feed_id), Some("raw.vendor_feed"))
    );
    assert_eq!(
        (ev["extra"].clone(), ev["source_map_index"].clone()),
        (json!({"file": "feed.csv"}), json!(-1))
    );
    let runs = a.get("/api/v2/dags/feeds/dagRuns").await;
    assert_eq!(runs["total_entries"], 1, "{runs}");
    assert_eq!(runs["dag_runs"][0]["run_type"], "asset_triggered", "{runs}");
    let feed = a.get(&format!("/api/v2/assets/{feed_id}")).await;
    assert_eq!(feed["last_asset_event"]["id"], ev["id"], "{feed}");
    let events = a.get("/api/v2/assets/events").await;
    assert_eq!(events["total_entries"], 1);
    assert_eq!(events["asset_events"][0]["id"], ev["id"]);
    let other = by_name("clean.orders")["id"].as_i64().unwrap();
    assert_eq!(
        a.get(&format!("/api/v2/assets/events?asset_id={other}"))
            .await["total_entries"],
        0
    );
    assert!(
        a.get("/api/v2/auditLog")
            .await
            .to_string()
            .contains("asset_event")
    );

    for (body, what) in [
        (
            json!({"asset_id": feed_id, "partition_key": "2026-01"}),
            "no partitions",
        ),
        (
            json!({"asset_id": feed_id, "extra": [1]}),
            "extra must be a JSON object",
        ),
        (json!({"asset_id": feed_id, "surprise": true}), "surprise"),
    ] {
        a.refused("POST", "/api/v2/assets/events", body, what).await;
    }
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/assets/events",
            json!({"asset_id": 999_999}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &a.app,
        "POST",
        "/api/v2/assets/events",
        Some(&a.viewer),
        Some(json!({"asset_id": feed_id})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewers read only");
}

both_backends!(a_runs_notifications, notifications_case);
async fn notifications_case(db: &TestDb) {
    let a = api(db).await;
    let dag = "dag: alerts\nnotify:\n  - on: [failure]\n    webhook: http://127.0.0.1:9/x\ntasks:\n  a: {kind: shell, retries: 0, command: 'exit 1', notify: [{on: [failure], command: 'true'}]}\n";
    std::fs::write(a._dags.path().join("alerts.yaml"), dag).unwrap();
    a.sched.sync_folder(a._dags.path()).await.unwrap();
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/alerts/dagRuns",
            json!({"dag_run_id": "r"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    a.drive(&["a"]).await;
    let got = a.get("/api/v2/dags/alerts/dagRuns/r/notifications").await;
    assert_eq!(got["total_entries"], 2, "{got}");
    let rows = got["notifications"].as_array().unwrap();
    let mut seen: Vec<(String, String, Value)> = rows
        .iter()
        .map(|n| {
            (
                n["event"].as_str().unwrap().to_owned(),
                n["rule"].as_str().unwrap().to_owned(),
                n["task_id"].clone(),
            )
        })
        .collect();
    seen.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        seen,
        [
            ("failure".to_owned(), "dag:0".to_owned(), Value::Null),
            ("failure".to_owned(), "task:0".to_owned(), json!("a")),
        ]
    );
    assert!(
        rows.iter()
            .all(|n| n["state"] == "pending" && n["attempts"] == 0),
        "nothing delivers here: {got}"
    );
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/dags/alerts/dagRuns/nope/notifications",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(connections_in_airflows_shape, connections_case);
async fn connections_case(db: &TestDb) {
    use weir_core::secret_key::{KeyError, KeySource, SecretKey};
    let a = api(db).await;
    let body = json!({"connection_id": "warehouse", "conn_type": "postgres", "host": "db.local",
                      "port": 5432, "login": "etl", "schema": "wh", "password": "hunter2-pw",
                      "extra": "{\"sslmode\": \"require\", \"api_key\": \"k-123\"}",
                      "description": "the warehouse"});
    let (status, made) = a.send("POST", "/api/v2/connections", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["password"], "***");
    assert_eq!(made["extra"], r#"{"api_key":"***","sslmode":"require"}"#);
    assert_eq!(
        (made["host"].as_str(), made["port"].as_i64()),
        (Some("db.local"), Some(5432))
    );
    assert_eq!(made["team_name"], Value::Null);
    // At rest: sealed, not the password; opened with the key.
    let row = db.store.get_connection("warehouse").await.unwrap().unwrap();
    let sealed = row.password.clone().unwrap();
    assert!(
        sealed.starts_with("v1:") && !sealed.contains("hunter2"),
        "{sealed}"
    );
    assert!(!row.extra.clone().unwrap().contains("k-123"));
    let opened = a.sched.get_connection("warehouse").await.unwrap();
    assert_eq!(opened.password.as_deref(), Some("hunter2-pw"));
    assert_eq!(
        opened.url(),
        "postgres://etl:hunter2-pw@db.local:5432/wh?api_key=k-123&sslmode=require"
    );
    // Without the key, or with another, nothing opens.
    for (source, want) in [
        (KeySource::None, "no secret key"),
        (
            KeySource::Value(SecretKey::generate().unwrap().encode()),
            "cannot be read with this secret key",
        ),
    ] {
        let other = Scheduler::new(
            db.store.clone(),
            Arc::new(SystemClock),
            Options {
                secret_key: source,
                ..Options::default()
            },
        );
        let e = other.get_connection("warehouse").await.unwrap_err();
        assert!(
            matches!(
                e,
                weir_core::scheduler::Error::Key(KeyError::Missing | KeyError::Wrong(_))
            ),
            "{e}"
        );
        assert!(e.to_string().contains(want), "{e}");
    }

    let (status, _) = a
        .send(
            "POST",
            "/api/v2/connections",
            json!({"connection_id": "lite", "conn_type": "sqlite", "host": "/tmp/x.db"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let list = a.get("/api/v2/connections?order_by=-conn_type").await;
    assert_eq!(list["total_entries"], 2);
    assert_eq!(list["connections"][0]["connection_id"], "lite", "{list}");
    assert_eq!(list["connections"][1]["password"], "***");
    let found = a
        .get("/api/v2/connections?connection_id_pattern=WARE")
        .await;
    assert_eq!(found["total_entries"], 1);
    let one = a.get("/api/v2/connections/lite").await;
    assert_eq!(
        (one["password"].clone(), one["extra"].clone()),
        (Value::Null, Value::Null)
    );

    // Refusals name what is wrong.
    let (status, dup) = a.send("POST", "/api/v2/connections", body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    assert!(
        dup["detail"].as_str().unwrap().contains("already exists"),
        "{dup}"
    );
    for (change, what) in [
        (json!({"connection_id": "has space"}), "connection id"),
        (json!({"port": 70000}), "port 70000"),
        (json!({"extra": "[1, 2]"}), "extra must be a JSON object"),
        (json!({"password": "***"}), "not a password"),
        (json!({"conn_type": "post gres"}), "conn_type"),
        (json!({"surprise": 1}), "surprise"),
    ] {
        let mut b = body.clone();
        b["connection_id"] = json!("other");
        for (k, v) in change.as_object().unwrap() {
            b[k] = v.clone();
        }
        a.refused("POST", "/api/v2/connections", b, what).await;
    }
    let (status, _) = call(
        &a.app,
        "POST",
        "/api/v2/connections",
        Some(&a.viewer),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewers read only");

    // A patch with the masked values as answered keeps the secrets.
    let mut patch = made.clone();
    patch["host"] = json!("db2.local");
    patch["extra"] = json!(r#"{"api_key": "***", "sslmode": "disable"}"#);
    let (status, patched) = a
        .send("PATCH", "/api/v2/connections/warehouse", patch.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let opened = a.sched.get_connection("warehouse").await.unwrap();
    assert_eq!(opened.password.as_deref(), Some("hunter2-pw"));
    assert_eq!(opened.host.as_deref(), Some("db2.local"));
    assert_eq!(
        opened.extra.as_deref(),
        Some(r#"{"api_key":"k-123","sslmode":"disable"}"#)
    );
    let mut only = patch.clone();
    only["description"] = json!("changed");
    only["host"] = json!("ignored.local");
    let (status, patched) = a
        .send(
            "PATCH",
            "/api/v2/connections/warehouse?update_mask=description",
            only,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["description"].as_str(), patched["host"].as_str()),
        (Some("changed"), Some("db2.local"))
    );
    let (status, _) = a
        .send("PATCH", "/api/v2/connections/lite", patch.clone())
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the body's id must be the path's"
    );

    // Audited by id, never with a secret.
    let audit = a.get("/api/v2/auditLog").await;
    let text = audit.to_string();
    assert!(
        text.contains("set_connection") && text.contains("warehouse"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("k-123"),
        "{text}"
    );

    let (status, _) = a
        .send("DELETE", "/api/v2/connections/lite", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/connections/lite",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        a.get("/api/v2/auditLog")
            .await
            .to_string()
            .contains("delete_connection")
    );
}

both_backends!(task_outputs_as_xcom_entries, xcom_case);
async fn xcom_case(db: &TestDb) {
    let a = api(db).await;
    a.failed_demo_runs("03", &[("r1", "01"), ("r2", "02")])
        .await;
    let base = "/api/v2/dags/demo/dagRuns/r1/taskInstances";
    let list = a.get(&format!("{base}/~/xcomEntries")).await;
    assert_eq!(list["total_entries"], 1, "only extract published: {list}");
    let entry = &list["xcom_entries"][0];
    for (field, want) in [
        ("key", json!("return_value")),
        ("task_id", json!("extract")),
        ("task_display_name", json!("extract")),
        ("dag_id", json!("demo")),
        ("dag_display_name", json!("demo")),
        ("run_id", json!("r1")),
        ("map_index", json!(-1)),
        ("logical_date", json!("2026-03-01T00:00:00Z")),
    ] {
        assert_eq!(entry[field], want, "{field}: {entry}");
    }
    assert!(entry["timestamp"].is_string() && entry["run_after"].is_string());
    assert!(
        entry.get("value").is_none(),
        "lists carry no values: {entry}"
    );

    // Filters: across runs, by key, map index, patterns and dates.
    for (q, want) in [
        ("", 2),
        ("xcom_key=return_value", 2),
        ("xcom_key=rows", 0),
        ("xcom_key_pattern=RETURN", 2),
        ("xcom_key_pattern=nope%7Cval", 2),
        ("xcom_key_prefix_pattern=value", 0),
        ("map_index=-1", 2),
        ("map_index=0", 0),
        ("task_id_pattern=XTR", 2),
        ("task_id_pattern=pub", 0),
        ("run_id_pattern=r2", 1),
        ("logical_date_gte=2026-03-02T00:00:00Z", 1),
        ("limit=1", 2),
    ] {
        let path = format!("/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries?{q}");
        assert_eq!(a.get(&path).await["total_entries"], want, "{q}");
    }
    let desc = a
        .get("/api/v2/dags/demo/dagRuns/~/taskInstances/extract/xcomEntries?order_by=-run_id")
        .await;
    assert_eq!(desc["xcom_entries"][0]["run_id"], "r2", "{desc}");

    // One entry with its value, as JSON or as its text.
    let got = a
        .get(&format!("{base}/extract/xcomEntries/return_value"))
        .await;
    assert_eq!(got["value"], json!({"rows": 1, "task": "extract"}), "{got}");
    assert_eq!(got["key"], "return_value");
    let text = a
        .get(&format!(
            "{base}/extract/xcomEntries/return_value?stringify=true&deserialize=true"
        ))
        .await;
    assert_eq!(text["value"], r#"{"rows":1,"task":"extract"}"#);
    for (path, why) in [
        (
            format!("{base}/publish/xcomEntries/return_value"),
            "published no output",
        ),
        (
            format!("{base}/extract/xcomEntries/rows"),
            "under `return_value`",
        ),
        (
            format!("{base}/extract/xcomEntries/return_value?map_index=2"),
            "map index 2",
        ),
        (format!("{base}/nope/xcomEntries/return_value"), "nope"),
    ] {
        let (status, body) = call(&a.app, "GET", &path, Some(&a.viewer), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{path}: {body}"
        );
    }
    let (status, _) = call(&a.app, "GET", &format!("{base}/~/xcomEntries"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Clearing keeps the output until the next try starts (as in Airflow);
    // that try's output replaces it, and each try keeps its own.
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/dags/demo/clearTaskInstances",
            json!({"dry_run": false, "only_failed": false, "task_ids": ["extract"], "dag_run_id": "r1", "include_downstream": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = a
        .get(&format!("{base}/extract/xcomEntries/return_value"))
        .await;
    assert_eq!(got["value"]["rows"], 1, "{got}");
    a.sched.tick().await.unwrap();
    a.sched.dispatch().await.unwrap();
    let claims = a
        .sched
        .claim("test-worker", "localhost", 10, None)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1, "{body}");
    assert_eq!(
        a.get(&format!("{base}/~/xcomEntries")).await["total_entries"],
        0,
        "try 2 runs and has published nothing yet"
    );
    for c in claims {
        a.sched
            .finish(&Report {
                ended: weir_core::scheduler::Ended {
                    output: Some(r#"{"rows":2}"#.into()),
                    ..weir_core::scheduler::Ended::success()
                },
                claim: c,
            })
            .await
            .unwrap();
    }
    let got = a
        .get(&format!("{base}/extract/xcomEntries/return_value"))
        .await;
    assert_eq!(got["value"], json!({"rows": 2}), "{got}");
    let ti = a
        .sched
        .store()
        .get_task_instance("demo", "r1", "extract")
        .await
        .unwrap();
    let tries = a.sched.store().list_tries(&ti.id).await.unwrap();
    let kept: Vec<Option<&str>> = tries.iter().map(|t| t.output.as_deref()).collect();
    assert_eq!(
        kept,
        [
            Some(r#"{"rows":1,"task":"extract"}"#),
            Some(r#"{"rows":2}"#)
        ]
    );
}

both_backends!(variables_in_airflows_shape, variables_case);
async fn variables_case(db: &TestDb) {
    let a = api(db).await;
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/variables",
            json!({"key": "bucket", "value": "raw-eu", "description": "landing bucket"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"key": "bucket", "value": "raw-eu", "description": "landing bucket",
               "is_encrypted": false, "team_name": null})
    );
    // JSON values are kept as their JSON text; secret keys are answered masked.
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/variables",
            json!({"key": "limits", "value": {"n": 7}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/variables",
            json!({"key": "db_password", "value": "hunter2"}),
        )
        .await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::CREATED, json!("***"))
    );
    assert_eq!(
        a.get("/api/v2/variables/limits").await["value"],
        "{\"n\":7}"
    );
    let listed = a.get("/api/v2/variables").await;
    assert_eq!(listed["total_entries"], 3);
    assert!(!listed.to_string().contains("hunter2"), "{listed}");
    let keys = |v: &Value| -> Vec<String> {
        v["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&listed), ["bucket", "db_password", "limits"]);
    assert_eq!(
        keys(&a.get("/api/v2/variables?order_by=-key&limit=2").await),
        ["limits", "db_password"]
    );
    assert_eq!(
        keys(&a.get("/api/v2/variables?variable_key_pattern=ASS").await),
        ["db_password"]
    );
    assert_eq!(
        keys(
            &a.get("/api/v2/variables?variable_key_prefix_pattern=li")
                .await
        ),
        ["limits"]
    );
    // A patch changes what its mask names; the value reaches templates at once.
    let (status, body) = a
        .send(
            "PATCH",
            "/api/v2/variables/bucket?update_mask=value",
            json!({"key": "bucket", "value": "raw-us", "description": "ignored"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["value"].clone(), body["description"].clone()),
        (json!("raw-us"), json!("landing bucket"))
    );
    assert_eq!(a.sched.variables().await.unwrap()["bucket"], "raw-us");
    // Bad input names what is wrong.
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/variables",
            json!({"key": "bucket", "value": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    a.refused(
        "POST",
        "/api/v2/variables",
        json!({"key": "has space", "value": "x"}),
        "variable key",
    )
    .await;
    a.refused(
        "POST",
        "/api/v2/variables",
        json!({"key": "k", "value": null}),
        "must not be null",
    )
    .await;
    a.refused(
        "POST",
        "/api/v2/variables",
        json!({"key": "k", "value": 1, "val": 2}),
        "unknown field",
    )
    .await;
    a.refused(
        "GET",
        "/api/v2/variables?order_by=key&order_by=description",
        json!(null),
        "one key",
    )
    .await;
    for (path, body, want) in [
        (
            "bucket",
            json!({"key": "other", "value": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bucket?update_mask=key",
            json!({"key": "bucket", "value": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "absent",
            json!({"key": "absent", "value": "x"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, err) = a
            .send("PATCH", &format!("/api/v2/variables/{path}"), body)
            .await;
        assert_eq!(status, want, "PATCH {path}: {err}");
    }
    // Viewers read, operators write; deleting twice is a 404.
    for (token, want) in [
        (&a.viewer, StatusCode::FORBIDDEN),
        (&a.operator, StatusCode::NO_CONTENT),
        (&a.operator, StatusCode::NOT_FOUND),
    ] {
        let (status, _) = call(
            &a.app,
            "DELETE",
            "/api/v2/variables/bucket",
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, want);
    }
    // The audit log names the key, never the value.
    let events = a.get("/api/v2/eventLogs?event=set_variable").await;
    assert_eq!(events["total_entries"], 4, "{events}");
    assert!(!events.to_string().contains("hunter2"), "{events}");
}

both_backends!(listing_task_instances_with_a_body, tis_batch_case);
async fn tis_batch_case(db: &TestDb) {
    let a = api(db).await;
    a.failed_demo_runs("06", &[("b1", "01"), ("b2", "02"), ("b3", "03")])
        .await;
    let list = |path: &'static str, body: Value| {
        let a = &a;
        async move {
            let url = format!("/api/v2/dags/{path}/taskInstances/list");
            let (status, answer) = a.send("POST", &url, body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            let found: Vec<String> = answer["task_instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    format!(
                        "{}/{}",
                        t["dag_run_id"].as_str().unwrap(),
                        t["task_id"].as_str().unwrap()
                    )
                })
                .collect();
            (found, answer["total_entries"].as_i64().unwrap())
        }
    };
    assert_eq!(list("~/dagRuns/~", json!({})).await.1, 6);
    assert_eq!(list("demo/dagRuns/b1", json!({})).await.1, 2);
    assert_eq!(
        list(
            "~/dagRuns/~",
            json!({"dag_ids": ["demo"], "dag_run_ids": ["b1", "b3"], "task_ids": ["publish"]})
        )
        .await,
        (vec!["b1/publish".into(), "b3/publish".into()], 2)
    );
    assert_eq!(list("~/dagRuns/~", json!({"state": ["failed"]})).await.1, 3);
    assert_eq!(list("~/dagRuns/~", json!({"state": [null]})).await.1, 0);
    assert_eq!(
        list(
            "~/dagRuns/~",
            json!({"logical_date_gte": "2026-06-02T00:00:00Z"})
        )
        .await
        .1,
        4,
        "the run's logical date, bound included"
    );
    assert_eq!(
        list(
            "~/dagRuns/~",
            json!({"logical_date_gt": "2026-06-02T00:00:00Z", "task_ids": ["extract"]})
        )
        .await,
        (vec!["b3/extract".into()], 1),
        "a strict bound excludes it"
    );
    assert_eq!(
        list("~/dagRuns/~", json!({"queue": ["default"]})).await.1,
        6
    );
    assert_eq!(
        list(
            "~/dagRuns/~",
            json!({"queue": ["gpu"], "pool": ["default_pool"]})
        )
        .await
        .1,
        0
    );
    assert_eq!(
        list(
            "~/dagRuns/~",
            json!({"order_by": "-task_id", "page_limit": 1, "page_offset": 1})
        )
        .await
        .0
        .len(),
        1
    );
    let first = list(
        "~/dagRuns/~",
        json!({"order_by": "-task_id", "page_limit": 1}),
    )
    .await;
    assert!(
        first.0[0].ends_with("/publish") && first.1 == 6,
        "{first:?}"
    );
    for (body, what) in [
        (json!({"duration_gte": -1.0}), "duration_gte"),
        (json!({"executor": ["celery"]}), "executor"),
        (json!({"map_index": [0]}), "unknown field"),
        (json!({"order_by": "colour"}), "order_by"),
        (json!({"state": ["sleeping"]}), "state"),
        (json!({"page_limit": 5000}), "limit"),
    ] {
        a.refused(
            "POST",
            "/api/v2/dags/~/dagRuns/~/taskInstances/list",
            body,
            what,
        )
        .await;
    }
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns/nope/taskInstances/list",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(waiting_for_a_run_streams_its_state, wait_case);
async fn wait_case(db: &TestDb) {
    let a = api(db).await;
    let (status, _) = a
        .send(
            "POST",
            "/api/v2/dags/demo/dagRuns",
            json!({"dag_run_id": "w"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = "/api/v2/dags/demo/dagRuns/w/wait?interval=0.05";
    // The answer starts (its first line read) before the run moves on.
    let req = Request::builder()
        .uri(url)
        .header("authorization", format!("Bearer {}", a.viewer))
        .body(Body::empty())
        .unwrap();
    let resp = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    a.drive(&["publish"]).await;
    let bytes = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        axum::body::to_bytes(resp.into_body(), 1 << 20),
    )
    .await
    .expect("the stream ends when the run ends")
    .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let states: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        states.len() >= 2,
        "a line at once and one at the end: {text}"
    );
    assert_ne!(states[0], "failed", "{text}");
    assert_eq!(states.last().map(String::as_str), Some("failed"), "{text}");
    assert!(text.ends_with('\n'), "every line ends: {text}");
    // An ended run answers its state in one line.
    let (_, body) = call(&a.app, "GET", url, Some(&a.viewer), None).await;
    assert_eq!(body, json!({"state": "failed"}));
    // A client that takes JSON but not NDJSON gets the last line as a document.
    let req = Request::builder()
        .uri(url)
        .header("authorization", format!("Bearer {}", a.viewer))
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap();
    let resp = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"state": "failed"})
    );
    let (status, _) = call(
        &a.app,
        "GET",
        "/api/v2/dags/demo/dagRuns/nope/wait?interval=1",
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (query, what) in [
        ("interval=0", "interval"),
        ("interval=1&result=extract", "result"),
        ("", "interval"),
    ] {
        let (status, err) = call(
            &a.app,
            "GET",
            &format!("/api/v2/dags/demo/dagRuns/w/wait?{query}"),
            Some(&a.viewer),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {err}");
        assert!(
            err["detail"].as_str().unwrap().contains(what),
            "{query}: {err}"
        );
    }
}

const MAPPED: &str = r#"
dag: mapped
schedule: manual
tasks:
  each:
    kind: shell
    expand: {items: [a, b, c]}
    command: echo {{ item }}
  after:
    kind: shell
    depends_on: [each]
    command: "true"
"#;

impl Api {
    /// Runs queued work: a mapped task's own try expands over its literal
    /// items; every other try succeeds, publishing its map index.
    async fn drive_mapped(&self) {
        self.drive_with(|c| {
            if c.task_id == "each" && c.map_index < 0 {
                weir_core::scheduler::Ended::expanded(vec![json!("a"), json!("b"), json!("c")])
                    .unwrap()
            } else {
                weir_core::scheduler::Ended {
                    output: Some(json!({"index": c.map_index}).to_string()),
                    ..weir_core::scheduler::Ended::success()
                }
            }
        })
        .await;
    }
}

both_backends!(mapped_task_instances, mapped_case);
async fn mapped_case(db: &TestDb) {
    let a = api(db).await;
    std::fs::write(a._dags.path().join("mapped.yaml"), MAPPED).unwrap();
    a.sched.sync_folder(a._dags.path()).await.unwrap();
    let (status, body) = a
        .send("PATCH", "/api/v2/dags/mapped", json!({"is_paused": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/dags/mapped/dagRuns",
            json!({"dag_run_id": "m1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.drive_mapped().await;
    let base = "/api/v2/dags/mapped/dagRuns/m1/taskInstances";

    // The run's list holds the task's own instance and one per item.
    let all = a
        .get(&format!("{base}?task_id=each&order_by=map_index"))
        .await;
    let indexes: Vec<i64> = all["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["map_index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [-1, 0, 1, 2], "{all}");

    // listMapped: the mapped instances by map index, with their items.
    let mapped = a.get(&format!("{base}/each/listMapped")).await;
    assert_eq!(mapped["total_entries"], 3, "{mapped}");
    let shown: Vec<(i64, &str, &str)> = mapped["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["map_index"].as_i64().unwrap(),
                t["rendered_map_index"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (0, "a", "success"),
            (1, "b", "success"),
            (2, "c", "success")
        ]
    );
    let page = a
        .get(&format!(
            "{base}/each/listMapped?limit=1&offset=1&order_by=-map_index"
        ))
        .await;
    assert_eq!(page["total_entries"], 3);
    assert_eq!(page["task_instances"][0]["map_index"], 1, "{page}");

    // One instance by map index; an index past the list is not found.
    let one = a.get(&format!("{base}/each/1")).await;
    assert_eq!(
        (one["map_index"].clone(), one["task_id"].clone()),
        (json!(1), json!("each"))
    );
    let (status, _) = call(
        &a.app,
        "GET",
        &format!("{base}/each/7"),
        Some(&a.viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its log and its output, by map index.
    let log = a
        .get(&format!("{base}/each/logs/1?map_index=2&full_content=true"))
        .await;
    assert!(log.to_string().contains("line one of each[2]"), "{log}");
    let x = a
        .get(&format!("{base}/each/xcomEntries/return_value?map_index=2"))
        .await;
    assert_eq!(
        (x["map_index"].clone(), x["value"].clone()),
        (json!(2), json!({"index": 2}))
    );

    // Marking one mapped instance failed fails the run; the others stay.
    a.refused(
        "PATCH",
        &format!("{base}/each/0"),
        json!({"new_state": "failed", "include_downstream": true}),
        "leave out map_index",
    )
    .await;
    let (status, body) = a
        .send(
            "PATCH",
            &format!("{base}/each/0"),
            json!({"new_state": "failed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_entries"], 1, "{body}");
    assert_eq!(body["task_instances"][0]["state"], "failed");
    let states: Vec<String> = a.get(&format!("{base}/each/listMapped")).await["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["failed", "success", "success"]);
    let run = a.get("/api/v2/dags/mapped/dagRuns/m1").await;
    assert_eq!(run["state"], "failed", "{run}");

    // Clearing one mapped instance by [task, map index] runs it alone again.
    let clear = |task_ids: Value| json!({"dag_run_id": "m1", "task_ids": task_ids, "dry_run": false, "only_failed": false});
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/dags/mapped/clearTaskInstances",
            clear(json!([["each", 9]])),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body.to_string().contains("each[9]"), "{body}");
    let (status, body) = a
        .send(
            "POST",
            "/api/v2/dags/mapped/clearTaskInstances",
            clear(json!([["each", 0]])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cleared: Vec<(String, i64)> = body["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap().to_owned(),
                t["map_index"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cleared, [("each".to_owned(), 0)], "{body}");
    a.drive_mapped().await;
    let tries: Vec<i64> = a.get(&format!("{base}/each/listMapped")).await["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["try_number"].as_i64().unwrap())
        .collect();
    assert_eq!(tries, [2, 1, 1], "only the named instance ran again");
    let run = a.get("/api/v2/dags/mapped/dagRuns/m1").await;
    assert_eq!(run["state"], "success", "{run}");
}
