//! The web UI through the whole HTTP stack, in process, on both backends,
//! with a real worker pool running the tasks: every page for every role,
//! the forms and their guards (role, CSRF), and 404 pages for what does not
//! exist.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use weir_core::both_backends;
use weir_core::scheduler::{Options, Scheduler, SystemClock, Trigger};
use weir_core::state::RunState;
use weir_core::store::RunRecord;
use weir_core::testing::TestDb;

mod common;
use weir_worker::{LocalPool, PoolOptions};

const DEMO: &str = r#"
dag: demo
schedule: "0 2 * * *"
start_date: 2026-01-01
catchup: false
paused: true
params: {who: nobody, times: 2}
notify:
  - on: [failure]
    webhook: http://127.0.0.1:9/nobody
tasks:
  greet:
    kind: shell
    command: echo "hello {{ params.who }}" && printf '\033[31mred\033[0m\n'
  fail:
    kind: shell
    depends_on: [greet]
    retries: 0
    command: |
      echo "about to fail"
      exit 3
"#;

const ORDERS: &str = r#"
dag: orders
schedule: manual
tasks:
  extract:
    kind: extract
    source: {format: csv, path: orders.csv}
    output: raw.orders
  check:
    kind: validate
    input: raw.orders
    output: clean.orders
    quarantine: quarantine.orders
    max_quarantined: 50%
    contract:
      owner: sales-ops
      description: Orders as the shop sends them
      tags: [orders, sales]
      columns:
        id: {type: int64, required: true}
        amount: {type: int64, min: 0}
        email: {type: string, classification: pii, description: Where receipts go}
      checks:
        - sql: "select id, email from checked where amount > 8"
          severity: warn
"#;

const CSV: &str = "id,amount,email\n1,10,ann@example.com\n2,-5,bob@example.com\n3,7,cy@example.com\n,4,dee@example.com\n";

struct Ui {
    app: Router,
    sched: Scheduler,
    dir: tempfile::TempDir,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A signed-in browser: its session cookie and its CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn hidden(body: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = body.find(&key).unwrap_or_else(|| panic!("no {name} field")) + key.len();
    body[at..].split('"').next().unwrap().to_owned()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Ui {
    async fn start(db: &TestDb) -> Ui {
        let dir = tempfile::tempdir().unwrap();
        let dags = dir.path().join("dags");
        std::fs::create_dir_all(&dags).unwrap();
        std::fs::write(dags.join("demo.yaml"), DEMO).unwrap();
        std::fs::write(dags.join("orders.yaml"), ORDERS).unwrap();
        std::fs::write(dags.join("orders.csv"), CSV).unwrap();
        std::fs::write(dags.join("broken.yaml"), "dag: broken\ntasks: [").unwrap();
        let options = Options {
            tick: Duration::from_millis(100),
            secret_key: weir_core::secret_key::KeySource::Value(
                weir_core::secret_key::SecretKey::generate()
                    .unwrap()
                    .encode(),
            ),
            ..Options::default()
        };
        let sched = Scheduler::new(db.store.clone(), Arc::new(SystemClock), options);
        sched.sync_folder(&dags).await.unwrap();
        let logs = dir.path().join("logs");
        let pool = LocalPool::start(
            sched.clone(),
            PoolOptions {
                slots: 2,
                logs_dir: logs.clone(),
                role: "ui-test".into(),
                poll: Duration::from_millis(100),
                connections: Default::default(),
                home: weir_worker::data::home::Home::Local(dir.path().join("data")),
                retention: Default::default(),
                lineage: Default::default(),
            },
            weir_worker::secrets::Secrets::from_env(Vec::new()),
        )
        .await
        .unwrap();
        let cancel = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(pool.run(cancel.clone())),
            tokio::spawn(sched.clone().run(cancel.clone())),
        ];
        let state = weir_api::AppState::new(sched.clone(), logs, None, chrono::Duration::hours(1))
            .await
            .unwrap()
            .with_rows(Arc::new(weir_worker::data::preview::Preview))
            .closing_on(&cancel);
        common::add_people(db.store.as_ref()).await;
        Ui {
            app: weir_api::app(state),
            sched,
            dir,
            cancel,
            tasks,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }

    async fn get(&self, path: &str, s: Option<&Session>) -> Answer {
        let mut req = Request::get(path).header(header::ACCEPT, "text/html");
        if let Some(s) = s {
            req = req.header(header::COOKIE, &s.cookie);
        }
        send(&self.app, req.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, s: Option<&Session>, fields: &[(&str, &str)]) -> Answer {
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(s) = s {
            req = req.header(header::COOKIE, &s.cookie);
        }
        send(&self.app, req.body(Body::from(form(fields))).unwrap()).await
    }

    /// Logs in through the form, as a browser does.
    /// `GET path` of the REST API as `user`, through an access token.
    async fn api_get(&self, path: &str, user: &str) -> serde_json::Value {
        let body = serde_json::json!({"username": user, "password": format!("{user}-password")});
        let req = Request::post("/auth/token")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let a = send(&self.app, req).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let token: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        let req = Request::get(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token["access_token"].as_str().unwrap()),
            )
            .body(Body::empty())
            .unwrap();
        let a = send(&self.app, req).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        serde_json::from_str(&a.body).unwrap()
    }

    async fn login(&self, user: &str) -> Session {
        let page = self.get("/login?next=/datasets", None).await;
        assert_eq!(page.status, StatusCode::OK);
        let login_cookie = set_cookie(&page, "weir_login").unwrap();
        let token = hidden(&page.body, "csrf");
        let pw = format!("{user}-password");
        let req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &login_cookie)
            .body(Body::from(form(&[
                ("username", user),
                ("password", &pw),
                ("csrf", &token),
                ("next", "/datasets"),
            ])))
            .unwrap();
        let done = send(&self.app, req).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), "/datasets");
        let session = set_cookie(&done, "weir_session").unwrap();
        let raw = done
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("weir_session="))
            .unwrap();
        assert!(
            raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
            "{raw}"
        );
        let home = self
            .get(
                "/",
                Some(&Session {
                    cookie: session.clone(),
                    csrf: String::new(),
                }),
            )
            .await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        Session {
            csrf: hidden(&home.body, "csrf"),
            cookie: session,
        }
    }

    async fn trigger(&self, dag: &str) -> RunRecord {
        self.sched
            .trigger(
                dag,
                Trigger {
                    actor: "test".into(),
                    ..Trigger::default()
                },
            )
            .await
            .unwrap()
    }

    async fn wait(&self, run: &RunRecord) -> RunRecord {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self
                .sched
                .store()
                .get_run(&run.dag_id, &run.run_id)
                .await
                .unwrap();
            if r.state.is_finished() {
                return r;
            }
            assert!(Instant::now() < deadline, "run {} did not end", run.run_id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn seg(s: &str) -> String {
    enc(s)
}

both_backends!(every_page_renders_for_every_role, every_page_case);
async fn every_page_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let demo = ui.wait(&ui.trigger("demo").await).await;
    assert_eq!(demo.state, RunState::Failed);
    let orders = ui.wait(&ui.trigger("orders").await).await;
    assert_eq!(orders.state, RunState::Success);
    let (d, o) = (seg(&demo.run_id), seg(&orders.run_id));
    for (key, value) in [("bucket", "raw-eu"), ("slack_api_key", "xoxb-sekret")] {
        ui.sched
            .set_variable("test", key, value, None, weir_core::store::SaveMode::Upsert)
            .await
            .unwrap();
    }
    let mut warehouse = weir_core::scheduler::connections::Connection::from_url(
        "warehouse",
        "postgres://etl@db.internal:5432/wh",
    )
    .unwrap();
    warehouse.password = Some("hunter2-secret".into());
    ui.sched
        .set_connection("test", &warehouse, weir_core::store::SaveMode::Create)
        .await
        .unwrap();
    let pages: Vec<(String, &[&str])> = vec![
        (
            "/".into(),
            &["demo", "orders", "broken.yaml", "did not load"],
        ),
        ("/?tag=nope".into(), &["No DAG matches"]),
        (
            "/dags/demo".into(),
            &["greet", "fail", "Runs 1–1 of 1", "s-failed"],
        ),
        (
            format!("/dags/demo/runs/{d}"),
            &[
                "Run",
                "failed",
                "<h3>Notifications</h3>",
                "<td>failure</td>",
            ],
        ),
        (
            format!("/dags/demo/runs/{d}/tasks/greet"),
            &["<h3>Command</h3><pre>", "hello nobody", "Tries"],
        ),
        (
            format!("/dags/demo/runs/{d}/tasks/fail"),
            &["<h3>Command</h3><pre>sh -c echo &quot;about to fail&quot;\nexit 3</pre>"],
        ),
        (
            format!("/dags/orders/runs/{o}/tasks/check"),
            &[
                "<h3>Output</h3>",
                "&quot;dataset&quot;: &quot;clean.orders&quot;",
                "&quot;quarantined&quot;",
            ],
        ),
        ("/dags/demo?view=graph".into(), &["<svg", "greet", "edge"]),
        (format!("/dags/demo/runs/{d}?view=gantt"), &["<svg", "fail"]),
        (
            "/dags/demo?view=code".into(),
            &["Version 1", "demo.yaml", "retries: 0", "exit 3"],
        ),
        (
            "/dags/orders?view=code".into(),
            &["orders.yaml", "max_quarantined: 50%"],
        ),
        (
            format!("/dags/demo/runs/{d}/tasks/greet/log"),
            &["hello nobody", "ansi-fg1", "Download"],
        ),
        (
            format!("/dags/demo/runs/{d}/tasks/fail/log?try=1"),
            &["the try failed"],
        ),
        (
            "/datasets".into(),
            &[
                "raw.orders",
                "clean.orders",
                "quarantine.orders",
                "sales-ops",
            ],
        ),
        (
            "/datasets?q=sales".into(),
            &["clean.orders", "quarantine.orders"],
        ),
        (
            "/datasets/clean.orders".into(),
            &[
                "Lineage",
                "raw.orders",
                "amount",
                "Quality history",
                "Orders as the shop sends them",
                "sales-ops",
                "class-pii",
                "Where receipts go",
                "Delta version <b>0</b>",
            ],
        ),
        (
            "/dags/orders/tasks/check/quality".into(),
            &["Quality history of check", "<svg"],
        ),
        (
            format!("/dags/orders/runs/{o}/tasks/check/quarantine"),
            &["min:amount", "required:id", "Rows"],
        ),
        ("/audit".into(), &["Audit log"]),
        ("/pools".into(), &["default"]),
        (
            "/variables".into(),
            &["bucket", "raw-eu", "slack_api_key", "***"],
        ),
        ("/workers".into(), &["ui-test@", "every queue", "active"]),
        (
            "/connections".into(),
            &["warehouse", "postgres", "db.internal", "***"],
        ),
    ];
    for user in ["vera", "otto", "ada"] {
        let s = ui.login(user).await;
        for (path, needles) in &pages {
            let a = ui.get(path, Some(&s)).await;
            assert_eq!(a.status, StatusCode::OK, "{user} {path}: {}", a.body);
            for n in *needles {
                assert!(a.body.contains(n), "{user} {path}: no `{n}` in the page");
            }
            assert!(
                !a.body.contains("xoxb-sekret"),
                "{user} {path} shows a secret"
            );
            let csp = a.headers.get(header::CONTENT_SECURITY_POLICY).unwrap();
            assert!(csp.to_str().unwrap().contains("script-src 'self'"));
            // Forms that change things are shown only to those who may use them.
            let writes = a.body.matches("method=\"post\"").count() - 1; // logout
            match user {
                "vera" => assert_eq!(writes, 0, "{path} shows a viewer a write form"),
                _ if path == "/dags/demo" => assert!(writes > 0, "{path} shows {user} no form"),
                _ => {}
            }
        }
        let pools = ui.get("/pools", Some(&s)).await;
        assert_eq!(
            pools.body.contains("Create or change a pool"),
            user == "ada",
            "only admins edit pools"
        );
    }
    // The quarantine view filters by reason and pages.
    let s = ui.login("vera").await;
    let a = ui
        .get(
            &format!("/dags/orders/runs/{o}/tasks/check/quarantine?reason=min%3Aamount"),
            Some(&s),
        )
        .await;
    assert!(a.body.contains("1 row with reason"), "{}", a.body);
    let null_id = "<td class=\"null\">null</td><td>4</td>";
    assert!(
        a.body.contains("<td>-5</td>") && !a.body.contains(null_id),
        "{}",
        a.body
    );
    let all = ui
        .get(
            &format!("/dags/orders/runs/{o}/tasks/check/quarantine"),
            Some(&s),
        )
        .await;
    assert!(all.body.contains(null_id), "{}", all.body);
    // Personal data: a viewer sees the pii column's values masked, in the
    // rows and in a check's sample; an admin sees them.
    assert!(
        !all.body.contains("bob@example.com") && !all.body.contains("ann@example.com"),
        "{}",
        all.body
    );
    assert!(
        all.body.contains("<td>***</td>") && all.body.contains("email=***"),
        "{}",
        all.body
    );
    assert!(all.body.contains("only admins see them"), "{}", all.body);
    let admin = ui.login("ada").await;
    let all = ui
        .get(
            &format!("/dags/orders/runs/{o}/tasks/check/quarantine"),
            Some(&admin),
        )
        .await;
    assert!(
        all.body.contains("<td>bob@example.com</td>") && all.body.contains("email=ann@example.com"),
        "{}",
        all.body
    );
    assert!(!all.body.contains("only admins see them"));
    // Logs are read by every role: their samples are masked for all.
    let log = ui
        .get(
            &format!("/dags/orders/runs/{o}/tasks/check/log"),
            Some(&admin),
        )
        .await;
    assert!(
        log.body.contains("email=***") && !log.body.contains("ann@example.com"),
        "{}",
        log.body
    );
    // The REST API: the catalog's metadata, and the same masking.
    let detail = ui
        .api_get("/api/v2/datasets/quarantine.orders", "vera")
        .await;
    assert_eq!(detail["metadata"]["owner"], "sales-ops", "{detail}");
    assert_eq!(
        detail["metadata"]["tags"],
        serde_json::json!(["orders", "sales"])
    );
    assert_eq!(
        detail["metadata"]["columns"],
        serde_json::json!([{"name": "email", "description": "Where receipts go", "classification": "pii"}])
    );
    let list = ui.api_get("/api/v2/datasets", "vera").await;
    let owners: Vec<(String, serde_json::Value)> = list["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["dataset"].as_str().unwrap().to_owned(),
                d["owner"].clone(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            ("clean.orders".to_owned(), serde_json::json!("sales-ops")),
            ("quarantine.orders".into(), serde_json::json!("sales-ops")),
            ("raw.orders".into(), serde_json::Value::Null),
        ],
        "a validate's contract describes what it writes"
    );
    let sample = |q: &serde_json::Value| {
        q["results"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "sql")
            .map(|c| c["observed"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let quality = format!("/api/v2/dags/orders/dagRuns/{o}/quality");
    let seen = sample(&ui.api_get(&quality, "otto").await);
    assert!(
        seen.contains("email=***") && !seen.contains("ann@"),
        "{seen}"
    );
    let seen = sample(&ui.api_get(&quality, "ada").await);
    assert!(seen.contains("email=ann@example.com"), "{seen}");
    ui.stop().await;
}

both_backends!(writes_need_the_role_and_a_csrf_token, guards_case);
async fn guards_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let viewer = ui.login("vera").await;
    let operator = ui.login("otto").await;
    let runs = |ui: &Ui| {
        let store = ui.sched.store().clone();
        async move {
            store
                .list_runs(&weir_core::store::RunFilter {
                    dag_id: Some("demo".into()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .1
        }
    };
    // A viewer posting anyway: 403, nothing happens.
    let a = ui
        .post(
            "/dags/demo/trigger",
            Some(&viewer),
            &[("csrf", &viewer.csrf)],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("operator role"));
    let a = ui
        .post(
            "/dags/demo/pause",
            Some(&viewer),
            &[("csrf", &viewer.csrf), ("paused", "true")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = ui
        .post(
            "/pools",
            Some(&operator),
            &[("csrf", &operator.csrf), ("name", "p"), ("slots", "2")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "pools need an admin");
    let a = ui
        .post(
            "/variables",
            Some(&viewer),
            &[("csrf", &viewer.csrf), ("key", "k"), ("value", "v")],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "variables need an operator"
    );
    let a = ui
        .post(
            "/variables",
            Some(&operator),
            &[("key", "k"), ("value", "v")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no CSRF token");
    let a = ui
        .post(
            "/connections",
            Some(&viewer),
            &[
                ("csrf", &viewer.csrf),
                ("id", "k"),
                ("url", "sqlite:///x.db"),
            ],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "connections need an operator"
    );
    let local = ui.sched.workers_view().await.unwrap()[0].life.name.clone();
    let a = ui
        .post(
            &format!("/workers/{}/drain", seg(&local)),
            Some(&ui.login("ada").await),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no CSRF token");
    let far = weir_core::workers::NewWorker {
        name: "far@elsewhere:1".into(),
        hostname: "elsewhere".into(),
        pid: 1,
        process_token: String::new(),
        version: "0.1.0".into(),
        queues: Some(vec!["gpu".into()]),
        slots: 4,
        remote: true,
    };
    ui.sched.register_worker(&far).await.unwrap();
    let drain = format!("/workers/{}/drain", seg(&far.name));
    let a = ui
        .post(&drain, Some(&operator), &[("csrf", &operator.csrf)])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "draining needs an admin");
    let admin = ui.login("ada").await;
    let a = ui
        .post(&drain, Some(&admin), &[("csrf", &admin.csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = ui.get("/workers", Some(&admin)).await;
    assert!(page.body.contains("draining"), "{}", page.body);
    let a = ui
        .post(
            &format!("/workers/{}/drain", seg(&local)),
            Some(&admin),
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a local pool is stopped, not drained"
    );
    assert!(a.body.contains("SIGTERM"), "{}", a.body);
    // No token, a wrong one, or another session's: 403.
    for token in ["", "0123", viewer.csrf.as_str()] {
        let a = ui
            .post("/dags/demo/trigger", Some(&operator), &[("csrf", token)])
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "csrf `{token}`");
        assert!(a.body.contains("CSRF"));
    }
    assert_eq!(runs(&ui).await, 0);
    // The session cookie does not open the REST API (a bearer token does).
    let req = Request::post("/api/v2/dags/demo/dagRuns")
        .header(header::COOKIE, &operator.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&ui.app, req).await.status, StatusCode::UNAUTHORIZED);
    // Without a session every page, stream and download sends the browser
    // to the login form.
    let a = ui.get("/dags/demo?view=code", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/login?next=/dags/demo%3Fview%3Dcode");
    for path in [
        "/",
        "/dags/demo",
        "/dags/demo/runs/r",
        "/dags/demo/runs/r/tasks/greet",
        "/dags/demo/runs/r/tasks/greet/log",
        "/dags/demo/runs/r/tasks/greet/log/earlier?before=9",
        "/dags/demo/runs/r/tasks/greet/log/follow",
        "/dags/demo/runs/r/tasks/greet/log/download",
        "/dags/demo/runs/r/tasks/check/quarantine",
        "/dags/demo/events?runs=1",
        "/dags/demo/backfill/preview?from=2026-01-01&to=2026-01-02",
        "/dags/orders/tasks/check/quality",
        "/datasets",
        "/datasets/clean.orders",
        "/audit",
        "/pools",
        "/variables",
        "/connections",
        "/workers",
    ] {
        let a = ui.get(path, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path} without a session");
        assert!(a.location().starts_with("/login?next="), "{path}");
    }
    for path in [
        "/dags/demo/pause",
        "/dags/demo/backfill",
        "/dags/demo/batch",
        "/dags/demo/runs/r/tasks/greet/clear",
        "/dags/demo/runs/r/tasks/greet/mark",
        "/pools",
        "/pools/default/delete",
        "/variables",
        "/variables/bucket/delete",
        "/connections",
        "/connections/wh/delete",
        "/workers/w/drain",
        "/logout",
    ] {
        let a = ui.post(path, None, &[("csrf", "x")]).await;
        assert_eq!(
            a.status,
            StatusCode::SEE_OTHER,
            "POST {path} without a session"
        );
    }
    let a = ui.post("/dags/demo/trigger", None, &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // A wrong password, a stale login form, and `next` pointing elsewhere.
    let page = ui.get("/login?next=//evil.example/x", None).await;
    assert_eq!(
        hidden(&page.body, "next").replace("&#x2f;", "/"),
        "/",
        "next must stay on the site"
    );
    let cookie = set_cookie(&page, "weir_login").unwrap();
    let token = hidden(&page.body, "csrf");
    let req = |pw: &str, token: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &cookie)
            .body(Body::from(form(&[
                ("username", "otto"),
                ("password", pw),
                ("csrf", token),
            ])))
            .unwrap()
    };
    let a = send(&ui.app, req("wrong", &token)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Invalid username or password"));
    let a = send(&ui.app, req("otto-password", "forged")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Logging out drops the cookie.
    let a = ui
        .post("/logout", Some(&operator), &[("csrf", &operator.csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(set_cookie(&a, "weir_session").unwrap(), "weir_session=");
    ui.stop().await;
}

both_backends!(forms_trigger_clear_mark_pause_and_backfill, forms_case);
async fn forms_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let op = ui.login("otto").await;
    let store = ui.sched.store().clone();
    // Trigger with a param and a bad conf first.
    let a = ui
        .post(
            "/dags/demo/trigger",
            Some(&op),
            &[("csrf", &op.csrf), ("conf", "[1]")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("conf: must be a JSON object"), "{}", a.body);
    let a = ui
        .post(
            "/dags/demo/trigger",
            Some(&op),
            &[
                ("csrf", &op.csrf),
                ("param.who", "Grace"),
                ("param.times", "abc"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("param `times`"), "{}", a.body);
    let a = ui
        .post(
            "/dags/demo/trigger",
            Some(&op),
            &[
                ("csrf", &op.csrf),
                ("param.who", "Grace"),
                ("param.times", "3"),
                ("conf", "{\"extra\": true}"),
                ("logical_date", "2026-03-04T05:06"),
                ("note", "from the form"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (runs, _) = store
        .list_runs(&weir_core::store::RunFilter {
            dag_id: Some("demo".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = ui.wait(&runs[0]).await;
    assert!(
        a.location().ends_with(&seg(&run.run_id)),
        "{}",
        a.location()
    );
    let conf: serde_json::Value = serde_json::from_str(&run.conf).unwrap();
    assert_eq!(
        conf,
        serde_json::json!({"who": "Grace", "times": 3, "extra": true})
    );
    assert_eq!(
        run.logical_date.unwrap().to_rfc3339(),
        "2026-03-04T05:06:00+00:00"
    );
    assert_eq!(run.note.as_deref(), Some("from the form"));
    let r = seg(&run.run_id);
    let log = ui
        .get(&format!("/dags/demo/runs/{r}/tasks/greet/log"), Some(&op))
        .await;
    assert!(log.body.contains("hello Grace"), "{}", log.body);

    // Clear the failed task: a second try.
    let a = ui
        .post(
            &format!("/dags/demo/runs/{r}/tasks/fail/clear"),
            Some(&op),
            &[("csrf", &op.csrf)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    ui.wait(&run).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ti = store
            .get_task_instance("demo", &run.run_id, "fail")
            .await
            .unwrap();
        if ti.try_number == 2 && ti.state.is_finished() {
            break;
        }
        assert!(Instant::now() < deadline, "no second try");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = ui
        .get(&format!("/dags/demo/runs/{r}/tasks/fail"), Some(&op))
        .await;
    assert!(page.body.contains("log?try=2"), "{}", page.body);
    // Mark it success by hand; then the run's tasks in a batch.
    let a = ui
        .post(
            &format!("/dags/demo/runs/{r}/tasks/fail/mark"),
            Some(&op),
            &[("csrf", &op.csrf), ("state", "success")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        ui.wait(&run).await.state,
        RunState::Success,
        "every task succeeded now"
    );
    let a = ui
        .post(
            "/dags/demo/batch",
            Some(&op),
            &[
                ("csrf", &op.csrf),
                ("run_id", &run.run_id),
                ("task", "greet"),
                ("task", "fail"),
                ("action", "mark_failed"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    for t in ["greet", "fail"] {
        let ti = store
            .get_task_instance("demo", &run.run_id, t)
            .await
            .unwrap();
        assert_eq!(ti.state.to_string(), "failed", "{t}");
    }
    let a = ui
        .post(
            "/dags/demo/batch",
            Some(&op),
            &[("csrf", &op.csrf), ("action", "mark_success")],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing selected"
    );
    let a = ui
        .post(
            "/dags/demo/batch",
            Some(&op),
            &[
                ("csrf", &op.csrf),
                ("run", &run.run_id),
                ("action", "mark_success"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let after = store.get_run("demo", &run.run_id).await.unwrap();
    assert_eq!(after.state, RunState::Success);

    // Unpause and pause.
    for paused in ["false", "true"] {
        let a = ui
            .post(
                "/dags/demo/pause",
                Some(&op),
                &[
                    ("csrf", &op.csrf),
                    ("paused", paused),
                    ("back", "https://evil.example/"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(a.location(), "/", "back must stay on the site");
        assert_eq!(
            store.get_dag("demo").await.unwrap().is_paused.to_string(),
            paused
        );
    }

    // Backfill: the preview says how many runs, then they are created.
    let a = ui
        .get(
            "/dags/demo/backfill/preview?from=2026-01-01&to=2026-01-03",
            Some(&op),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.starts_with("3 intervals in the range: 3 new runs"),
        "{}",
        a.body
    );
    let a = ui
        .get(
            "/dags/demo/backfill/preview?from=2026-01-05&to=2026-01-01",
            Some(&op),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let page = ui
        .get(
            "/dags/demo?view=backfill&from=2026-01-01&to=2026-01-03",
            Some(&op),
        )
        .await;
    assert!(page.body.contains("3 new runs would be created"));
    assert!(page.body.contains("Create the backfill"));
    let a = ui
        .post(
            "/dags/demo/backfill",
            Some(&op),
            &[
                ("csrf", &op.csrf),
                ("from", "2026-01-01"),
                ("to", "2026-01-03"),
                ("max_active_runs", "5"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, total) = store
        .list_runs(&weir_core::store::RunFilter {
            dag_id: Some("demo".into()),
            run_types: vec![weir_core::state::RunType::Backfill],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 3);

    // Variables (operator): set, changed, refused with a bad key, deleted.
    let otto = ui.login("otto").await;
    for value in ["raw-eu", "raw-us"] {
        let a = ui
            .post(
                "/variables",
                Some(&otto),
                &[
                    ("csrf", &otto.csrf),
                    ("key", "bucket"),
                    ("value", value),
                    ("description", "landing"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
    assert_eq!(ui.sched.variables().await.unwrap()["bucket"], "raw-us");
    let a = ui
        .post(
            "/variables",
            Some(&otto),
            &[("csrf", &otto.csrf), ("key", "has space"), ("value", "x")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("variable key"), "{}", a.body);
    let a = ui
        .post(
            "/variables/bucket/delete",
            Some(&otto),
            &[("csrf", &otto.csrf)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        !ui.get("/variables", Some(&otto))
            .await
            .body
            .contains("raw-us")
    );

    // Connections (operator): added with a password apart, refused with a
    // bad URL, deleted; the password never reaches the page.
    let a = ui
        .post(
            "/connections",
            Some(&otto),
            &[
                ("csrf", &otto.csrf),
                ("id", "shop"),
                ("url", "postgres://reader@shop.internal/shop"),
                ("password", "s3cret-pw"),
                ("description", "the shop"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let shop = ui.sched.get_connection("shop").await.unwrap();
    assert_eq!(shop.password.as_deref(), Some("s3cret-pw"));
    let page = ui.get("/connections", Some(&otto)).await.body;
    assert!(
        page.contains("shop.internal") && !page.contains("s3cret-pw"),
        "{page}"
    );
    let a = ui
        .post(
            "/connections",
            Some(&otto),
            &[("csrf", &otto.csrf), ("id", "bad"), ("url", "not a url")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("not a URL"), "{}", a.body);
    let a = ui
        .post(
            "/connections/shop/delete",
            Some(&otto),
            &[("csrf", &otto.csrf)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(ui.sched.get_connection("shop").await.is_err());

    // Pools (admin), and the audit log names who did all this.
    let admin = ui.login("ada").await;
    let a = ui
        .post(
            "/pools",
            Some(&admin),
            &[("csrf", &admin.csrf), ("name", "big"), ("slots", "x")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = ui
        .post(
            "/pools",
            Some(&admin),
            &[("csrf", &admin.csrf), ("name", "big"), ("slots", "7")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let pools = ui.get("/pools", Some(&admin)).await;
    assert!(
        pools.body.contains("<td>big</td><td class=\"num\">7</td>"),
        "{}",
        pools.body
    );
    let a = ui
        .post("/pools/big/delete", Some(&admin), &[("csrf", &admin.csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let audit = ui.get("/audit", Some(&admin)).await;
    for what in [
        "trigger",
        "clear",
        "mark_success",
        "mark_failed",
        "pause",
        "backfill",
        "create_pool",
        "delete_pool",
    ] {
        assert!(
            audit.body.contains(&format!("<td>{what}</td>")),
            "audit has no {what}"
        );
    }
    ui.stop().await;
}

both_backends!(what_does_not_exist_gets_a_404_page, not_found_case);
async fn not_found_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let run = ui.wait(&ui.trigger("demo").await).await;
    let r = seg(&run.run_id);
    let s = ui.login("vera").await;
    for path in [
        "/dags/nope".to_owned(),
        "/dags/nope?view=code".to_owned(),
        "/dags/demo/runs/nope".to_owned(),
        format!("/dags/demo/runs/{r}/tasks/nope"),
        format!("/dags/demo/runs/{r}/tasks/nope/log"),
        format!("/dags/demo/runs/{r}/tasks/greet/log?try=9"),
        format!("/dags/demo/runs/{r}/tasks/greet/log/download?try=9"),
        format!("/dags/demo/runs/{r}/tasks/greet/quarantine"),
        "/dags/demo/tasks/greet/quality".to_owned(),
        "/dags/demo/tasks/nope/quality".to_owned(),
        "/dags/nope/tasks/x/quality".to_owned(),
        "/datasets/clean.nope".to_owned(),
        "/no/such/page".to_owned(),
        "/static/nope.js".to_owned(),
    ] {
        let a = ui.get(&path, Some(&s)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
        assert!(a.body.contains("<!doctype html>"), "{path} is not a page");
    }
    // Bad query values are a 4xx page, never a 500.
    for path in [
        "/dags/demo?offset=x",
        "/audit?offset=-5",
        "/dags/demo?offset=-3",
    ] {
        let a = ui.get(path, Some(&s)).await;
        assert!(
            a.status.is_client_error() || a.status == StatusCode::OK,
            "{path}: {}",
            a.status
        );
    }
    // The grid's event stream of a finished run ends at once.
    let a = ui
        .get(&format!("/dags/demo/events?runs={}", run.id), Some(&s))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("event: end"), "{}", a.body);
    // A DAG whose file breaks keeps its page, with the error on top.
    let dags = ui.dir.path().join("dags");
    std::fs::write(dags.join("orders.yaml"), "dag: orders\ntasks: [").unwrap();
    ui.sched.sync_folder(&dags).await.unwrap();
    let a = ui.get("/dags/orders", Some(&s)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("does not load now"), "{}", a.body);
    assert!(
        a.body.contains("orders.yaml:3:1</code>: YAML syntax error"),
        "{}",
        a.body
    );
    ui.stop().await;
}

both_backends!(a_fifty_megabyte_log_shows_its_tail_first, big_log_case);
async fn big_log_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let run = ui.wait(&ui.trigger("demo").await).await;
    let store = ui.sched.store();
    let ti = store
        .get_task_instance("demo", &run.run_id, "greet")
        .await
        .unwrap();
    let tries = store.list_tries(&ti.id).await.unwrap();
    let path = ui.dir.path().join("logs").join(&tries[0].log_path);
    let mut text = String::with_capacity(51 << 20);
    let mut n = 0;
    while text.len() < 50 << 20 {
        n += 1;
        text.push_str(&format!("line {n:08} of a long log <&>\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let s = ui.login("vera").await;
    let base = format!("/dags/demo/runs/{}/tasks/greet/log", seg(&run.run_id));
    let page = ui.get(&base, Some(&s)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.len() < 400_000,
        "the page holds {} bytes",
        page.body.len()
    );
    assert!(
        page.body
            .contains(&format!("line {n:08} of a long log &lt;&amp;&gt;"))
    );
    assert!(
        !page.body.contains("line 00000001 "),
        "the head is not sent"
    );
    assert!(page.body.contains("Show earlier lines"));
    let start: u64 = page
        .body
        .split("data-start=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        start > 0 && start.is_multiple_of(32),
        "the tail starts at a line: {start}"
    );
    // The piece before it, as the button loads it.
    let piece = ui
        .get(&format!("{base}/earlier?try=1&before={start}"), Some(&s))
        .await;
    let piece: serde_json::Value = serde_json::from_str(&piece.body).unwrap();
    let html = piece["html"].as_str().unwrap();
    let line_before = start / 32;
    assert!(html.ends_with(&format!(
        "line {line_before:08} of a long log &lt;&amp;&gt;\n"
    )));
    assert!(piece["start"].as_u64().unwrap() < start);
    // The whole file to download.
    let all = ui.get(&format!("{base}/download?try=1"), Some(&s)).await;
    assert_eq!(all.body.len(), text.len());
    assert!(
        all.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    ui.stop().await;
}

both_backends!(remote_logs_show_and_an_unserved_queue_is_named, remote_case);
async fn remote_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let run = ui.wait(&ui.trigger("demo").await).await;
    let store = ui.sched.store().clone();
    let s = ui.login("vera").await;
    // A try whose log a remote worker pushed (no file here) reads from the database.
    let ti = store
        .get_task_instance("demo", &run.run_id, "greet")
        .await
        .unwrap();
    let tries = store.list_tries(&ti.id).await.unwrap();
    std::fs::remove_file(ui.dir.path().join("logs").join(&tries[0].log_path)).unwrap();
    store
        .append_log(&ti.id, 1, 0, b"pushed from afar <1>\n")
        .await
        .unwrap();
    store
        .append_log(&ti.id, 1, 21, b"second piece\n")
        .await
        .unwrap();
    let base = format!("/dags/demo/runs/{}/tasks/greet/log", seg(&run.run_id));
    let page = ui.get(&base, Some(&s)).await;
    assert!(
        page.body.contains("pushed from afar &lt;1&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("second piece"));
    let all = ui.get(&format!("{base}/download?try=1"), Some(&s)).await;
    assert_eq!(all.body, "pushed from afar <1>\nsecond piece\n");

    // With no worker left, a queued task says which queue nobody serves.
    let Ui {
        app,
        sched,
        dir: _dir,
        cancel,
        tasks,
    } = ui;
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let again = sched
        .trigger(
            "demo",
            weir_core::scheduler::Trigger {
                actor: "t".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ti = store
        .get_task_instance("demo", &again.run_id, "greet")
        .await
        .unwrap();
    assert_eq!(ti.state, weir_core::state::TaskState::Queued);
    let req = axum::http::Request::get(format!(
        "/dags/demo/runs/{}/tasks/greet",
        seg(&again.run_id)
    ))
    .header(header::COOKIE, &s.cookie)
    .body(Body::empty())
    .unwrap();
    let page = send(&app, req).await;
    assert!(
        page.body
            .contains("no active worker serves the queue <code>default</code>"),
        "{}",
        page.body
    );
}

const MAPPED: &str = r#"
dag: mapped
schedule: manual
tasks:
  each:
    kind: shell
    expand: {items: [a, b]}
    command: echo "item {{ item }}"
"#;

async fn mapped_case(db: &TestDb) {
    let ui = Ui::start(db).await;
    let dags = ui.dir.path().join("dags");
    std::fs::write(dags.join("mapped.yaml"), MAPPED).unwrap();
    ui.sched.sync_folder(&dags).await.unwrap();
    let run = ui
        .sched
        .trigger(
            "mapped",
            Trigger {
                actor: "test".into(),
                ..Trigger::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ui.wait(&run).await.state, RunState::Success);
    let op = ui.login("otto").await;
    let r = seg(&run.run_id);
    // The task's panel lists its instances; one instance's panel and log.
    let task = ui
        .get(&format!("/dags/mapped/runs/{r}/tasks/each"), Some(&op))
        .await;
    assert!(task.body.contains("Mapped instances"), "{}", task.body);
    assert!(task.body.contains("?map_index=1"), "{}", task.body);
    let one = ui
        .get(
            &format!("/dags/mapped/runs/{r}/tasks/each?map_index=1"),
            Some(&op),
        )
        .await;
    assert!(one.body.contains("each [1]"), "{}", one.body);
    let log = ui
        .get(
            &format!("/dags/mapped/runs/{r}/tasks/each/log?map_index=1"),
            Some(&op),
        )
        .await;
    assert!(log.body.contains("item b"), "{}", log.body);
    // Marking one instance failed from its panel fails it alone, and the run.
    let a = ui
        .post(
            &format!("/dags/mapped/runs/{r}/tasks/each/mark?map_index=1"),
            Some(&op),
            &[("csrf", &op.csrf), ("state", "failed")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.location().ends_with("?map_index=1"), "{}", a.location());
    let store = ui.sched.store();
    let state = |i: i64| {
        let store = store.clone();
        let run_id = run.run_id.clone();
        async move {
            store
                .get_mapped_instance("mapped", &run_id, "each", i)
                .await
                .unwrap()
                .state
                .to_string()
        }
    };
    assert_eq!(
        (state(0).await, state(1).await),
        ("success".into(), "failed".into())
    );
    assert_eq!(ui.wait(&run).await.state, RunState::Failed);
    ui.stop().await;
}
both_backends!(
    mapped_instances_in_the_task_panel_and_its_forms,
    mapped_case
);
