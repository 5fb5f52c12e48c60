//! The scheduler on both backends, driven by a test worker that claims task
//! instances and reports the outcome a case chooses. Time is a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use weir_core::both_backends;
use weir_core::scheduler::{ClearSpec, ManualClock, Options, Outcome, Report, Scheduler, Trigger};
use weir_core::state::{RunState, TaskState};
use weir_core::store::{Claim, RunRecord};
use weir_core::testing::TestDb;

struct Env {
    sched: Scheduler,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

async fn env(db: &TestDb, files: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let sched = Scheduler::new(db.store.clone(), clock.clone(), Options::default());
    let report = sched.sync_folder(dir.path()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Env { sched, clock, dir }
}

/// Clears `tasks` (and with `downstream`, what follows them), whatever their state.
fn spec(tasks: &[&str], downstream: bool) -> ClearSpec {
    ClearSpec {
        task_ids: tasks.iter().map(|t| (*t).to_owned()).collect(),
        downstream,
        ..ClearSpec::default()
    }
}

fn held(claim: &weir_core::store::Claim) -> weir_core::store::HeldTry {
    weir_core::store::HeldTry::of(claim)
}

fn trigger() -> Trigger {
    Trigger {
        actor: "test".into(),
        ..Default::default()
    }
}

fn named(run_id: &str) -> Trigger {
    Trigger {
        run_id: Some(run_id.into()),
        ..trigger()
    }
}

/// A report that `claim` succeeded (exit code 0).
fn succeeded(claim: Claim) -> Report {
    Report {
        claim,
        ended: weir_core::scheduler::Ended {
            exit_code: Some(0),
            ..weir_core::scheduler::Ended::success()
        },
    }
}

/// Claims and finishes work until nothing is left to do now; returns every claim made.
async fn drive(s: &Scheduler, outcome: impl Fn(&Claim) -> Outcome) -> Vec<Claim> {
    let mut all = Vec::new();
    for _ in 0..200 {
        s.tick().await.unwrap();
        let claims = s
            .claim("test-worker", "localhost", 100, None)
            .await
            .unwrap();
        if claims.is_empty() {
            return all;
        }
        for c in claims {
            let o = outcome(&c);
            let error = (o == Outcome::Failed).then(|| "boom".to_owned());
            s.finish(&Report {
                claim: c.clone(),
                ended: weir_core::scheduler::Ended {
                    outcome: o,
                    exit_code: None,
                    error,
                    pid: None,
                    output: None,
                },
            })
            .await
            .unwrap();
            all.push(c);
        }
    }
    panic!("the run did not settle");
}

async fn states(s: &Scheduler, run: &RunRecord) -> HashMap<String, TaskState> {
    s.store()
        .list_task_instances(run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.task_id, t.state))
        .collect()
}

async fn run_state(s: &Scheduler, run: &RunRecord) -> RunState {
    s.store().get_run_by_pk(run.id).await.unwrap().state
}

const RULES: &str = r#"
tasks:
  up_ok: {kind: shell, command: "true"}
  up_fail: {kind: shell, command: "false"}
  all_success: {kind: shell, command: "true", depends_on: [up_ok, up_fail]}
  after_upstream_failed: {kind: shell, command: "true", depends_on: [all_success]}
  all_done: {kind: shell, command: "true", depends_on: [up_ok, up_fail], trigger_rule: all_done}
  all_failed: {kind: shell, command: "true", depends_on: [up_fail], trigger_rule: all_failed}
  all_failed_skips: {kind: shell, command: "true", depends_on: [up_ok], trigger_rule: all_failed}
  after_skipped: {kind: shell, command: "true", depends_on: [all_failed_skips]}
  none_failed_after_skip: {kind: shell, command: "true", depends_on: [all_failed_skips], trigger_rule: none_failed}
  one_success: {kind: shell, command: "true", depends_on: [up_ok, up_fail], trigger_rule: one_success}
  one_success_none: {kind: shell, command: "true", depends_on: [up_fail], trigger_rule: one_success}
  one_failed: {kind: shell, command: "true", depends_on: [up_ok, up_fail], trigger_rule: one_failed}
  one_failed_none: {kind: shell, command: "true", depends_on: [up_ok], trigger_rule: one_failed}
  none_failed: {kind: shell, command: "true", depends_on: [up_ok, up_fail], trigger_rule: none_failed}
  always: {kind: shell, command: "true", depends_on: [up_fail], trigger_rule: always}
"#;

async fn trigger_rules(db: &TestDb) {
    let e = env(db, &[("rules.yaml", RULES)]).await;
    let run = e.sched.trigger("rules", trigger()).await.unwrap();
    drive(&e.sched, |c| {
        if c.task_id == "up_fail" {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    })
    .await;
    let got = states(&e.sched, &run).await;
    use TaskState::*;
    let want = [
        ("up_ok", Success),
        ("up_fail", Failed),
        ("all_success", UpstreamFailed),
        ("after_upstream_failed", UpstreamFailed),
        ("all_done", Success),
        ("all_failed", Success),
        ("all_failed_skips", Skipped),
        ("after_skipped", Skipped),
        ("none_failed_after_skip", Success),
        ("one_success", Success),
        ("one_success_none", UpstreamFailed),
        ("one_failed", Success),
        ("one_failed_none", Skipped),
        ("none_failed", UpstreamFailed),
        ("always", Success),
    ];
    for (task, state) in want {
        assert_eq!(got[task], state, "{task}");
    }
    assert_eq!(
        run_state(&e.sched, &run).await,
        RunState::Failed,
        "a failed task fails the run even after all_done clean-up"
    );
}
both_backends!(trigger_rules_resolve_like_airflow, trigger_rules);

/// Twelve upstream tasks (`u11` fails) and the rules that wait on all of
/// them: wider than the planner reads as rows, so their states are counted.
fn wide_rules() -> String {
    let ups: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let mut y = String::from("tasks:\n");
    for u in &ups {
        let command = if u == "u11" { "false" } else { "true" };
        y.push_str(&format!("  {u}: {{kind: shell, command: \"{command}\"}}\n"));
    }
    let all = ups.join(", ");
    let ok = ups[..11].join(", ");
    for (task, rule, deps) in [
        ("all_success", "all_success", &all),
        ("all_done", "all_done", &all),
        ("none_failed", "none_failed", &all),
        ("one_failed", "one_failed", &all),
        ("ok_all_success", "all_success", &ok),
    ] {
        y.push_str(&format!(
            "  {task}: {{kind: shell, command: \"true\", trigger_rule: {rule}, depends_on: [{deps}]}}\n"
        ));
    }
    y
}

async fn wide_trigger_rules(db: &TestDb) {
    let e = env(db, &[("wide.yaml", &wide_rules())]).await;
    let run = e.sched.trigger("wide", trigger()).await.unwrap();
    let claims = drive(&e.sched, |c| {
        if c.task_id == "u11" {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    })
    .await;
    let got = states(&e.sched, &run).await;
    use TaskState::*;
    for (task, state) in [
        ("all_success", UpstreamFailed),
        ("all_done", Success),
        ("none_failed", UpstreamFailed),
        ("one_failed", Success),
        ("ok_all_success", Success),
    ] {
        assert_eq!(got[task], state, "{task}");
    }
    for task in ["all_done", "one_failed", "ok_all_success"] {
        let ran = claims.iter().filter(|c| c.task_id == task).count();
        assert_eq!(ran, 1, "{task} ran once");
    }
    assert_eq!(run_state(&e.sched, &run).await, RunState::Failed);
}
both_backends!(wide_fan_ins_resolve_on_counted_states, wide_trigger_rules);

const FLAKY: &str = r#"
tasks:
  flaky:
    kind: shell
    command: "true"
    retries: 3
    retry_delay: 10s
    retry_backoff: exponential
    max_retry_delay: 15s
  after: {kind: shell, command: "true", depends_on: [flaky]}
"#;

async fn retries(db: &TestDb) {
    let e = env(db, &[("flaky.yaml", FLAKY)]).await;
    let run = e.sched.trigger("flaky", trigger()).await.unwrap();
    let fail_twice = |c: &Claim| {
        if c.task_id == "flaky" && c.try_number < 3 {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    };
    drive(&e.sched, fail_twice).await;
    let ti = |name: &'static str| {
        let s = e.sched.clone();
        let run = run.clone();
        async move {
            s.store()
                .list_task_instances(run.id)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.task_id == name)
                .unwrap()
        }
    };
    let flaky = ti("flaky").await;
    assert_eq!((flaky.state, flaky.try_number), (TaskState::UpForRetry, 1));
    let wait = flaky.next_try_at.unwrap() - e.sched.now();
    assert!(
        wait >= Duration::seconds(5) && wait <= Duration::seconds(10),
        "try 2 waits 10s with jitter: {wait}"
    );
    // Not due yet: nothing runs.
    assert!(drive(&e.sched, fail_twice).await.is_empty());
    e.clock.advance(Duration::seconds(11));
    drive(&e.sched, fail_twice).await;
    let flaky = ti("flaky").await;
    assert_eq!((flaky.state, flaky.try_number), (TaskState::UpForRetry, 2));
    let wait = flaky.next_try_at.unwrap() - e.sched.now();
    assert!(
        wait >= Duration::milliseconds(7500) && wait <= Duration::seconds(15),
        "try 3 waits min(20s, 15s) with jitter: {wait}"
    );
    e.clock.advance(Duration::seconds(16));
    drive(&e.sched, fail_twice).await;
    assert_eq!(ti("flaky").await.state, TaskState::Success);
    assert_eq!(ti("after").await.state, TaskState::Success);
    assert_eq!(run_state(&e.sched, &run).await, RunState::Success);
    let tries = e.sched.store().list_tries(&flaky.id).await.unwrap();
    let history: Vec<(i64, TaskState)> = tries.iter().map(|t| (t.try_number, t.state)).collect();
    assert_eq!(
        history,
        vec![
            (1, TaskState::UpForRetry),
            (2, TaskState::UpForRetry),
            (3, TaskState::Success)
        ]
    );
    assert_eq!(tries[0].error.as_deref(), Some("boom"));
    assert!(
        tries
            .iter()
            .all(|t| t.end_date.is_some() && t.duration().is_some())
    );
    assert_queue_follows_states(db).await;
}
both_backends!(retries_back_off_and_keep_history, retries);

const CHAIN: &str = r#"
tasks:
  a: {kind: shell, command: "true"}
  b: {kind: shell, command: "true", depends_on: [a]}
  c: {kind: shell, command: "true", depends_on: [b]}
"#;

async fn clear_and_mark(db: &TestDb) {
    let e = env(db, &[("chain.yaml", CHAIN)]).await;
    let run = e.sched.trigger("chain", trigger()).await.unwrap();
    let first_c_fails = |c: &Claim| {
        if c.task_id == "c" && c.try_number == 1 {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    };
    drive(&e.sched, first_c_fails).await;
    assert_eq!(run_state(&e.sched, &run).await, RunState::Failed);
    let cleared = e
        .sched
        .clear("chain", &run.run_id, &spec(&["b"], true), "ada")
        .await
        .unwrap();
    assert_eq!(cleared, vec!["b".to_owned(), "c".to_owned()]);
    assert_eq!(
        run_state(&e.sched, &run).await,
        RunState::Running,
        "clearing reopens the run"
    );
    drive(&e.sched, first_c_fails).await;
    assert_eq!(run_state(&e.sched, &run).await, RunState::Success);
    let tis = e.sched.store().list_task_instances(run.id).await.unwrap();
    let tries: HashMap<&str, i64> = tis
        .iter()
        .map(|t| (t.task_id.as_str(), t.try_number))
        .collect();
    assert_eq!(
        (tries["a"], tries["b"], tries["c"]),
        (1, 2, 2),
        "only cleared tasks ran again"
    );

    // Mark c failed by hand, then success: the run follows, and both are audited.
    e.sched
        .mark("chain", &run.run_id, "c", TaskState::Failed, "ada")
        .await
        .unwrap();
    assert_eq!(run_state(&e.sched, &run).await, RunState::Failed);
    e.sched
        .mark("chain", &run.run_id, "c", TaskState::Success, "grace")
        .await
        .unwrap();
    assert_eq!(run_state(&e.sched, &run).await, RunState::Success);
    let audit = e
        .sched
        .store()
        .list_audit(&weir_core::store::AuditFilter::default(), 10, 0)
        .await
        .unwrap()
        .0;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(
        &actions[..3],
        &[
            ("grace", "mark_success"),
            ("ada", "mark_failed"),
            ("ada", "clear")
        ]
    );
    // Illegal requests are refused.
    assert!(
        e.sched
            .mark("chain", &run.run_id, "c", TaskState::Running, "ada")
            .await
            .is_err()
    );
    assert!(
        e.sched
            .clear("chain", &run.run_id, &spec(&["nope"], false), "ada")
            .await
            .is_err()
    );
    assert_queue_follows_states(db).await;
}
both_backends!(clear_reruns_and_mark_is_audited, clear_and_mark);

async fn pinned_version(db: &TestDb) {
    let e = env(db, &[("pin.yaml", "tasks:\n  a: {kind: shell, command: 'true'}\n  b: {kind: shell, command: 'true', depends_on: [a]}\n")]).await;
    let run = e.sched.trigger("pin", named("before")).await.unwrap();
    let first = e.sched.claim("w", "h", 10, None).await.unwrap();
    assert_eq!(first.len(), 1);
    // The file changes while the run is in flight.
    std::fs::write(
        e.dir.path().join("pin.yaml"),
        "tasks:\n  a: {kind: shell, command: 'true'}\n  c: {kind: shell, command: 'true', depends_on: [a]}\n",
    )
    .unwrap();
    e.sched.sync_folder(e.dir.path()).await.unwrap();
    for c in first {
        e.sched.finish(&succeeded(c)).await.unwrap();
    }
    drive(&e.sched, |_| Outcome::Success).await;
    let got = states(&e.sched, &run).await;
    assert_eq!(
        got.keys().collect::<std::collections::BTreeSet<_>>(),
        ["a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
    assert_eq!(run_state(&e.sched, &run).await, RunState::Success);
    let next = e.sched.trigger("pin", named("after")).await.unwrap();
    assert_ne!(next.version_id, run.version_id);
    assert!(
        states(&e.sched, &next).await.contains_key("c"),
        "new runs use the new version"
    );
}
both_backends!(runs_are_pinned_to_their_version, pinned_version);

async fn max_active_runs(db: &TestDb) {
    let e = env(
        db,
        &[(
            "one.yaml",
            "max_active_runs: 1\ntasks:\n  a: {kind: shell, command: 'true'}\n",
        )],
    )
    .await;
    let first = e.sched.trigger("one", named("first")).await.unwrap();
    let second = e.sched.trigger("one", named("second")).await.unwrap();
    assert_eq!(
        (first.state, second.state),
        (RunState::Running, RunState::Queued)
    );
    let dup = e.sched.trigger("one", named("first")).await;
    assert!(dup.is_err(), "a run id is used once");
    drive(&e.sched, |_| Outcome::Success).await;
    assert_eq!(run_state(&e.sched, &first).await, RunState::Success);
    assert_eq!(
        run_state(&e.sched, &second).await,
        RunState::Success,
        "the queued run started when the first ended"
    );
}
both_backends!(max_active_runs_queues_runs, max_active_runs);

async fn lease_expiry(db: &TestDb) {
    let e = env(
        db,
        &[(
            "z.yaml",
            "tasks:\n  a: {kind: shell, command: 'true', retries: 1, retry_delay: 5s}\n",
        )],
    )
    .await;
    let run = e.sched.trigger("z", trigger()).await.unwrap();
    let claims = e.sched.claim("w", "h", 10, None).await.unwrap();
    assert_eq!(claims.len(), 1);
    // The worker dies: no heartbeat, no report.
    e.clock.advance(Duration::seconds(31));
    e.sched.tick().await.unwrap();
    let ti = e
        .sched
        .store()
        .list_task_instances(run.id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        ti.state,
        TaskState::UpForRetry,
        "a lost try goes through the retry rules"
    );
    let tries = e.sched.store().list_tries(&ti.id).await.unwrap();
    assert!(
        tries[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("lease expired")
    );
    e.clock.advance(Duration::seconds(6));
    let again = drive(&e.sched, |_| Outcome::Success).await;
    assert_eq!(
        again.iter().map(|c| c.try_number).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(run_state(&e.sched, &run).await, RunState::Success);
    assert_queue_follows_states(db).await;
}
both_backends!(expired_leases_are_retried, lease_expiry);

async fn run_timeout(db: &TestDb) {
    let e = env(db, &[("slow.yaml", "dagrun_timeout: 1m\ntasks:\n  a: {kind: shell, command: 'true'}\n  b: {kind: shell, command: 'true', depends_on: [a]}\n")]).await;
    let run = e.sched.trigger("slow", trigger()).await.unwrap();
    let claims = e.sched.claim("w", "h", 10, None).await.unwrap();
    // The worker keeps its lease (30 s) while the run times out (1 min).
    for _ in 0..2 {
        e.clock.advance(Duration::seconds(29));
        let lost = e.sched.heartbeat(&[held(&claims[0])]).await.unwrap();
        assert!(lost.is_empty());
    }
    e.clock.advance(Duration::seconds(3));
    e.sched.tick().await.unwrap();
    assert_eq!(run_state(&e.sched, &run).await, RunState::Failed);
    let got = states(&e.sched, &run).await;
    assert_eq!(
        (got["a"], got["b"]),
        (TaskState::Failed, TaskState::Skipped)
    );
    // The worker's next heartbeat learns its try must stop.
    let lost = e.sched.heartbeat(&[held(&claims[0])]).await.unwrap();
    assert_eq!(lost.len(), 1);
    // A late report of the stopped try changes nothing.
    let late = e.sched.finish(&succeeded(claims[0].clone())).await;
    assert!(late.is_err());
    assert_eq!(run_state(&e.sched, &run).await, RunState::Failed);
}
both_backends!(dagrun_timeout_fails_the_run, run_timeout);

async fn refuses_bad_requests(db: &TestDb) {
    let e = env(
        db,
        &[(
            "p.yaml",
            "tasks:\n  a: {kind: shell, command: 'true', pool: nope}\n",
        )],
    )
    .await;
    let err = e
        .sched
        .trigger("p", trigger())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool `nope`, which does not exist"), "{err}");
    let err = e
        .sched
        .trigger("missing", trigger())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");
    let bad_conf = Trigger {
        conf: Some(serde_json::json!([1])),
        ..trigger()
    };
    assert!(e.sched.trigger("p", bad_conf).await.is_err());
}
both_backends!(bad_triggers_are_refused, refuses_bad_requests);

/// Runs one statement on the test database behind the store's back.
async fn sabotage(db: &TestDb, sql: &'static str) {
    use sqlx::Connection;
    if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

/// The invariant of `task_queue`: it holds exactly the task instances in
/// flight, in their state.
async fn assert_queue_follows_states(db: &TestDb) {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM task_instances ti LEFT JOIN task_queue q ON q.ti_id = ti.id \
               WHERE (ti.state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')) \
               <> (q.ti_id IS NOT NULL AND q.state = ti.state AND q.queue = ti.queue)";
    let wrong: i64 = if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    };
    assert_eq!(
        wrong, 0,
        "task instances whose queue row disagrees with their state"
    );
}

async fn database_failures(db: &TestDb) {
    let e = env(
        db,
        &[(
            "f.yaml",
            "tasks:\n  a: {kind: shell, command: 'true'}\n  b: {kind: shell, command: 'true', depends_on: [a]}\n",
        )],
    )
    .await;
    e.sched.trigger("f", trigger()).await.unwrap();
    let claim = e.sched.claim("w", "h", 1, None).await.unwrap().remove(0);
    let report = succeeded(claim);
    // The database breaks under the batch: the report itself applies, but
    // queueing `b` after it (the batch's shared step) cannot read the pools.
    sabotage(db, "ALTER TABLE pools RENAME TO pools_gone").await;
    let err = e.sched.finish(&report).await.unwrap_err();
    match &err {
        weir_core::scheduler::Error::Batch(inner) => assert!(
            matches!(
                **inner,
                weir_core::store::Error::Database(_) | weir_core::store::Error::Sqlite(_)
            ),
            "{inner:?}"
        ),
        other => panic!("a database failure must stay one, not {other:?}"),
    }
    // Nothing of the batch was kept: repaired, the same report applies.
    sabotage(db, "ALTER TABLE pools_gone RENAME TO pools").await;
    e.sched.finish(&report).await.unwrap();
}
both_backends!(a_database_failure_is_not_a_conflict, database_failures);

async fn wakes(db: &TestDb) {
    let e = env(
        db,
        &[(
            "w.yaml",
            "tasks:\n  a: {kind: shell, command: 'true'}\n  b: {kind: shell, command: 'true', depends_on: [a]}\n  c: {kind: shell, command: 'true', depends_on: [b]}\n  d: {kind: shell, command: 'true', depends_on: [b]}\n",
        )],
    )
    .await;
    e.sched.trigger("w", trigger()).await.unwrap();
    let a = e.sched.claim("w", "h", 1, None).await.unwrap().remove(0);
    let slot = || weir_core::scheduler::Slot {
        worker: "w",
        hostname: "h",
        queues: None,
    };
    let mut signal = e.sched.work_signal();
    signal.borrow_and_update();
    // `b` is queued and taken by the slot that ran `a`: nobody else is woken.
    let b = e
        .sched
        .finish_and_claim(&succeeded(a), Some(slot()))
        .await
        .unwrap()
        .expect("the slot takes b");
    assert_eq!(b.task_id, "b");
    assert!(!signal.has_changed().unwrap(), "the chain woke idle slots");
    // `c` and `d` are queued, the slot takes one: the other wakes the idle.
    let next = e
        .sched
        .finish_and_claim(&succeeded(b), Some(slot()))
        .await
        .unwrap()
        .expect("the slot takes c or d");
    assert!(["c", "d"].contains(&next.task_id.as_str()));
    assert!(
        signal.has_changed().unwrap(),
        "work left queued woke nobody"
    );
    let other = e.sched.claim("w2", "h", 5, None).await.unwrap();
    assert_eq!(other.len(), 1, "{other:?}");
    assert_ne!(other[0].task_id, next.task_id);
}
both_backends!(idle_slots_wake_only_for_work_left_queued, wakes);

fn remote_life(name: &str, queues: &[&str]) -> weir_core::workers::NewWorker {
    weir_core::workers::NewWorker {
        name: name.into(),
        hostname: "elsewhere".into(),
        pid: 1,
        process_token: String::new(),
        version: "0.1.0".into(),
        queues: Some(queues.iter().map(|q| (*q).to_owned()).collect()),
        slots: 2,
        remote: true,
    }
}

fn report_of(
    worker: &str,
    t: &weir_core::protocol::ClaimedTry,
    outcome: weir_core::protocol::Outcome,
) -> weir_core::protocol::TryReport {
    weir_core::protocol::TryReport {
        worker: worker.into(),
        lease: t.lease(),
        outcome,
        reschedule_at: None,
        exit_code: Some(0),
        error: None,
        pid: None,
        output: None,
        claim_next: None,
    }
}

async fn remote_protocol(db: &TestDb) {
    use weir_core::protocol::{CatalogCall, CatalogRequest, Outcome as Wire};
    use weir_core::scheduler::remote::Fenced;
    let e = env(
        db,
        &[(
            "q.yaml",
            "defaults: {retries: 1, retry_delay: 1s}\ntasks:\n  cpu: {kind: shell, command: 'true'}\n  gpu: {kind: shell, command: 'true', queue: gpu}\n  after: {kind: shell, command: 'true', depends_on: [cpu]}\n",
        )],
    )
    .await;
    let s = &e.sched;
    s.register_worker(&remote_life("w-cpu", &["default"]))
        .await
        .unwrap();
    s.register_worker(&remote_life("w-gpu", &["gpu"]))
        .await
        .unwrap();
    let run = s.trigger("q", trigger()).await.unwrap();
    let default = vec!["default".to_owned()];
    let gpu = vec!["gpu".to_owned()];

    // Each worker gets only its queues' work.
    let cpu = s.claim_remote("w-cpu", &default, 10).await.unwrap().tries;
    assert_eq!(
        cpu.iter()
            .map(|t| t.claim.task_id.as_str())
            .collect::<Vec<_>>(),
        ["cpu"]
    );
    assert_eq!(cpu[0].claim.queue, "default");
    assert!(!cpu[0].claim.lease_id.is_empty());
    assert_eq!(cpu[0].run.run_id, run.run_id);

    // A report naming another lease is refused; the right one is recorded
    // once, and sent again it is answered as a repeat.
    let mut forged = report_of("w-cpu", &cpu[0], Wire::Success);
    forged.lease.lease_id = "not-the-lease".into();
    assert!(matches!(
        s.report_remote(&forged).await,
        Err(Fenced::MovedOn { .. })
    ));
    let mut good = report_of("w-cpu", &cpu[0], Wire::Success);
    good.claim_next = Some(default.clone());
    let (recorded, next) = s.report_remote(&good).await.unwrap();
    assert!(recorded);
    // The freed slot took the task that became ready, in the same transaction.
    assert_eq!(
        next.as_ref().map(|t| t.claim.task_id.as_str()),
        Some("after")
    );
    let (recorded, again) = s.report_remote(&good).await.unwrap();
    assert!(!recorded && again.is_none());

    // Catalog calls under a live lease record versions made by the try
    // that holds it; under a lapsed one (below) they record nothing.
    let call = |lease: weir_core::protocol::Lease| CatalogRequest {
        lease,
        call: CatalogCall::RecordDatasetVersion {
            version: weir_core::store::NewDatasetVersion {
                dataset: "raw.things".into(),
                rows: Some(3),
                ..Default::default()
            },
        },
    };
    let after = next.unwrap();
    let v = s.catalog_remote(call(after.lease())).await.unwrap();
    assert_eq!(v["dataset"], "raw.things");
    assert_eq!(v["task_id"], "after");
    assert_eq!(v["try_number"], 1);

    // The GPU worker's lease lapses: its heartbeat is told to kill the try,
    // its log pieces and report are refused, and the try is retried.
    let g = s
        .claim_remote("w-gpu", &gpu, 10)
        .await
        .unwrap()
        .tries
        .remove(0);
    assert_eq!(s.push_log(&g.lease(), 0, b"line 1\n").await.unwrap(), 7);
    assert_eq!(
        s.push_log(&g.lease(), 0, b"line 1\n").await.unwrap(),
        7,
        "a repeat adds nothing"
    );
    assert!(matches!(
        s.push_log(&g.lease(), 20, b"gap\n").await,
        Err(Fenced::Failed(_))
    ));
    e.clock.advance(Duration::seconds(31));
    let beat = s.heartbeat_remote("w-gpu", &[g.lease()]).await.unwrap();
    assert_eq!(beat.kill, vec![g.lease()]);
    assert!(matches!(
        s.push_log(&g.lease(), 7, b"late\n").await,
        Err(Fenced::MovedOn { .. })
    ));
    assert!(matches!(
        s.report_remote(&report_of("w-gpu", &g, Wire::Success))
            .await,
        Err(Fenced::MovedOn { .. })
    ));
    let pushed = s.store().read_log(&g.claim.ti_id, 1, 0).await.unwrap();
    assert_eq!(pushed, Some((b"line 1\n".to_vec(), 7)));
    s.tick().await.unwrap();
    assert_eq!(states(s, &run).await["gpu"], TaskState::UpForRetry);
    assert!(matches!(
        s.catalog_remote(call(g.lease())).await,
        Err(Fenced::MovedOn { .. })
    ));

    // A drained worker is told so and claims nothing more.
    s.drain_worker("w-cpu", "ops").await.unwrap();
    e.clock.advance(Duration::seconds(61));
    assert!(s.heartbeat_remote("w-cpu", &[]).await.unwrap().drain);
    s.tick().await.unwrap();
    let drained = s.claim_remote("w-cpu", &gpu, 10).await.unwrap();
    assert!(drained.tries.is_empty() && drained.drain);
    let view = s.workers_view().await.unwrap();
    let standing = |name: &str| {
        view.iter()
            .find(|v| v.life.name == name)
            .map(|v| v.standing.as_str())
    };
    assert_eq!(standing("w-cpu"), Some("draining"));
    assert_eq!(
        standing("w-gpu"),
        Some("lost"),
        "unheard of for longer than a lease"
    );
    assert_queue_follows_states(db).await;
}
both_backends!(remote_workers_are_fenced_by_their_leases, remote_protocol);
