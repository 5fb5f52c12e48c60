//! Time-scheduled runs on both backends, with a manual clock: data intervals,
//! catchup across downtime, end dates, pausing, daylight saving, and two
//! schedulers sharing one database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;

use chrono::{DateTime, Utc};
use weir_core::both_backends;
use weir_core::scheduler::{Clock, ManualClock, Options, Outcome, Report, Scheduler};
use weir_core::state::RunType;
use weir_core::store::{RunFilter, RunRecord};
use weir_core::testing::TestDb;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Env {
    sched: Scheduler,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn env(db: &TestDb, dag: &str, now: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), dag).unwrap();
    let clock = Arc::new(ManualClock::new(utc(now)));
    let sched = Scheduler::new(db.store.clone(), clock.clone(), Options::default());
    let report = sched.sync_folder(dir.path()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Env {
        sched,
        clock,
        _dir: dir,
    }
}

async fn runs(s: &Scheduler) -> Vec<RunRecord> {
    s.store()
        .list_runs(&RunFilter {
            dag_id: Some("s".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .0
}

fn logical(runs: &[RunRecord]) -> Vec<DateTime<Utc>> {
    runs.iter().map(|r| r.logical_date.unwrap()).collect()
}

/// Runs every claimed task to success until nothing is left.
async fn drain(s: &Scheduler) {
    for _ in 0..100 {
        s.tick().await.unwrap();
        let claims = s.claim("w", "h", 100, None).await.unwrap();
        if claims.is_empty() {
            return;
        }
        for claim in claims {
            s.finish(&Report {
                claim,
                ended: weir_core::scheduler::Ended {
                    outcome: Outcome::Success,
                    exit_code: Some(0),
                    error: None,
                    pid: None,
                    output: None,
                },
            })
            .await
            .unwrap();
        }
    }
}

const DAILY: &str =
    "schedule: '0 2 * * *'\nstart_date: 2026-01-01\ntasks:\n  a: {kind: shell, command: 'true'}\n";

async fn latest_only(db: &TestDb) {
    let e = env(db, DAILY, "2026-01-05T03:00:00Z").await;
    e.sched.tick().await.unwrap();
    let got = runs(&e.sched).await;
    assert_eq!(
        logical(&got),
        vec![utc("2026-01-04T02:00:00Z")],
        "without catchup only the latest interval runs"
    );
    let r = &got[0];
    assert_eq!(r.run_type, RunType::Scheduled);
    assert_eq!(r.run_id, "scheduled__2026-01-04T02:00:00+00:00");
    assert_eq!(
        (r.data_interval_start, r.data_interval_end),
        (
            Some(utc("2026-01-04T02:00:00Z")),
            Some(utc("2026-01-05T02:00:00Z"))
        )
    );
    e.sched.tick().await.unwrap();
    assert_eq!(runs(&e.sched).await.len(), 1, "never twice");
    drain(&e.sched).await;
    // weir is down for three days.
    e.clock.set(utc("2026-01-08T02:30:00Z"));
    e.sched.tick().await.unwrap();
    assert_eq!(
        logical(&runs(&e.sched).await),
        vec![utc("2026-01-04T02:00:00Z"), utc("2026-01-07T02:00:00Z")]
    );
}
both_backends!(catchup_false_runs_the_latest_interval, latest_only);

async fn catchup(db: &TestDb) {
    let dag = "schedule: '0 2 * * *'\nstart_date: 2026-01-01\ncatchup: true\nmax_active_runs: 3\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-05T03:00:00Z").await;
    e.sched.tick().await.unwrap();
    let first = logical(&runs(&e.sched).await);
    assert_eq!(
        first,
        vec![
            utc("2026-01-01T02:00:00Z"),
            utc("2026-01-02T02:00:00Z"),
            utc("2026-01-03T02:00:00Z")
        ],
        "oldest first, no more than max_active_runs at once"
    );
    drain(&e.sched).await;
    e.sched.tick().await.unwrap();
    assert_eq!(
        logical(&runs(&e.sched).await).len(),
        4,
        "the rest once the first ones ended"
    );
    drain(&e.sched).await;
    e.sched.tick().await.unwrap();
    assert_eq!(
        runs(&e.sched).await.len(),
        4,
        "every missed interval exactly once"
    );
    // Down for two days: catchup fills the gap from the last run.
    e.clock.set(utc("2026-01-07T02:00:01Z"));
    e.sched.tick().await.unwrap();
    let all = logical(&runs(&e.sched).await);
    assert_eq!(
        &all[4..],
        &[utc("2026-01-05T02:00:00Z"), utc("2026-01-06T02:00:00Z")]
    );
}
both_backends!(catchup_true_creates_every_missed_interval, catchup);

async fn end_date_and_pause(db: &TestDb) {
    let dag = "schedule: '0 2 * * *'\nstart_date: 2026-01-01\nend_date: 2026-01-02\ncatchup: true\npaused: true\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-10T00:00:00Z").await;
    e.sched.tick().await.unwrap();
    assert!(
        runs(&e.sched).await.is_empty(),
        "a paused DAG creates no runs"
    );
    e.sched.store().set_paused("s", false, None).await.unwrap();
    e.sched.tick().await.unwrap();
    drain(&e.sched).await;
    e.sched.tick().await.unwrap();
    assert_eq!(
        logical(&runs(&e.sched).await),
        vec![utc("2026-01-01T02:00:00Z")],
        "no interval starts after end_date (the 2nd starts at 02:00, after midnight of the end date)"
    );
}
both_backends!(end_date_and_pause_limit_runs, end_date_and_pause);

async fn dst(db: &TestDb) {
    let dag = "schedule: '30 1 * * *'\ntimezone: Europe/London\nstart_date: 2026-03-27\ncatchup: true\nmax_active_runs: 10\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-03-31T03:00:00Z").await;
    e.sched.tick().await.unwrap();
    let got = runs(&e.sched).await;
    assert_eq!(
        logical(&got),
        vec![
            utc("2026-03-27T01:30:00Z"),
            utc("2026-03-28T01:30:00Z"),
            utc("2026-03-29T01:30:00Z"), // 01:30 does not exist that day: 02:30 BST
            utc("2026-03-30T00:30:00Z"),
        ],
        "one run per day across the spring-forward day"
    );
    assert_eq!(got[2].data_interval_end, Some(utc("2026-03-30T00:30:00Z")));
}
both_backends!(daylight_saving_days_run_once, dst);

async fn two_schedulers(db: &TestDb) {
    let dag = "schedule: '@hourly'\nstart_date: 2026-01-01\ncatchup: true\nmax_active_runs: 50\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-02T00:30:00Z").await;
    let other = Scheduler::new(e.sched.store().clone(), e.clock.clone(), Options::default());
    let (a, b) = tokio::join!(
        e.sched.create_scheduled_runs(e.clock.now()),
        other.create_scheduled_runs(e.clock.now())
    );
    let created = a.unwrap() + b.unwrap();
    let got = runs(&e.sched).await;
    assert_eq!(got.len(), 24, "each hour of the 1st once");
    assert_eq!(created, 24, "no run was created twice");
    let mut ids: Vec<&str> = got.iter().map(|r| r.run_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 24);
}
both_backends!(two_schedulers_create_each_run_once, two_schedulers);

async fn backfill(db: &TestDb) {
    let dag = "schedule: '0 2 * * *'\nstart_date: 2026-01-01\npaused: true\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-02-01T00:00:00Z").await;
    let from = utc("2026-01-03T00:00:00Z");
    let to = utc("2026-01-05T23:59:59Z");
    let first = e
        .sched
        .backfill("s", from, to, false, usize::MAX, "ada")
        .await
        .unwrap();
    assert_eq!((first.intervals, first.created), (3, 3));
    let got = runs(&e.sched).await;
    assert_eq!(
        logical(&got),
        vec![
            utc("2026-01-03T02:00:00Z"),
            utc("2026-01-04T02:00:00Z"),
            utc("2026-01-05T02:00:00Z")
        ]
    );
    assert!(got.iter().all(|r| r.run_type == RunType::Backfill && r.run_id.starts_with("backfill__2026-01-0")));
    assert_eq!(got[0].data_interval_end, Some(utc("2026-01-04T02:00:00Z")));
    // A paused DAG's backfill still runs.
    drain(&e.sched).await;
    let again = e
        .sched
        .backfill("s", from, to, false, usize::MAX, "ada")
        .await
        .unwrap();
    assert_eq!(again.created, 0, "idempotent: nothing new");
    assert!(
        again
            .runs
            .iter()
            .all(|r| r.state == weir_core::state::RunState::Success)
    );
    // A limit paces creation; the next call creates the rest.
    let paced = e
        .sched
        .backfill("s", from, utc("2026-01-08T00:00:00Z"), false, 1, "ada")
        .await
        .unwrap();
    assert_eq!((paced.intervals, paced.created), (5, 1));
    // Failed runs come back with rerun_failed.
    let run = runs(&e.sched).await[0].clone();
    e.sched
        .mark(
            "s",
            &run.run_id,
            "a",
            weir_core::state::TaskState::Failed,
            "ada",
        )
        .await
        .unwrap();
    let rerun = e
        .sched
        .backfill(
            "s",
            from,
            utc("2026-01-03T23:00:00Z"),
            true,
            usize::MAX,
            "ada",
        )
        .await
        .unwrap();
    assert_eq!((rerun.intervals, rerun.rerun), (1, 1));
    drain(&e.sched).await;
    assert_eq!(
        e.sched.store().get_run_by_pk(run.id).await.unwrap().state,
        weir_core::state::RunState::Success
    );
    let manual = "tasks:\n  a: {kind: shell, command: 'true'}\n";
    let e2 = env(
        db,
        &manual.replace("tasks", "dag: m\ntasks"),
        "2026-02-01T00:00:00Z",
    )
    .await;
    let err = e2
        .sched
        .backfill("m", from, to, false, usize::MAX, "ada")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no time schedule"), "{err}");
    assert!(
        e.sched
            .backfill("s", to, from, false, usize::MAX, "ada")
            .await
            .is_err(),
        "--to before --from"
    );
}
both_backends!(backfill_creates_each_date_once, backfill);

async fn dataset_triggers(db: &TestDb) {
    let dag =
        "schedule: {datasets: [clean.a, clean.b]}\ntasks:\n  t: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-01T00:00:00Z").await;
    let write = |name: &str| weir_core::store::NewDatasetVersion {
        dataset: name.into(),
        ..Default::default()
    };
    e.sched.tick().await.unwrap();
    assert!(runs(&e.sched).await.is_empty());
    e.sched
        .store()
        .record_dataset_version(&write("clean.a"), utc("2026-01-01T01:00:00Z"))
        .await
        .unwrap();
    e.sched.tick().await.unwrap();
    assert!(
        runs(&e.sched).await.is_empty(),
        "clean.b has no version yet"
    );
    e.sched
        .store()
        .record_dataset_version(&write("clean.b"), utc("2026-01-01T02:00:00Z"))
        .await
        .unwrap();
    e.sched.tick().await.unwrap();
    let got = runs(&e.sched).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run_type, RunType::DatasetTriggered);
    assert_eq!(
        got[0].run_id,
        "dataset_triggered__2026-01-01T02:00:00+00:00"
    );
    let versions: serde_json::Value =
        serde_json::from_str(got[0].trigger_versions.as_deref().unwrap()).unwrap();
    assert!(
        versions["clean.a"].is_i64() && versions["clean.b"].is_i64(),
        "{versions}"
    );
    e.sched.tick().await.unwrap();
    assert_eq!(runs(&e.sched).await.len(), 1, "no new versions, no new run");
    e.sched
        .store()
        .record_dataset_version(&write("clean.a"), utc("2026-01-01T03:00:00Z"))
        .await
        .unwrap();
    e.sched.tick().await.unwrap();
    assert_eq!(runs(&e.sched).await.len(), 1, "only one input is new");
    e.sched
        .store()
        .record_dataset_version(&write("clean.b"), utc("2026-01-01T04:00:00Z"))
        .await
        .unwrap();
    let other = Scheduler::new(e.sched.store().clone(), e.clock.clone(), Options::default());
    let (x, y) = tokio::join!(
        e.sched.create_dataset_triggered_runs(e.clock.now()),
        other.create_dataset_triggered_runs(e.clock.now())
    );
    assert_eq!(x.unwrap() + y.unwrap(), 1, "two schedulers fire once");
    assert_eq!(runs(&e.sched).await.len(), 2);
}
both_backends!(
    dataset_schedules_fire_when_every_input_is_new,
    dataset_triggers
);

async fn asset_events(db: &TestDb) {
    let dag = "schedule: {datasets: [raw.vendor_feed, clean.b]}\ntasks:\n  t: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-01T00:00:00Z").await;
    let assets = e.sched.store().list_assets(None).await.unwrap();
    let names: Vec<&str> = assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["clean.b", "raw.vendor_feed"],
        "every dataset a DAG names has an id"
    );
    let feed = assets
        .iter()
        .find(|a| a.name == "raw.vendor_feed")
        .unwrap()
        .id;
    let b = assets.iter().find(|a| a.name == "clean.b").unwrap().id;
    // A second sync keeps the ids.
    let again = e.sched.store().list_assets(None).await.unwrap();
    assert_eq!(again, assets);

    let extra = serde_json::json!({"file": "feed-0101.csv"});
    let ev = e
        .sched
        .record_asset_event("test", feed, Some(&extra))
        .await
        .unwrap();
    assert_eq!(
        (ev.name.as_str(), ev.actor.as_str()),
        ("raw.vendor_feed", "test")
    );
    assert!(
        runs(&e.sched).await.is_empty(),
        "clean.b has not changed yet"
    );
    e.clock.advance(chrono::Duration::hours(1));
    e.sched.record_asset_event("test", b, None).await.unwrap();
    let got = runs(&e.sched).await;
    assert_eq!(got.len(), 1, "both inputs changed: a run at once");
    assert_eq!(got[0].run_type, RunType::DatasetTriggered);
    assert_eq!(
        got[0].run_id,
        "dataset_triggered__2026-01-01T01:00:00+00:00"
    );
    e.sched.tick().await.unwrap();
    assert_eq!(runs(&e.sched).await.len(), 1, "nothing new, no new run");
    // A version and an update count alike.
    e.clock.advance(chrono::Duration::hours(1));
    e.sched
        .store()
        .record_dataset_version(
            &weir_core::store::NewDatasetVersion {
                dataset: "clean.b".into(),
                ..Default::default()
            },
            e.clock.now(),
        )
        .await
        .unwrap();
    e.sched.tick().await.unwrap();
    assert_eq!(runs(&e.sched).await.len(), 1, "only clean.b is new");
    e.clock.advance(chrono::Duration::hours(1));
    e.sched
        .record_asset_event("test", feed, None)
        .await
        .unwrap();
    assert_eq!(runs(&e.sched).await.len(), 2);
    let (events, total) = e
        .sched
        .store()
        .list_asset_events(Some(feed), 10, 0)
        .await
        .unwrap();
    assert_eq!((events.len(), total), (2, 2));
    assert_eq!(
        events[1].extra.as_deref(),
        Some(r#"{"file":"feed-0101.csv"}"#),
        "newest first"
    );
    // Bad input is refused by name.
    let not_object = e
        .sched
        .record_asset_event("test", feed, Some(&serde_json::json!([1])))
        .await;
    assert!(
        not_object
            .unwrap_err()
            .to_string()
            .contains("extra must be a JSON object")
    );
    let unknown = e.sched.record_asset_event("test", 999_999, None).await;
    assert!(unknown.unwrap_err().to_string().contains("asset 999999"));
    let (audit, _) = e
        .sched
        .store()
        .list_audit(&Default::default(), 100, 0)
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == weir_core::store::AuditAction::AssetEvent)
            .count(),
        3
    );
}
both_backends!(
    updates_recorded_from_outside_trigger_dataset_schedules,
    asset_events
);

async fn once(db: &TestDb) {
    let dag = "schedule: '@once'\nstart_date: 2026-01-02T06:00:00Z\ntasks:\n  a: {kind: shell, command: 'true'}\n";
    let e = env(db, dag, "2026-01-01T00:00:00Z").await;
    e.sched.tick().await.unwrap();
    assert!(runs(&e.sched).await.is_empty(), "not before start_date");
    e.clock.set(utc("2026-01-03T00:00:00Z"));
    e.sched.tick().await.unwrap();
    drain(&e.sched).await;
    e.clock.set(utc("2026-02-01T00:00:00Z"));
    e.sched.tick().await.unwrap();
    assert_eq!(
        logical(&runs(&e.sched).await),
        vec![utc("2026-01-02T06:00:00Z")],
        "exactly once"
    );
}
both_backends!(once_runs_once_at_start_date, once);
