//! A scheduler and a local worker pool on a test database, running one DAG
//! `t` from a temporary folder: what the engine and data suites share.

#![allow(dead_code)] // each suite uses its own part

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_core::config::RetentionRules;
use weir_core::scheduler::{Clock, ManualClock, Options, Scheduler, SystemClock, Trigger};
use weir_core::store::RunRecord;
use weir_core::testing::TestDb;
use weir_worker::secrets::Secrets;
use weir_worker::{LocalPool, PoolOptions};

/// What a site needs beyond its DAG.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// Files beside the DAG (`in/x.csv`, contents).
    pub files: &'a [(&'a str, &'a str)],
    /// Secrets, by name without the `WEIR_SECRET_` prefix.
    pub secrets: &'a [(&'a str, &'a str)],
    /// Retention rules of the data plane.
    pub retention: RetentionRules,
    /// Task slots of the pool (default 4).
    pub slots: Option<usize>,
    /// A clock the test moves (default: the system clock).
    pub clock: Option<Arc<ManualClock>>,
    /// The port of an SMTP server on 127.0.0.1 for e-mail notifications.
    pub smtp_port: Option<u16>,
    /// Its TLS, login and CA settings (host, port and sender are the test's).
    pub smtp: Option<weir_worker::smtp::SmtpOptions>,
}

/// A running scheduler and worker pool; stops when dropped.
pub struct Site {
    pub sched: Scheduler,
    pub dir: tempfile::TempDir,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Site {
    /// DAG `t` with files beside it.
    pub async fn start(db: &TestDb, dag: &str, files: &[(&str, &str)]) -> Site {
        Site::start_with(
            db,
            dag,
            Extras {
                files,
                ..Extras::default()
            },
        )
        .await
    }

    /// DAG `t` with everything `extras` names. Connections: `warehouse` and
    /// `state` are the test's own database, `probe` a SQLite file of the site.
    pub async fn start_with(db: &TestDb, dag: &str, extras: Extras<'_>) -> Site {
        // WEIR_LOG=debug shows what the scheduler and the pool did.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().unwrap();
        let dags = dir.path().join("dags");
        std::fs::create_dir_all(&dags).unwrap();
        std::fs::write(dags.join("t.yaml"), dag).unwrap();
        for (name, text) in extras.files {
            let p = dags.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let options = Options {
            lease: Duration::from_secs(3),
            tick: Duration::from_millis(100),
            secret_key: weir_core::secret_key::KeySource::Value(
                weir_core::secret_key::SecretKey::generate()
                    .unwrap()
                    .encode(),
            ),
            ..Options::default()
        };
        let clock: Arc<dyn Clock> = match extras.clock.clone() {
            Some(manual) => manual,
            None => Arc::new(SystemClock),
        };
        let sched = Scheduler::new(db.store.clone(), clock, options);
        let report = sched.sync_folder(&dags).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let connections = [
            ("warehouse".to_owned(), db.url.clone()),
            ("state".to_owned(), db.url.clone()),
            (
                "probe".to_owned(),
                format!("sqlite://{}/probe.db?mode=rwc", dir.path().display()),
            ),
        ]
        .into();
        let cancel = CancellationToken::new();
        let pool = LocalPool::start(
            sched.clone(),
            PoolOptions {
                slots: extras.slots.unwrap_or(4),
                logs_dir: dir.path().join("logs"),
                role: "test".into(),
                poll: Duration::from_millis(100),
                connections,
                home: weir_worker::data::home::Home::Local(dir.path().join("data")),
                retention: extras.retention,
                lineage: Default::default(),
            },
            Secrets::from_env(
                extras
                    .secrets
                    .iter()
                    .map(|(k, v)| (format!("WEIR_SECRET_{k}"), (*v).to_owned())),
            ),
        )
        .await
        .unwrap();
        // Notifications retried quickly: the tests wait for them.
        let notifier = weir_worker::notify::Notifier::new(
            sched.clone(),
            weir_worker::notify::NotifierOptions {
                first_retry: Duration::from_millis(100),
                attempts: 3,
                poll: Duration::from_millis(50),
                smtp: weir_worker::smtp::SmtpOptions {
                    host: "127.0.0.1".into(),
                    port: extras.smtp_port.unwrap_or(25),
                    from: "weir@test.example".into(),
                    ..extras.smtp.clone().unwrap_or_default()
                },
                ..weir_worker::notify::NotifierOptions::new(
                    dir.path().join("logs"),
                    "http://weir.test".into(),
                )
            },
            Arc::new(Secrets::default()),
        );
        let tasks = vec![
            tokio::spawn(pool.run(cancel.clone())),
            tokio::spawn(sched.clone().run(cancel.clone())),
            tokio::spawn(notifier.run(cancel.clone())),
        ];
        Site {
            sched,
            dir,
            cancel,
            tasks,
        }
    }

    /// Stops the scheduler and workers and waits until they have ended, so
    /// that a site started next on the same store is the only one claiming
    /// its tasks.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            task.await.unwrap();
        }
    }

    /// Triggers a run of `t` with `conf`.
    pub async fn trigger(&self, conf: serde_json::Value) -> RunRecord {
        self.sched
            .trigger(
                "t",
                Trigger {
                    conf: Some(conf),
                    actor: "test".into(),
                    ..Trigger::default()
                },
            )
            .await
            .unwrap()
    }

    /// The run once it has ended.
    pub async fn wait(&self, run: &RunRecord) -> RunRecord {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.sched.store().get_run_by_pk(run.id).await.unwrap();
            if r.state.is_finished() {
                return r;
            }
            assert!(Instant::now() < deadline, "the run did not end: {r:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every try of the run: task, try, state and error, for failure messages.
    pub async fn tries(&self, run: &RunRecord) -> Vec<String> {
        let mut out = Vec::new();
        for ti in self
            .sched
            .store()
            .list_task_instances(run.id)
            .await
            .unwrap()
        {
            for t in self.sched.store().list_tries(&ti.id).await.unwrap() {
                out.push(format!(
                    "{} try {} {}: {}",
                    ti.task_id,
                    t.try_number,
                    t.state,
                    t.error.unwrap_or_default()
                ));
            }
        }
        out
    }

    /// A try's log ("" if it has none yet).
    pub fn log(&self, run: &RunRecord, task: &str, try_number: i64) -> String {
        let path = weir_core::store::log_path("t", &run.run_id, task, -1, try_number);
        std::fs::read_to_string(self.dir.path().join("logs").join(path)).unwrap_or_default()
    }
}

/// A Python (`WEIR_TEST_PYTHON`, else `python3`) that can import `module`;
/// `None` with a printed notice when it cannot, which under `CI` fails.
pub fn python_with(module: &str) -> Option<String> {
    let python = std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{python} has no {module} (set WEIR_TEST_PYTHON)"
    );
    eprintln!("skipping: {python} has no {module} (pip install {module}, or set WEIR_TEST_PYTHON)");
    None
}
