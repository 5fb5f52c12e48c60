//! The `weir dags` commands as a user runs them: real process, real files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("WEIR_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run weir: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_passes_on_the_examples() {
    let out = weir(&["dags", "validate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "");
}

/// Copies `from` into `to`, folders included.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_example_runs_green_out_of_the_box() {
    // The repository's dags/ and weir.toml, in a fresh folder, as a new user has them.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo.join("dags"), &dir.path().join("dags"));
    std::fs::copy(repo.join("weir.toml"), dir.path().join("weir.toml")).unwrap();
    let mut ids: Vec<String> = std::fs::read_dir(repo.join("dags"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect();
    ids.sort();
    assert!(ids.contains(&"orders_daily".to_owned()), "{ids:?}");
    for id in &ids {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["dags", "test", id])
            .current_dir(dir.path())
            .env_remove("WEIR_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{id}: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        // A green first run says nothing alarming (a dataset's first Delta
        // commit once logged the kernel's "no files in log segment").
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("ERROR"), "{id} logged an error: {said}");
        if id == "hello_shell" {
            let text = stdout(&out);
            assert!(
                text.contains("notification success (dag:0): sent"),
                "the example's notification is delivered before the test ends: {text}"
            );
        }
    }
    // The sample orders' deliberate defects are quarantined, not lost.
    let mut logs = String::new();
    let mut folders = vec![dir.path().join("logs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                logs.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    assert!(
        logs.contains("37 row(s) in, 29 clean, 8 quarantined"),
        "{logs}"
    );
    assert!(
        logs.contains("(print_env ran 1 time;") && logs.contains("at 20"),
        "outputs passed between the example's tasks: {logs}"
    );
    assert!(
        logs.contains("hello eu (instance 0), hello us (instance 1), hello ap (instance 2)"),
        "the mapped task's outputs in item order: {logs}"
    );
}

#[test]
fn validate_prints_path_line_col_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yaml"),
        "tasks:\n  a: {kind: shell, command: echo}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "tasks:\n  a:\n    kind: shell\n    comand: echo\n",
    )
    .unwrap();
    let folder = dir.path().to_str().unwrap();
    let out = weir(&["dags", "validate", "--dags-folder", folder]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected = format!(
        "{}:4:5: tasks.a: unknown field `comand`",
        Path::new(folder).join("bad.yaml").display()
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("(did you mean `command`?)"), "{text}");
    assert_eq!(
        text.lines().count(),
        1,
        "the good file has no error: {text}"
    );

    let json = weir(&[
        "dags",
        "validate",
        "--dags-folder",
        folder,
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["dags"], serde_json::json!(["good"]));
    assert_eq!(v["errors"][0]["line"], 4);
    assert_eq!(v["errors"][0]["column"], 5);
}

#[test]
fn list_and_show_in_table_json_and_dot() {
    let list = weir(&["dags", "list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let orders = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "orders_daily")
        .unwrap();
    assert_eq!(orders["schedule"], "0 2 * * *");
    assert_eq!(orders["timezone"], "Europe/London");
    assert_eq!(orders["tasks"], 7);
    assert!(orders["next_run"].is_string(), "{orders}");
    let hello = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "hello_shell")
        .unwrap();
    assert!(hello["next_run"].is_string());

    let table = stdout(&weir(&["dags", "list"]));
    assert!(table.starts_with("DAG "), "{table}");
    assert!(table.contains("hello_shell"), "{table}");

    let show = weir(&["dags", "show", "orders_daily", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let tasks = v["tasks"].as_array().unwrap();
    let pos = |id: &str| tasks.iter().position(|t| t["task_id"] == id).unwrap();
    assert!(pos("extract_orders") < pos("validate_orders"));
    assert!(pos("daily_revenue") < pos("load_revenue"));
    let validate = &tasks[pos("validate_orders")];
    assert_eq!(validate["kind"], "validate");
    // The contract's reference to clean.customers is a dependency too.
    assert_eq!(
        validate["upstream"],
        serde_json::json!(["validate_customers", "extract_orders"])
    );
    assert_eq!(
        validate["writes"],
        serde_json::json!(["clean.orders", "quarantine.orders"])
    );

    let dot = stdout(&weir(&["dags", "show", "orders_daily", "--format", "dot"]));
    assert!(dot.starts_with("digraph \"orders_daily\""), "{dot}");
    assert!(
        dot.contains(
            "\"extract_orders\" -> \"validate_orders\" [style=dashed, label=\"raw.orders\"]"
        ),
        "{dot}"
    );

    let missing = weir(&["dags", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no DAG `nope`"));
}

#[test]
fn a_bad_config_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weir.toml");
    std::fs::write(&cfg, "[core]\ndags_foldr = \"x\"\n").unwrap();
    let out = weir(&["--config", cfg.to_str().unwrap(), "dags", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weir.toml") && err.contains("unknown field `dags_foldr`"),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    // Like `weir dags schema | head -1`: the reader goes away before the output is written.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["dags", "schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}", out.status);
}

/// A Python HTTPS server that appends each POST body to `bodies` and
/// writes the port it listens on to `port`.
const HTTPS_RECEIVER: &str = r#"
import http.server, ssl, sys
cert, key, port_file, bodies = sys.argv[1:5]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(bodies, "ab") as f:
            f.write(body + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

/// Makes a private CA and a certificate it signed for 127.0.0.1 in `dir`
/// (`ca.pem`, `leaf.pem`, `leaf.key`).
fn make_test_ca(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_test_ca.sh");
    let out = Command::new("sh").arg(script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_https_webhook_is_delivered_when_its_certificate_is_trusted_and_refused_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_test_ca(d);
    let python = std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut receiver = Command::new(python)
        .args([
            "-c",
            HTTPS_RECEIVER,
            "leaf.pem",
            "leaf.key",
            "port",
            "bodies",
        ])
        .current_dir(d)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(d.join("port")) {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPS receiver did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::fs::create_dir_all(d.join("dags")).unwrap();
    std::fs::write(
        d.join("dags/tls.yaml"),
        format!(
            "notify:\n  - on: [success]\n    webhook: https://127.0.0.1:{port}/hook\n\
             tasks:\n  t: {{kind: shell, command: 'true'}}\n"
        ),
    )
    .unwrap();
    let test = |trust: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["dags", "test", "tls"])
            .current_dir(d)
            .env_remove("WEIR_CONFIG")
            .env_remove("SSL_CERT_DIR");
        match trust {
            Some(file) => cmd.env("SSL_CERT_FILE", d.join(file)),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        stdout(&cmd.output().unwrap())
    };
    let trusted = test(Some("ca.pem"));
    let untrusted = test(None);
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert!(
        trusted.contains("notification success (dag:0): sent"),
        "{trusted}"
    );
    let bodies = std::fs::read_to_string(d.join("bodies")).unwrap_or_default();
    assert_eq!(bodies.lines().count(), 1, "one delivery: {bodies}");
    assert!(bodies.contains("\"text\""), "{bodies}");
    // Without the CA in the trust store the certificate is refused: the
    // notification fails, saying why.
    assert!(
        untrusted.contains("notification success (dag:0): failed"),
        "{untrusted}"
    );
}
