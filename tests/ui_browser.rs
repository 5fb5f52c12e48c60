//! The web UI in a real browser: `weir standalone` with the example DAGs,
//! driven by headless Chromium through Selenium (`tests/ui/browser_check.py`).
//! Needs Debian's `chromium` and `chromium-driver` and a Python with
//! `selenium` (`WEIR_TEST_PYTHON`); `.ci/run` installs them. Elsewhere the
//! test is skipped with a notice when they are missing; under `CI=true` it
//! fails instead. Screenshots of every page land in
//! `<target>/tmp/ui-browser/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A DAG whose task prints slowly, then fails: its log is followed live.
const UI_CHECK: &str = r#"
dag: ui_check
schedule: manual
tasks:
  slow_fail:
    kind: shell
    retries: 0
    command: "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.7; done; exit 1"
"#;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    for (var, default) in [
        ("WEIR_TEST_CHROMIUM", "/usr/bin/chromium"),
        ("WEIR_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ] {
        let tool = std::env::var(var).unwrap_or_else(|_| default.to_owned());
        if !Path::new(&tool).exists() {
            return Some(format!(
                "{tool} is missing (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let ok = Command::new(python())
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| format!("{} has no selenium (pip install selenium)", python()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_ui_in_a_real_browser() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").is_err(),
            "the browser test cannot run in CI: {why}"
        );
        eprintln!("skipping the browser test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("dags"), &dir.path().join("dags"));
    std::fs::write(dir.path().join("dags/ui_check.yaml"), UI_CHECK).unwrap();
    std::fs::write(
        dir.path().join("weir.toml"),
        "[connections.warehouse]\nurl = \"sqlite://warehouse.db\"\n",
    )
    .unwrap();
    let out = dir.path().join("standalone.out");
    let err = dir.path().join("standalone.log");
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["standalone", "--bind", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("WEIR_DATABASE_URL")
            .env_remove("WEIR_CONFIG")
            .env_remove("WEIR_TEST_PYTHON")
            .env_remove("WEIR_TEST_DATABASE_URL")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let base = loop {
        let log = std::fs::read_to_string(&err).unwrap_or_default();
        if let Some(at) = log.find("listening on http://") {
            let rest = &log[at + "listening on ".len()..];
            break rest.split([',', ' ', '\n']).next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "standalone did not start: {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = std::fs::read_to_string(&out).unwrap();
    let password = printed
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains(' '))
        .expect("the admin password is printed")
        .to_owned();
    let shots: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    let _ = std::fs::remove_dir_all(&shots);
    let script = root.join("tests/ui/browser_check.py");
    let report = dir.path().join("browser.log");
    let mut child = Command::new(python())
        .arg(&script)
        .args([&base, &password])
        .arg(&shots)
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("browser.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser check did not finish in ten minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        status.success(),
        "the browser check failed:\n{}{}\nserver log:\n{}",
        read("browser.log"),
        read("browser.err"),
        read("standalone.log")
    );
    eprintln!("screenshots in {}", shots.display());
}
