//! The engine end to end with real processes: scheduler, local pool and shell
//! tasks on both backends. Waiting is polling with a deadline, never a fixed sleep.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::both_backends;
use weir_core::scheduler::ManualClock;
use weir_core::state::{RunState, TaskState};
use weir_core::store::{RunRecord, TaskInstanceRecord};
use weir_core::testing::TestDb;

mod common;
use common::{Extras, Site};

impl Site {
    async fn wait_until<F: Fn(&[TaskInstanceRecord], RunState) -> bool>(
        &self,
        run: &RunRecord,
        what: &str,
        done: F,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tis = self
                .sched
                .store()
                .list_task_instances(run.id)
                .await
                .unwrap();
            let state = self
                .sched
                .store()
                .get_run_by_pk(run.id)
                .await
                .unwrap()
                .state;
            if done(&tis, state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {state} {tis:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ti(&self, run: &RunRecord, task: &str) -> TaskInstanceRecord {
        self.sched
            .store()
            .list_task_instances(run.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.task_id == task && t.map_index < 0)
            .unwrap()
    }
}

const HELLO: &str = r#"
params: {greeting: hello, region: eu}
tasks:
  greet:
    kind: shell
    command: echo "{{ params.greeting }} {{ params.region }} ds={{ ds }} run={{ run_id }} try={{ try_number }} from={{ data_interval_start }} to={{ data_interval_end }} ts={{ ts }} nodash={{ ds_nodash }} dag={{ dag_id }} task={{ task_id }}"
  env:
    kind: shell
    depends_on: [greet]
    env: {TOKEN: "{{ secret('api_token') }}", WHERE: "{{ params.region }}"}
    command: ["sh", "-c", "echo dag=$WEIR_DAG_ID task=$WEIR_TASK_ID try=$WEIR_TRY_NUMBER where=$WHERE token=$TOKEN; pwd"]
"#;

async fn shell_tasks(db: &TestDb) {
    let e = Site::start_with(
        db,
        HELLO,
        Extras {
            secrets: &[("API_TOKEN", "s3cr3t-value")],
            ..Extras::default()
        },
    )
    .await;
    let run = e.trigger(serde_json::json!({"greeting": "bonjour"})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Success);
    let greet = e.log(&run, "greet", 1);
    let ds = run.logical_date.unwrap().format("%Y-%m-%d").to_string();
    assert!(
        greet.contains(&format!("bonjour eu ds={ds} run={} try=1", run.run_id)),
        "conf overrides params:\n{greet}"
    );
    let ld = run.logical_date.unwrap();
    assert!(
        greet.contains(&format!(
            "from={} to={}",
            run.data_interval_start.unwrap().to_rfc3339(),
            run.data_interval_end.unwrap().to_rfc3339()
        )),
        "data interval in templates:\n{greet}"
    );
    assert!(
        greet.contains(&format!(
            "ts={} nodash={} dag=t task=greet",
            ld.to_rfc3339(),
            ld.format("%Y%m%d")
        )),
        "{greet}"
    );
    let env = e.log(&run, "env", 1);
    assert!(
        env.contains("dag=t task=env try=1 where=eu token=***"),
        "WEIR_* variables, env templates, masked secret:\n{env}"
    );
    assert!(!env.contains("s3cr3t-value"), "{env}");
    let dags_dir = std::fs::canonicalize(e.dir.path().join("dags")).unwrap();
    assert!(
        env.contains(&dags_dir.display().to_string()),
        "tasks run in the DAG file's folder:\n{env}"
    );
    let ti = e.ti(&run, "env").await;
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    assert_eq!(tries[0].exit_code, Some(0));
    assert!(tries[0].pid.is_some() && tries[0].hostname.is_some());
    e.stop().await;
}
both_backends!(
    shell_tasks_render_templates_env_and_mask_secrets,
    shell_tasks
);

const VARIABLES: &str = r#"
tasks:
  read:
    kind: shell
    command: echo "bucket={{ var.value.bucket }} n={{ var.json.limits.n }} first={{ var.json.limits.tags[0] }} pw={{ var.value.db_password }}"
  missing:
    kind: shell
    command: echo "{{ var.value.nope }}"
"#;

async fn variables_in_templates(db: &TestDb) {
    use weir_core::store::SaveMode;
    let e = Site::start(db, VARIABLES, &[]).await;
    for (key, value) in [
        ("bucket", "raw-eu"),
        ("limits", r#"{"n": 7, "tags": ["a", "b"]}"#),
        ("db_password", "hunter2-secret"),
    ] {
        e.sched
            .set_variable("test", key, value, None, SaveMode::Upsert)
            .await
            .unwrap();
    }
    let run = e.trigger(serde_json::json!({})).await;
    e.wait(&run).await;
    let read = e.log(&run, "read", 1);
    assert!(
        read.contains("bucket=raw-eu n=7 first=a pw=***"),
        "values as text and as JSON, a secret key masked:\n{read}"
    );
    assert!(!read.contains("hunter2-secret"), "{read}");
    let ti = e.ti(&run, "missing").await;
    assert_eq!(
        ti.state,
        TaskState::Failed,
        "an unset variable fails the try"
    );
    assert!(e.log(&run, "missing", 1).contains("template error"));
    e.stop().await;
}
both_backends!(
    variables_render_in_templates_and_secret_ones_are_masked,
    variables_in_templates
);

const OUTPUTS: &str = r#"
tasks:
  count:
    kind: shell
    command: |
      echo '{"rows": 3, "files": ["a.csv", "b.csv"]}' > "$WEIR_OUTPUT"
  version:
    kind: shell
    output: last_line
    command: printf 'starting\nv42\n\n'
  report:
    kind: shell
    depends_on: [count, version]
    command: echo "rows={{ tasks.count.output.rows }} first={{ tasks.count.output.files[0] }} version={{ tasks.version.output }}"
  quiet:
    kind: shell
    command: "true"
  reads_quiet:
    kind: shell
    depends_on: [quiet]
    command: echo "{{ tasks.quiet.output }}"
  not_json:
    kind: shell
    command: echo 'rows=3' > "$WEIR_OUTPUT"
  too_big:
    kind: shell
    command: head -c 70000 /dev/zero | tr '\0' x > "$WEIR_OUTPUT"
"#;

async fn task_outputs(db: &TestDb) {
    let e = Site::start(db, OUTPUTS, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    e.wait(&run).await;
    let report = e.log(&run, "report", 1);
    assert!(
        report.contains("rows=3 first=a.csv version=v42"),
        "outputs of upstream tasks in templates:\n{report}"
    );
    let mut outputs = e
        .sched
        .store()
        .task_outputs(run.id, &["count".into(), "version".into(), "quiet".into()])
        .await
        .unwrap();
    outputs.sort();
    assert_eq!(
        outputs,
        [
            (
                "count".to_owned(),
                -1,
                Some(r#"{"files":["a.csv","b.csv"],"rows":3}"#.to_owned())
            ),
            ("version".to_owned(), -1, Some(r#""v42""#.to_owned())),
        ],
        "kept as compact JSON; a task that published nothing has none"
    );
    let quiet = e.ti(&run, "reads_quiet").await;
    assert_eq!(quiet.state, TaskState::Failed);
    let log = e.log(&run, "reads_quiet", 1);
    assert!(
        log.contains("no output in this run from: quiet"),
        "reading a missing output names the task:\n{log}"
    );
    for (task, why) in [
        ("not_json", "the output is not JSON"),
        ("too_big", "outputs are limited to 65536 bytes"),
    ] {
        let ti = e.ti(&run, task).await;
        assert_eq!(ti.state, TaskState::Failed, "{task}");
        let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
        let error = tries[0].error.clone().unwrap_or_default();
        assert!(error.contains(why), "{task}: {error}");
        assert_eq!(tries[0].output, None, "{task}");
    }
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    e.stop().await;
}
both_backends!(
    shell_tasks_publish_outputs_that_downstream_templates_read,
    task_outputs
);

const STORED_CONNECTIONS: &str = r#"
tasks:
  stored:
    kind: sensor
    sql: "select count(*) from dag_runs where run_id = '{{ run_id }}'"
    connection: Kept_State
    poke_interval: 1s
    timeout: 30s
  configured_wins:
    kind: sensor
    sql: "select count(*) from dag_runs where run_id = '{{ run_id }}'"
    connection: state
    poke_interval: 1s
    timeout: 30s
  nowhere:
    kind: sensor
    retries: 0
    sql: "select 1"
    connection: nowhere
    poke_interval: 1s
    timeout: 30s
"#;

async fn stored_connections(db: &TestDb) {
    use weir_core::scheduler::connections::Connection;
    use weir_core::store::SaveMode;
    let e = Site::start(db, STORED_CONNECTIONS, &[]).await;
    let kept = Connection::from_url("kept_state", &db.url).unwrap();
    e.sched
        .set_connection("test", &kept, SaveMode::Create)
        .await
        .unwrap();
    // `state` is configured for the pool: a stored one of the same id loses.
    let wrong = Connection::from_url("state", "postgres://nobody:pw@127.0.0.1:1/none").unwrap();
    e.sched
        .set_connection("test", &wrong, SaveMode::Create)
        .await
        .unwrap();
    let run = e.trigger(serde_json::json!({})).await;
    e.wait(&run).await;
    for task in ["stored", "configured_wins"] {
        assert_eq!(
            e.ti(&run, task).await.state,
            TaskState::Success,
            "{}",
            e.log(&run, task, 1)
        );
    }
    let nowhere = e.ti(&run, "nowhere").await;
    assert_eq!(nowhere.state, TaskState::Failed);
    let log = e.log(&run, "nowhere", 1);
    assert!(log.contains("weir connections add nowhere"), "{log}");
    e.stop().await;
}
both_backends!(
    stored_connections_serve_tasks_after_the_environment_and_weir_toml,
    stored_connections
);

/// A webhook receiver on 127.0.0.1: `/hook` takes every POST; `/flaky`
/// answers 500 to the first. Returns its address and what it took.
async fn receiver() -> (
    String,
    Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
) {
    use axum::Json;
    use axum::extract::{Path as AxPath, State};
    use axum::http::StatusCode;
    type Got = Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;
    let got: Got = Arc::default();
    let first_flaky = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = axum::Router::new()
        .route(
            "/{name}",
            axum::routing::post(
                move |State(got): State<Got>,
                      AxPath(name): AxPath<String>,
                      Json(body): Json<serde_json::Value>| {
                    let first_flaky = first_flaky.clone();
                    async move {
                        if name == "flaky"
                            && first_flaky.swap(false, std::sync::atomic::Ordering::SeqCst)
                        {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        got.lock().unwrap().push((name, body));
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

/// Polls `check` until it holds (30 s at most).
async fn eventually<F: Fn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn notifications(db: &TestDb) {
    use weir_core::dag::NotifyEvent;
    let (url, got) = receiver().await;
    let dag = format!(
        r#"
notify:
  - on: [failure]
    webhook: "{url}/hook"
  - on: [retry]
    command: echo "dag-retry $WEIR_NOTIFY_TASK_ID $WEIR_NOTIFY_TRY_NUMBER" >> ../notified.txt
tasks:
  flaky:
    kind: shell
    retries: 1
    retry_delay: 1s
    command: |
      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ "$n" -ge 2 ]
    notify:
      - on: [success]
        command: echo "{{{{ event }}}} {{{{ task_id }}}} try {{{{ try_number }}}} $WEIR_NOTIFY_MESSAGE" >> ../notified.txt
  boom:
    kind: shell
    retries: 0
    command: "echo bad; exit 4"
    notify:
      - on: [failure]
        webhook: "{url}/flaky"
        message: "{{{{ task_id }}}} {{{{ event }}}}: {{{{ error }}}}"
      - on: [failure]
        webhook: "http://127.0.0.1:1/nobody-listens"
"#
    );
    let e = Site::start(db, &dag, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let store = e.sched.store().clone();
    let settled = || {
        let store = store.clone();
        async move {
            let all = store.run_notifications(run.id).await.unwrap();
            (all.iter().all(|n| n.state != "pending"), all)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let (done, all) = settled().await;
        if done && all.len() == 5 {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "notifications did not settle: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let find = |rule: &str, task: Option<&str>, event: NotifyEvent| {
        all.iter()
            .find(|n| n.rule == rule && n.task_id.as_deref() == task && n.event == event)
            .unwrap_or_else(|| panic!("{rule} {task:?} {event:?}: {all:#?}"))
            .clone()
    };
    // The run failed: the DAG's webhook got one body, Slack-compatible.
    let run_failed = find("dag:0", None, NotifyEvent::Failure);
    assert_eq!(
        (run_failed.state.as_str(), run_failed.attempts),
        ("sent", 1)
    );
    let bodies = got.lock().unwrap().clone();
    let hook: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|(n, _)| n == "hook")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(hook.len(), 1, "{bodies:#?}");
    assert_eq!(
        (hook[0]["event"].as_str(), hook[0]["run_id"].as_str()),
        (Some("failure"), Some(run.run_id.as_str()))
    );
    let text = hook[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("run {} of t failed", run.run_id)),
        "{text}"
    );
    assert!(text.contains("http://weir.test/dags/t/runs/"), "{text}");
    // A failed delivery is retried: the flaky receiver took the second.
    let boom = find("task:0", Some("boom"), NotifyEvent::Failure);
    assert_eq!(
        (boom.state.as_str(), boom.attempts),
        ("sent", 2),
        "{boom:?}"
    );
    let flaky: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|(n, _)| n == "flaky")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(flaky.len(), 1);
    assert_eq!(
        flaky[0]["text"],
        "boom failure: the command exited with code 4"
    );
    assert!(
        flaky[0]["log_url"]
            .as_str()
            .unwrap()
            .ends_with("/tasks/boom/log?try=1"),
        "{:?}",
        flaky[0]
    );
    // One that never gets through is recorded as failed, with why; the run's
    // outcome is what it was.
    let nobody = find("task:1", Some("boom"), NotifyEvent::Failure);
    assert_eq!(
        (nobody.state.as_str(), nobody.attempts),
        ("failed", 3),
        "{nobody:?}"
    );
    assert!(
        nobody
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("POST http://127.0.0.1:1/nobody-listens"),
        "{nobody:?}"
    );
    // A retry fired the DAG's command; the success after it the task's own.
    find("dag:1", Some("flaky"), NotifyEvent::Retry);
    find("task:0", Some("flaky"), NotifyEvent::Success);
    let notified = std::fs::read_to_string(e.dir.path().join("notified.txt")).unwrap();
    assert!(notified.contains("dag-retry flaky 1\n"), "{notified}");
    assert!(
        notified.contains(&format!(
            "success flaky try 2 weir: task t.flaky succeeded (try 2) in run {}",
            run.run_id
        )),
        "{notified}"
    );
    e.stop().await;
}
both_backends!(
    notifications_are_delivered_retried_and_recorded,
    notifications
);

/// Starts an SMTP server in `python` on a free port of 127.0.0.1, its
/// arguments set by `args`; answers it once it listens, and the port.
async fn smtp_server(
    args: impl FnOnce(u16, &mut std::process::Command),
    python: &str,
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = std::process::Command::new(python);
    args(port, &mut cmd);
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the SMTP server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    (child, port)
}

async fn email(db: &TestDb) {
    let Some(python) = common::python_with("aiosmtpd") else {
        return;
    };
    let mail = tempfile::tempdir().unwrap();
    let (mut sink, port) = smtp_server(
        |port, cmd| {
            cmd.args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(mail.path().join("box"));
        },
        &python,
    )
    .await;
    let dag = r#"
notify:
  - on: [failure]
    email: [ops@example.com, data-eng@example.com]
    message: |
      {{ dag_id }} run {{ run_id }} {{ event_text }}
      .a line that starts with a dot
      {{ run_url }}
tasks:
  boom:
    kind: shell
    retries: 0
    command: "exit 7"
    notify:
      - on: [failure]
        email: [ops@example.com]
"#;
    let e = Site::start_with(
        db,
        dag,
        Extras {
            smtp_port: Some(port),
            ..Extras::default()
        },
    )
    .await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let new = mail.path().join("box/new");
    let read_all = || -> Vec<String> {
        std::fs::read_dir(&new)
            .map(|d| {
                d.filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    eventually("two e-mails", || read_all().len() == 2).await;
    let all = read_all();
    let task_mail = all
        .iter()
        .find(|m| m.contains("To: ops@example.com\n"))
        .unwrap();
    assert!(
        task_mail.contains("Subject: weir: task t.boom failed (try 1) in run"),
        "{task_mail}"
    );
    assert!(
        task_mail.contains("the command exited with code 7"),
        "{task_mail}"
    );
    let run_mail = all
        .iter()
        .find(|m| m.contains("data-eng@example.com"))
        .unwrap();
    assert!(
        run_mail.contains(&format!("Subject: t run {} failed", run.run_id)),
        "{run_mail}"
    );
    assert!(
        run_mail.contains("\n.a line that starts with a dot\n"),
        "dots survive: {run_mail}"
    );
    assert!(run_mail.contains("From: weir@test.example"), "{run_mail}");
    let _ = sink.kill();
    let _ = sink.wait();
    e.stop().await;
}
both_backends!(e_mail_notifications_reach_an_smtp_server, email);

/// An SMTP server (aiosmtpd) that takes mail only after STARTTLS and a
/// login (`weir` / `s3cret`), into a Maildir; prints `ready` when it listens.
const TLS_SINK: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
cert, key, box, port = sys.argv[1:5]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"weir" and data.password == b"s3cret"
    return AuthResult(success=ok)
sink = Controller(Mailbox(box), hostname="127.0.0.1", port=int(port), tls_context=context,
                  require_starttls=True, auth_required=True, authenticator=check)
sink.start()
print("ready", flush=True)
while True:
    time.sleep(60)
"#;

async fn email_over_tls(db: &TestDb) {
    let Some(python) = common::python_with("aiosmtpd") else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/make_test_ca.sh");
    let made = std::process::Command::new("sh")
        .arg(script)
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (mut sink, port) = smtp_server(
        |port, cmd| {
            cmd.args(["-c", TLS_SINK])
                .arg(certs.path().join("leaf.pem"))
                .arg(certs.path().join("leaf.key"))
                .arg(certs.path().join("box"))
                .arg(port.to_string());
        },
        &python,
    )
    .await;
    let dag = "tasks:\n  boom:\n    kind: shell\n    command: 'exit 3'\n    \
               notify: [{on: [failure], email: [ops@example.com]}]\n";
    let tls = || weir_worker::smtp::SmtpOptions {
        tls: Some(weir_worker::smtp::SmtpTls::StartTls),
        username: Some("weir".into()),
        password: Some("s3cret".into()),
        ca_file: Some(certs.path().join("ca.pem")),
        ..Default::default()
    };
    // The right login over STARTTLS, the certificate checked against the CA.
    let e = Site::start_with(
        db,
        dag,
        Extras {
            smtp_port: Some(port),
            smtp: Some(tls()),
            ..Extras::default()
        },
    )
    .await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let new = certs.path().join("box/new");
    let count = || std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0);
    eventually("the e-mail", || count() == 1).await;
    // Recorded as sent once the server accepted it (just after it lands).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = e.sched.store().run_notifications(run.id).await.unwrap();
        if sent.first().is_some_and(|n| n.state == "sent") {
            break;
        }
        assert!(Instant::now() < deadline, "not recorded as sent: {sent:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.stop().await;

    // A certificate no trusted CA signed, and a login over plain text: no
    // attempt succeeds, each recorded as failed, saying why.
    for (options, why) in [
        (
            weir_worker::smtp::SmtpOptions {
                ca_file: None,
                ..tls()
            },
            "invalid peer certificate",
        ),
        (
            weir_worker::smtp::SmtpOptions {
                tls: Some(weir_worker::smtp::SmtpTls::None),
                ..tls()
            },
            "never sends a password in clear",
        ),
    ] {
        let e = Site::start_with(
            db,
            dag,
            Extras {
                smtp_port: Some(port),
                smtp: Some(options),
                ..Extras::default()
            },
        )
        .await;
        let run = e.trigger(serde_json::json!({})).await;
        e.wait(&run).await;
        let failed = || async { e.sched.store().run_notifications(run.id).await.unwrap() };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n = failed().await;
            if n.first().is_some_and(|n| n.state == "failed") {
                let error = n[0].last_error.clone().unwrap_or_default();
                assert!(error.contains(why), "{error}");
                break;
            }
            assert!(Instant::now() < deadline, "not failed: {n:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        e.stop().await;
    }
    assert_eq!(count(), 1, "nothing more was delivered");
    let _ = sink.kill();
    let _ = sink.wait();
}
both_backends!(e_mail_goes_over_starttls_with_a_login, email_over_tls);

const LATE: &str = r#"
deadline: {after: queued, within: 1s}
notify:
  - on: [deadline_missed, success]
    command: echo "$WEIR_NOTIFY_EVENT $WEIR_NOTIFY_RUN_ID" >> ../late.txt
tasks:
  slow:
    kind: shell
    command: sleep 3
"#;

async fn deadlines(db: &TestDb) {
    let e = Site::start(db, LATE, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    let late = e.dir.path().join("late.txt");
    let read = || std::fs::read_to_string(&late).unwrap_or_default();
    eventually("the deadline notification", || {
        read().contains("deadline_missed")
    })
    .await;
    assert_eq!(
        e.ti(&run, "slow").await.state,
        TaskState::Running,
        "it fires while the run goes on"
    );
    assert_eq!(
        e.wait(&run).await.state,
        RunState::Success,
        "a missed deadline changes no outcome"
    );
    eventually("the success notification", || read().contains("success")).await;
    let text = read();
    assert_eq!(
        text.matches("deadline_missed").count(),
        1,
        "once per run: {text}"
    );
    assert!(text.contains(&run.run_id), "{text}");
    e.stop().await;
}
both_backends!(a_missed_deadline_fires_once_per_run, deadlines);

const FLAKY: &str = r#"
tasks:
  flaky:
    kind: shell
    retries: 3
    retry_delay: 1s
    command: |
      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
      echo "attempt $n"
      [ "$n" -ge 3 ]
"#;

async fn retries_until_success(db: &TestDb) {
    let e = Site::start(db, FLAKY, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Success);
    let count = std::fs::read_to_string(e.dir.path().join("dags/count")).unwrap();
    assert_eq!(count.trim(), "3", "the command ran exactly three times");
    let ti = e.ti(&run, "flaky").await;
    assert_eq!(ti.try_number, 3);
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    let states: Vec<TaskState> = tries.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            TaskState::UpForRetry,
            TaskState::UpForRetry,
            TaskState::Success
        ]
    );
    assert_eq!(tries[0].exit_code, Some(1));
    assert!(
        tries[1].start_date >= tries[0].end_date.unwrap() + chrono::Duration::milliseconds(900),
        "retry_delay is respected"
    );
    assert!(e.log(&run, "flaky", 2).contains("attempt 2"));
    e.stop().await;
}
both_backends!(retries_reach_success_on_a_later_try, retries_until_success);

const SLOW: &str = r#"
tasks:
  slow:
    kind: shell
    timeout: 1s
    command: "sleep 60 & echo $! > child.pid; wait"
"#;

fn alive(pid: i32) -> bool {
    // A zombie or missing process counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

async fn timeout_kills_tree(db: &TestDb) {
    let e = Site::start(db, SLOW, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let ti = e.ti(&run, "slow").await;
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    assert!(
        tries[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out after 1s"),
        "{tries:?}"
    );
    let pid: i32 = std::fs::read_to_string(e.dir.path().join("dags/child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the grandchild {pid} outlived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e.stop().await;
}
both_backends!(timeout_kills_the_process_tree, timeout_kills_tree);

async fn template_errors(db: &TestDb) {
    let dag = "tasks:\n  bad:\n    kind: shell\n    command: echo {{ params.nope }}\n";
    let e = Site::start(db, dag, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let ti = e.ti(&run, "bad").await;
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    let err = tries[0].error.clone().unwrap_or_default();
    assert!(err.contains("command: template error on line 1"), "{err}");
    assert!(e.log(&run, "bad", 1).contains("template error"));
    e.stop().await;
}
both_backends!(template_errors_fail_the_try, template_errors);

async fn unwritable_log(db: &TestDb) {
    let e = Site::start(db, "tasks:\n  t: {kind: shell, command: 'echo hi'}\n", &[]).await;
    // The logs folder cannot be made: a file stands where it would be.
    let logs = e.dir.path().join("logs");
    if logs.is_dir() {
        std::fs::remove_dir_all(&logs).unwrap();
    }
    std::fs::write(&logs, "not a folder").unwrap();
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let ti = e.ti(&run, "t").await;
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    let err = tries[0].error.clone().unwrap_or_default();
    assert!(err.contains("cannot write the log"), "{err}");
    assert_eq!(tries[0].exit_code, Some(0), "the command itself ran");
    e.stop().await;
}
both_backends!(a_try_whose_log_cannot_be_written_fails, unwritable_log);

async fn marked_tries_stop(db: &TestDb) {
    let dag = "tasks:\n  long:\n    kind: shell\n    command: 'echo $$ > long.pid; sleep 60'\n";
    let e = Site::start(db, dag, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    e.wait_until(&run, "the task to run", |tis, _| {
        tis[0].state == TaskState::Running
    })
    .await;
    let pid_file = e.dir.path().join("dags/long.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e.sched
        .mark("t", &run.run_id, "long", TaskState::Failed, "ada")
        .await
        .unwrap();
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the marked try's process {pid} kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.stop().await;
}
both_backends!(a_try_marked_by_hand_is_stopped, marked_tries_stop);

#[test]
fn log_paths_are_safe_file_names() {
    let p = weir_core::store::log_path("d", "manual__2026-01-01T00:00:00+00:00", "t", -1, 2);
    assert_eq!(p, "d/manual__2026-01-01T00_00_00+00_00/t/2.log");
    assert!(
        !Path::new(&weir_core::store::log_path("../x", "../../y", "z", -1, 1))
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    );
}

const SENSORS: &str = r#"
tasks:
  wait_file:
    kind: sensor
    file: "incoming/*.csv"
    poke_interval: 1s
    timeout: 1m
  wait_data:
    kind: sensor
    dataset: raw.orders
    poke_interval: 1s
    timeout: 1m
  wait_flag:
    kind: sensor
    sql: "select count(*) from flags where ready"
    connection: probe
    poke_interval: 1s
    timeout: 1m
  after:
    kind: shell
    depends_on: [wait_file, wait_data, wait_flag]
    command: "true"
"#;

async fn sensors(db: &TestDb) {
    // One slot for three sensors: they can only all wait at once if none
    // holds the slot between its pokes.
    let e = Site::start_with(
        db,
        SENSORS,
        Extras {
            slots: Some(1),
            ..Extras::default()
        },
    )
    .await;
    let probe = format!("sqlite://{}/probe.db?mode=rwc", e.dir.path().display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&probe)
        .await
        .unwrap();
    sqlx::query("create table flags (ready boolean)")
        .execute(&mut conn)
        .await
        .unwrap();
    let run = e.trigger(serde_json::json!({})).await;
    e.wait_until(&run, "every sensor to wait", |tis, _| {
        ["wait_file", "wait_data", "wait_flag"].iter().all(|s| {
            tis.iter()
                .any(|t| t.task_id == *s && t.state == TaskState::UpForReschedule)
        })
    })
    .await;
    // All three waited at the same moment above, none of them running: between
    // pokes a sensor holds no slot, and its pokes gave its tries back.
    let waiting = e.ti(&run, "wait_flag").await;
    assert!(
        waiting.try_number >= 1 && waiting.max_tries >= waiting.try_number,
        "{waiting:?}"
    );
    std::fs::create_dir_all(e.dir.path().join("dags/incoming")).unwrap();
    std::fs::write(e.dir.path().join("dags/incoming/orders.csv"), "id\n1\n").unwrap();
    let version = weir_core::store::NewDatasetVersion {
        dataset: "raw.orders".into(),
        ..Default::default()
    };
    e.sched
        .store()
        .record_dataset_version(&version, chrono::Utc::now())
        .await
        .unwrap();
    sqlx::query("insert into flags values (true)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        e.wait(&run).await.state,
        RunState::Success,
        "{:#?}",
        e.tries(&run).await
    );
    let ti = e.ti(&run, "wait_file").await;
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    assert!(tries.len() >= 2, "{tries:?}");
    assert!(
        tries[..tries.len() - 1]
            .iter()
            .all(|t| t.state == TaskState::UpForReschedule)
    );
    assert_eq!(tries.last().unwrap().state, TaskState::Success);
    assert!(
        ti.max_tries >= ti.try_number - 1,
        "pokes do not use up retries"
    );
    e.stop().await;
}
both_backends!(sensors_wait_without_a_slot_and_fire, sensors);

async fn sensor_timeout(db: &TestDb) {
    let dag = "tasks:
  wait:
    kind: sensor
    file: never/*.csv
    poke_interval: 1s
    timeout: 1h
  wait_data:
    kind: sensor
    dataset: raw.never
    poke_interval: 1s
    timeout: 1h
  wait_flag:
    kind: sensor
    sql: select 0
    connection: probe
    poke_interval: 1s
    timeout: 1h
";
    // The clock only moves when the test moves it: an hour passes at once.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let e = Site::start_with(
        db,
        dag,
        Extras {
            clock: Some(clock.clone()),
            ..Extras::default()
        },
    )
    .await;
    let run = e.trigger(serde_json::json!({})).await;
    e.wait_until(&run, "every sensor to wait", |tis, _| {
        ["wait", "wait_data", "wait_flag"].iter().all(|s| {
            tis.iter()
                .any(|t| t.task_id == *s && t.state == TaskState::UpForReschedule)
        })
    })
    .await;
    clock.advance(chrono::Duration::minutes(61));
    assert_eq!(e.wait(&run).await.state, RunState::Failed);
    for sensor in ["wait", "wait_data", "wait_flag"] {
        let ti = e.ti(&run, sensor).await;
        let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
        let last = tries.last().unwrap();
        assert_eq!(last.state, TaskState::Failed, "{sensor}");
        assert!(
            last.error
                .as_deref()
                .unwrap_or_default()
                .contains("not met within 1h"),
            "{sensor}: {last:?}"
        );
    }
    e.stop().await;
}
both_backends!(sensors_time_out, sensor_timeout);

async fn sql_sensor_on_the_state_database(db: &TestDb) {
    // On the PostgreSQL case this queries PostgreSQL; on the SQLite case, SQLite.
    let dag = "tasks:\n  ready:\n    kind: sensor\n    sql: \"select count(*) from dag_runs where run_id = '{{ run_id }}'\"\n    connection: state\n    poke_interval: 1s\n    timeout: 30s\n";
    let e = Site::start(db, dag, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    assert_eq!(
        e.wait(&run).await.state,
        RunState::Success,
        "the run's own row makes the first cell 1"
    );
    e.stop().await;
}
both_backends!(
    sql_sensors_query_sqlite_and_postgres_connections,
    sql_sensor_on_the_state_database
);
