//! The store conformance suite: every case runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{Duration, Utc};
use weir_core::both_backends;
use weir_core::dag::contract::{CheckResultKind, Severity};
use weir_core::state::{RunState, RunType, TaskState};
use weir_core::store::{
    AuditEntry, CheckResultRecord, ClaimRequest, DagSync, Error, GridPage, GridRuns,
    ImportErrorRecord, NewQuality, NewRun, NewTaskInstance, NewValidation, Plan, RunFilter,
    RunTime, TaskChange, TimeRange, TryRef,
};
use weir_core::testing::TestDb;

fn dag_sync(dag_id: &str, hash: &str) -> DagSync {
    DagSync {
        dag_id: dag_id.into(),
        fileloc: format!("/dags/{dag_id}.yaml"),
        hash: hash.into(),
        definition: format!("{{\"hash\": \"{hash}\"}}"),
        paused: false,
        schedule: "manual".into(),
        timezone: "UTC".into(),
        description: None,
        owner: Some("me".into()),
        tags: vec!["t".into()],
        max_active_runs: 2,
        max_active_tasks: 2,
        sources: format!("[{{\"name\": \"{dag_id}.yaml\", \"text\": \"dag: {dag_id}\"}}]"),
    }
}

fn new_run(dag_id: &str, run_id: &str, version_id: i64, tasks: &[&str]) -> NewRun {
    let now = Utc::now();
    NewRun {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        version_id,
        run_type: RunType::Manual,
        logical_date: Some(now),
        data_interval_start: Some(now),
        data_interval_end: Some(now),
        run_after: now,
        conf: "{}".into(),
        note: None,
        triggered_by: Some("test".into()),
        trigger_versions: None,
        queued_at: now,
        tasks: tasks
            .iter()
            .map(|t| NewTaskInstance {
                task_id: (*t).into(),
                max_tries: 1,
                pool: "default".into(),
                queue: "default".into(),
                priority: 0,
            })
            .collect(),
    }
}

fn change(task: &str, from: TaskState, to: TaskState, try_number: i64) -> TaskChange {
    TaskChange {
        task_id: task.into(),
        map_index: -1,
        from,
        try_number,
        to,
        max_tries: None,
        next_try_at: None,
    }
}

/// DAG `d`, synced (its first version).
async fn synced_dag(db: &TestDb) -> weir_core::store::DagRecord {
    db.store
        .sync_dags(&[dag_sync("d", "h1")], &[], false, Utc::now())
        .await
        .unwrap();
    db.store.get_dag("d").await.unwrap()
}

/// Runs `plan` on a run, ignoring the snapshot.
async fn apply(db: &TestDb, run_pk: i64, plan: Plan) -> Result<weir_core::store::Advanced, Error> {
    let planner =
        move |_: &weir_core::store::RunSnapshot| Ok(weir_core::store::Planned::Done(plan.clone()));
    db.store
        .advance_run(
            run_pk,
            &weir_core::store::Scope::All,
            None,
            None,
            None,
            &planner,
        )
        .await
}

async fn setup(db: &TestDb, tasks: &[&str]) -> i64 {
    let dag = synced_dag(db).await;
    let run = db
        .store
        .create_run(&new_run("d", "r1", dag.latest_version_id, tasks))
        .await
        .unwrap();
    run.id
}

async fn versions_and_staleness(db: &TestDb) {
    let now = Utc::now();
    let err = ImportErrorRecord {
        id: 0,
        filename: "/dags/broken.yaml".into(),
        line: 3,
        col: 5,
        message: "bad".into(),
        timestamp: now,
    };
    db.store
        .sync_dags(
            &[dag_sync("a", "h1"), dag_sync("b", "h1")],
            std::slice::from_ref(&err),
            false,
            now,
        )
        .await
        .unwrap();
    db.store
        .sync_dags(
            &[dag_sync("a", "h1"), dag_sync("b", "h1")],
            &[err],
            false,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        db.store.list_versions("a").await.unwrap().len(),
        1,
        "the same content is the same version"
    );
    db.store
        .sync_dags(&[dag_sync("a", "h2")], &[], true, now)
        .await
        .unwrap();
    let versions = db.store.list_versions("a").await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version_number)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    let texts = versions[0].source_texts();
    assert_eq!(texts.len(), 1, "the files' text is kept with the version");
    assert_eq!(
        (texts[0].name.as_str(), texts[0].text.as_str()),
        ("a.yaml", "dag: a")
    );
    let a = db.store.get_dag("a").await.unwrap();
    assert_eq!(a.latest_version_id, versions[0].id);
    assert!(!a.is_paused, "paused_at_creation only applies to new DAGs");
    assert_eq!(a.tag_list(), vec!["t".to_owned()]);
    assert!(
        db.store.get_dag("b").await.unwrap().is_stale,
        "b's file is gone"
    );
    assert!(
        db.store.list_import_errors().await.unwrap().is_empty(),
        "import errors are replaced"
    );
    db.store
        .sync_dags(&[dag_sync("c", "h1")], &[], true, now)
        .await
        .unwrap();
    assert!(
        db.store.get_dag("c").await.unwrap().is_paused,
        "a new DAG starts paused when asked"
    );
    db.store.set_paused("c", false, None).await.unwrap();
    assert!(!db.store.get_dag("c").await.unwrap().is_paused);
    assert!(matches!(
        db.store.set_paused("nope", true, None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.store.get_version(9999).await,
        Err(Error::NotFound(_))
    ));
}
both_backends!(dag_versions_and_staleness, versions_and_staleness);

async fn runs_are_unique(db: &TestDb) {
    let run_pk = setup(db, &["a", "b"]).await;
    let dag = db.store.get_dag("d").await.unwrap();
    let again = db
        .store
        .create_run(&new_run("d", "r1", dag.latest_version_id, &["a"]))
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let run = db.store.get_run("d", "r1").await.unwrap();
    assert_eq!(
        (run.id, run.state, run.run_type),
        (run_pk, RunState::Queued, RunType::Manual)
    );
    let tis = db.store.list_task_instances(run_pk).await.unwrap();
    assert_eq!(tis.len(), 2);
    assert!(
        tis.iter()
            .all(|t| t.state == TaskState::None && t.try_number == 0)
    );
    assert_eq!(tis[0].id.len(), 36, "task instance ids are UUIDs");
    let (runs, total) = db
        .store
        .list_runs(&RunFilter {
            dag_id: Some("d".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((runs.len(), total), (1, 1));
    let (none, total) = db
        .store
        .list_runs(&RunFilter {
            states: vec![RunState::Success],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((none.len(), total), (0, 0));
    // Several DAGs at once, and bounds that exclude their ends.
    let at = run.logical_date.unwrap();
    for (run_id, hours) in [("r2", 1), ("r3", 2)] {
        let mut r = new_run("d", run_id, dag.latest_version_id, &["a"]);
        r.logical_date = Some(at + Duration::hours(hours));
        db.store.create_run(&r).await.unwrap();
    }
    let ids = |filter: RunFilter| async move {
        let (runs, total) = db.store.list_runs(&filter).await.unwrap();
        assert_eq!(total, runs.len() as i64);
        runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    let between = |from, to| RunFilter {
        strict_ranges: vec![TimeRange {
            column: RunTime::LogicalDate,
            from,
            to,
        }],
        ..Default::default()
    };
    assert_eq!(ids(between(Some(at), None)).await, ["r2", "r3"]);
    assert_eq!(
        ids(between(Some(at), Some(at + Duration::hours(2)))).await,
        ["r2"]
    );
    assert_eq!(
        ids(RunFilter {
            dag_ids: vec!["d".into(), "other".into()],
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert!(
        ids(RunFilter {
            dag_ids: vec!["other".into()],
            ..Default::default()
        })
        .await
        .is_empty()
    );
}
both_backends!(run_ids_are_unique_per_dag, runs_are_unique);

async fn guarded_changes(db: &TestDb) {
    let run_pk = setup(db, &["a", "b"]).await;
    let start = Plan {
        tasks: vec![change("a", TaskState::None, TaskState::Scheduled, 0)],
        run: Some((RunState::Queued, RunState::Running)),
        notices: Vec::new(),
        expansion: None,
    };
    let started = apply(db, run_pk, start).await.unwrap();
    assert_eq!(
        started.queued, 1,
        "ready work is queued in the same transaction"
    );
    // The second change expects a state `b` is not in: the whole plan is rolled back.
    let stale = Plan {
        tasks: vec![
            change("a", TaskState::Queued, TaskState::Scheduled, 0),
            change("b", TaskState::Scheduled, TaskState::Queued, 0),
        ],
        run: None,
        notices: Vec::new(),
        expansion: None,
    };
    let err = apply(db, run_pk, stale).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let tis = db.store.list_task_instances(run_pk).await.unwrap();
    let a = tis.iter().find(|t| t.task_id == "a").unwrap();
    assert_eq!(
        a.state,
        TaskState::Queued,
        "nothing of a failed plan is applied"
    );
    // A wrong try number is a conflict too.
    let wrong_try = Plan {
        tasks: vec![change("a", TaskState::Queued, TaskState::Scheduled, 7)],
        run: None,
        notices: Vec::new(),
        expansion: None,
    };
    assert!(matches!(
        apply(db, run_pk, wrong_try).await,
        Err(Error::Conflict(_))
    ));
    // Illegal moves are refused before touching the database.
    let illegal = Plan {
        tasks: vec![change("b", TaskState::None, TaskState::Running, 0)],
        run: None,
        notices: Vec::new(),
        expansion: None,
    };
    assert!(matches!(
        apply(db, run_pk, illegal).await,
        Err(Error::IllegalTransition(_))
    ));
    let illegal_run = Plan {
        tasks: vec![],
        run: Some((RunState::Running, RunState::Queued)),
        notices: Vec::new(),
        expansion: None,
    };
    assert!(matches!(
        apply(db, run_pk, illegal_run).await,
        Err(Error::IllegalTransition(_))
    ));
    let run = db.store.get_run_by_pk(run_pk).await.unwrap();
    assert_eq!(run.state, RunState::Running);
    assert!(run.start_date.is_some());
}
both_backends!(changes_are_guarded_and_atomic, guarded_changes);

fn claim_req(limit: i64) -> ClaimRequest {
    let now = Utc::now();
    ClaimRequest {
        worker: "w".into(),
        hostname: "h".into(),
        limit,
        queues: None,
        lease_id: "L".into(),
        lease_until: now + Duration::seconds(30),
        now,
    }
}

async fn dispatch_and_claim(db: &TestDb) {
    let run_pk = setup(db, &["a", "b", "c"]).await;
    db.store
        .upsert_pool("small", 1, Some("one at a time"))
        .await
        .unwrap();
    let mut plan = Plan {
        tasks: vec![],
        run: Some((RunState::Queued, RunState::Running)),
        notices: Vec::new(),
        expansion: None,
    };
    for t in ["a", "b", "c"] {
        plan.tasks
            .push(change(t, TaskState::None, TaskState::Scheduled, 0));
    }
    // max_active_tasks is 2 for this DAG.
    assert_eq!(apply(db, run_pk, plan).await.unwrap().queued, 2);
    assert_eq!(
        db.store.queue_scheduled(Utc::now()).await.unwrap(),
        0,
        "the DAG is at its limit"
    );
    // Two workers claim at once: each task instance is claimed exactly once.
    let (r1, r2) = (claim_req(5), claim_req(5));
    let (x, y) = tokio::join!(db.store.claim(&r1), db.store.claim(&r2));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 2);
    let claimed: Vec<_> = x.iter().chain(&y).collect();
    assert!(
        claimed
            .iter()
            .all(|c| c.try_number == 1 && c.log_path.ends_with("/1.log"))
    );
    assert_ne!(claimed[0].ti_id, claimed[1].ti_id);
    let tries = db.store.list_tries(&claimed[0].ti_id).await.unwrap();
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].state, TaskState::Running);
    // Heartbeats renew; a try that is no longer running is reported lost.
    let held = |ti_id: &str, try_number| weir_core::store::HeldTry {
        ti_id: ti_id.into(),
        try_number,
        lease_id: "L".into(),
    };
    let beats = vec![held(&claimed[0].ti_id, 1), held(&claimed[1].ti_id, 2)];
    let lost = db
        .store
        .heartbeat(&beats, Utc::now(), Utc::now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(lost, vec![held(&claimed[1].ti_id, 2)]);
    // Leases in the past show up as expired.
    db.store
        .heartbeat(&beats[..1], Utc::now(), Utc::now() - Duration::seconds(1))
        .await
        .unwrap();
    let expired = db.store.expired_leases(Utc::now()).await.unwrap();
    assert_eq!(
        expired,
        vec![weir_core::store::TryKey {
            run_pk,
            ti_id: claimed[0].ti_id.clone(),
            try_number: 1
        }]
    );
    let pools = db.store.list_pools().await.unwrap();
    let default = pools.iter().find(|p| p.name == "default").unwrap();
    assert_eq!((default.running, default.scheduled), (2, 1));
    assert!(pools.iter().any(|p| p.name == "small" && p.slots == 1));
    assert!(matches!(
        db.store.delete_pool("default").await,
        Err(Error::Conflict(_))
    ));
    db.store.delete_pool("small").await.unwrap();
    assert!(matches!(
        db.store.delete_pool("small").await,
        Err(Error::NotFound(_))
    ));
}
both_backends!(dispatch_claims_each_task_once, dispatch_and_claim);

async fn claim_respects_its_limit(db: &TestDb) {
    // Five runs of one task each, queued one after another, so the queue's
    // order (oldest first) is also the order the rows lie in the table: a
    // claim that re-reads its candidates while updating would take more.
    let wide = DagSync {
        max_active_tasks: 10,
        ..dag_sync("d", "h1")
    };
    db.store
        .sync_dags(&[wide], &[], false, Utc::now())
        .await
        .unwrap();
    let dag = db.store.get_dag("d").await.unwrap();
    for n in 0..5 {
        let run = db
            .store
            .create_run(&new_run(
                "d",
                &format!("r{n}"),
                dag.latest_version_id,
                &["t"],
            ))
            .await
            .unwrap();
        let plan = Plan {
            tasks: vec![change("t", TaskState::None, TaskState::Scheduled, 0)],
            run: Some((RunState::Queued, RunState::Running)),
            notices: Vec::new(),
            expansion: None,
        };
        assert_eq!(apply(db, run.id, plan).await.unwrap().queued, 1);
    }
    let running = || async {
        let filter = weir_core::store::TaskFilter {
            states: vec![TaskState::Running],
            ..Default::default()
        };
        db.store.find_task_instances(&filter).await.unwrap().1
    };
    for n in 1..=5 {
        let got = db.store.claim(&claim_req(1)).await.unwrap();
        assert_eq!(got.len(), 1, "claim {n} returned {got:?}");
        assert_eq!(
            running().await,
            n,
            "claim {n} left a task instance running that it did not return"
        );
    }
    assert!(db.store.claim(&claim_req(1)).await.unwrap().is_empty());
}
both_backends!(
    a_claim_takes_no_more_than_its_limit,
    claim_respects_its_limit
);

async fn pool_slots(db: &TestDb) {
    db.store
        .sync_dags(
            &[DagSync {
                max_active_tasks: 100,
                ..dag_sync("d", "h1")
            }],
            &[],
            false,
            Utc::now(),
        )
        .await
        .unwrap();
    db.store.upsert_pool("default", 3, None).await.unwrap();
    let dag = db.store.get_dag("d").await.unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let run = db
        .store
        .create_run(&new_run("d", "r", dag.latest_version_id, &refs))
        .await
        .unwrap();
    let mut plan = Plan {
        tasks: vec![],
        run: Some((RunState::Queued, RunState::Running)),
        notices: Vec::new(),
        expansion: None,
    };
    for t in &refs {
        plan.tasks
            .push(change(t, TaskState::None, TaskState::Scheduled, 0));
    }
    assert_eq!(
        apply(db, run.id, plan).await.unwrap().queued,
        3,
        "the pool has 3 slots"
    );
    assert_eq!(db.store.queue_scheduled(Utc::now()).await.unwrap(), 0);
    let pool = db
        .store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "default")
        .unwrap();
    assert_eq!((pool.queued, pool.scheduled), (3, 2));
}
both_backends!(pools_cap_queued_work, pool_slots);

async fn audit_log(db: &TestDb) {
    let entry = AuditEntry {
        at: Utc::now(),
        actor: "ada".into(),
        action: weir_core::store::AuditAction::Pause,
        dag_id: Some("d".into()),
        run_id: None,
        task_id: None,
        detail: Some("{}".into()),
    };
    db.store.audit(&entry).await.unwrap();
    db.store
        .audit(&AuditEntry {
            action: weir_core::store::AuditAction::Unpause,
            ..entry
        })
        .await
        .unwrap();
    let log = db
        .store
        .list_audit(&weir_core::store::AuditFilter::default(), 10, 0)
        .await
        .unwrap()
        .0;
    assert_eq!(
        log.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        vec!["unpause", "pause"]
    );
    assert_eq!(log[0].actor, "ada");
    // Every action is stored under its name and read back as itself (the
    // migrations' column takes any text; the enum is the one list).
    for action in weir_core::store::AuditAction::ALL {
        db.store
            .audit(&AuditEntry {
                action,
                ..log_entry("ada")
            })
            .await
            .unwrap();
        let newest = db
            .store
            .list_audit(&weir_core::store::AuditFilter::default(), 1, 0)
            .await
            .unwrap()
            .0
            .remove(0);
        assert_eq!(newest.action, action);
    }
    // Filters narrow the list and the count; the order can be reversed.
    let t0 = Utc::now() - Duration::hours(1);
    for (actor, dag, run, task, at) in [
        ("bob", "etl", "r1", "load", t0),
        ("bob", "etl", "r2", "load", t0 + Duration::minutes(10)),
        ("cy", "etl", "r1", "extract", t0 + Duration::minutes(20)),
    ] {
        db.store
            .audit(&AuditEntry {
                at,
                dag_id: Some(dag.into()),
                run_id: Some(run.into()),
                task_id: Some(task.into()),
                action: weir_core::store::AuditAction::Clear,
                ..log_entry(actor)
            })
            .await
            .unwrap();
    }
    let read = |f: weir_core::store::AuditFilter| async move {
        let (rows, total) = db.store.list_audit(&f, 10, 0).await.unwrap();
        assert_eq!(total, rows.len() as i64);
        rows.iter()
            .map(|r| (r.actor.clone(), r.run_id.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let etl = || weir_core::store::AuditFilter {
        dag_id: Some("etl".into()),
        ..Default::default()
    };
    let pair = |a: &str, r: &str| (a.to_owned(), r.to_owned());
    assert_eq!(
        read(etl()).await,
        [pair("cy", "r1"), pair("bob", "r2"), pair("bob", "r1")]
    );
    assert_eq!(
        read(weir_core::store::AuditFilter {
            oldest_first: true,
            ..etl()
        })
        .await,
        [pair("bob", "r1"), pair("bob", "r2"), pair("cy", "r1")]
    );
    assert_eq!(
        read(weir_core::store::AuditFilter {
            task_id: Some("load".into()),
            run_id: Some("r1".into()),
            ..etl()
        })
        .await,
        [pair("bob", "r1")]
    );
    assert_eq!(
        read(weir_core::store::AuditFilter {
            actor: Some("cy".into()),
            ..Default::default()
        })
        .await,
        [pair("cy", "r1")]
    );
    assert_eq!(
        read(weir_core::store::AuditFilter {
            after: Some(t0),
            before: Some(t0 + Duration::minutes(20)),
            ..etl()
        })
        .await,
        [pair("bob", "r2")]
    );
    assert_eq!(
        read(weir_core::store::AuditFilter {
            action: Some(weir_core::store::AuditAction::Pause),
            ..Default::default()
        })
        .await,
        [pair("ada", ""), pair("ada", "")],
        "the first entry and the one of every action"
    );
    let first = db.store.list_audit(&etl(), 1, 2).await.unwrap().0.remove(0);
    assert_eq!(db.store.get_audit(first.id).await.unwrap().actor, "bob");
    assert!(matches!(
        db.store.get_audit(first.id + 1000).await,
        Err(weir_core::store::Error::NotFound(_))
    ));
}
both_backends!(audit_entries_are_kept, audit_log);

fn log_entry(actor: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: actor.into(),
        action: weir_core::store::AuditAction::Trigger,
        dag_id: None,
        run_id: None,
        task_id: None,
        detail: None,
    }
}

async fn migrations_twice(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
}
both_backends!(migrations_are_idempotent, migrations_twice);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_opening_a_new_sqlite_database_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/race.db", dir.path().display());
    let opens: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { weir_core::store::open(&url).await }
            })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
}

async fn group_commit(db: &TestDb) {
    let dag = synced_dag(db).await;
    let r1 = db
        .store
        .create_run(&new_run("d", "r1", dag.latest_version_id, &["a"]))
        .await
        .unwrap();
    let r2 = db
        .store
        .create_run(&new_run("d", "r2", dag.latest_version_id, &["a"]))
        .await
        .unwrap();
    let good = |_: &weir_core::store::RunSnapshot| {
        Ok(weir_core::store::Planned::Done(Plan {
            tasks: vec![change("a", TaskState::None, TaskState::Scheduled, 0)],
            run: Some((RunState::Queued, RunState::Running)),
            notices: Vec::new(),
            expansion: None,
        }))
    };
    let stale = |_: &weir_core::store::RunSnapshot| {
        Ok(weir_core::store::Planned::Done(Plan {
            tasks: vec![change("a", TaskState::Success, TaskState::Failed, 0)],
            run: None,
            notices: Vec::new(),
            expansion: None,
        }))
    };
    let now = Utc::now();
    let req = ClaimRequest {
        worker: "w".into(),
        hostname: "h".into(),
        limit: 1,
        queues: None,
        lease_id: "L".into(),
        lease_until: now + Duration::seconds(30),
        now,
    };
    let items = vec![
        weir_core::store::Advance {
            run_pk: r2.id,
            scope: weir_core::store::Scope::All,
            end: None,
            planner: std::sync::Arc::new(stale),
            claim: Some(req.clone()),
        },
        weir_core::store::Advance {
            run_pk: r1.id,
            scope: weir_core::store::Scope::All,
            end: None,
            planner: std::sync::Arc::new(good),
            claim: Some(req),
        },
    ];
    let results = db.store.advance_runs(items).await.unwrap();
    assert!(
        matches!(results[0], Err(Error::Conflict(_))),
        "{:?}",
        results[0]
    );
    let done = results[1].as_ref().unwrap();
    assert_eq!(
        done.queued, 1,
        "the good item's task was queued in the batch"
    );
    assert_eq!(done.claims.len(), 1, "and claimed for the slot that asked");
    assert_eq!(
        db.store.get_run_by_pk(r1.id).await.unwrap().state,
        RunState::Running
    );
    assert_eq!(
        db.store.get_run_by_pk(r2.id).await.unwrap().state,
        RunState::Queued,
        "the failed item changed nothing"
    );
    let ti = &db.store.list_task_instances(r1.id).await.unwrap()[0];
    assert_eq!((ti.state, ti.try_number), (TaskState::Running, 1));
    assert!(
        ti.start_date >= ti.queued_at,
        "a try never starts before it was queued"
    );
}
both_backends!(group_commit_isolates_items, group_commit);

/// In one batch, each report's snapshot counts a fan-in's upstream tasks as
/// the batch's earlier reports left them, and a report that conflicts (rolled
/// back to its savepoint) moves no count.
async fn batch_fan_in_counts(db: &TestDb) {
    use std::sync::{Arc, Mutex};
    use weir_core::store::{Advance, FanIn, Planned, RunSnapshot, Scope};
    let dag = synced_dag(db).await;
    let run = db
        .store
        .create_run(&new_run(
            "d",
            "r",
            dag.latest_version_id,
            &["a1", "a2", "a3", "end"],
        ))
        .await
        .unwrap();
    /// Each report's task and the fan-in counts its planner saw.
    type Seen = Vec<(String, Vec<(TaskState, i64)>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let item = |task: &'static str, from: TaskState, run_moves: bool| {
        let seen = seen.clone();
        Advance {
            run_pk: run.id,
            scope: Scope::Tasks {
                tasks: vec![task.to_owned(), "end".to_owned()],
                fan_ins: vec![FanIn {
                    task_id: "end".into(),
                    upstream: vec!["a1".into(), "a2".into(), "a3".into()],
                }],
                siblings: None,
            },
            end: None,
            planner: Arc::new(move |s: &RunSnapshot| {
                let mut counts = s.fan_ins[0].counts.clone();
                counts.sort_by_key(|(state, _)| state.as_str());
                seen.lock().unwrap().push((task.to_owned(), counts));
                Ok(Planned::Done(Plan {
                    tasks: vec![change(task, from, TaskState::Scheduled, 0)],
                    run: run_moves.then_some((RunState::Queued, RunState::Running)),
                    notices: Vec::new(),
                    expansion: None,
                }))
            }),
            claim: None,
        }
    };
    // a2's report expects a state it is not in: it conflicts.
    let items = vec![
        item("a1", TaskState::None, true),
        item("a2", TaskState::Queued, false),
        item("a3", TaskState::None, false),
    ];
    let results = db.store.advance_runs(items).await.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(Error::Conflict(_))),
        "{:?}",
        results[1]
    );
    let seen = seen.lock().unwrap().clone();
    // The last pass is the one that stands (the first rolled back at a2).
    let last: Vec<_> = seen[seen.len() - 3..].to_vec();
    assert_eq!(
        last,
        vec![
            ("a1".to_owned(), vec![(TaskState::None, 2)]),
            (
                "a2".to_owned(),
                vec![(TaskState::None, 1), (TaskState::Scheduled, 1)]
            ),
            (
                "a3".to_owned(),
                vec![(TaskState::None, 1), (TaskState::Scheduled, 1)]
            ),
        ],
        "each report counts the others as the batch left them"
    );
    let states: Vec<(String, TaskState)> = db
        .store
        .list_task_instances(run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.task_id, t.state))
        .collect();
    assert!(
        states.contains(&("a2".to_owned(), TaskState::None)),
        "{states:?}"
    );
    assert!(
        states.contains(&("a3".to_owned(), TaskState::Queued)),
        "queued in the batch: {states:?}"
    );
}
both_backends!(
    batch_reports_count_fan_ins_as_the_batch_left_them,
    batch_fan_in_counts
);

async fn priority_order(db: &TestDb) {
    db.store
        .sync_dags(
            &[DagSync {
                max_active_tasks: 100,
                ..dag_sync("d", "h1")
            }],
            &[],
            false,
            Utc::now(),
        )
        .await
        .unwrap();
    db.store.upsert_pool("default", 1, None).await.unwrap();
    let dag = db.store.get_dag("d").await.unwrap();
    let mut run = new_run("d", "r", dag.latest_version_id, &[]);
    for (t, p) in [("low", 1), ("high", 9), ("mid", 5)] {
        run.tasks.push(NewTaskInstance {
            task_id: t.into(),
            max_tries: 0,
            pool: "default".into(),
            queue: "default".into(),
            priority: p,
        });
    }
    let run = db.store.create_run(&run).await.unwrap();
    let mut plan = Plan {
        tasks: vec![],
        run: Some((RunState::Queued, RunState::Running)),
        notices: Vec::new(),
        expansion: None,
    };
    for t in ["low", "high", "mid"] {
        plan.tasks
            .push(change(t, TaskState::None, TaskState::Scheduled, 0));
    }
    assert_eq!(apply(db, run.id, plan).await.unwrap().queued, 1, "one slot");
    let claimed = db.store.claim(&claim_req(5)).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|c| c.task_id.as_str())
            .collect::<Vec<_>>(),
        vec!["high"],
        "the highest priority goes first"
    );
}
both_backends!(priority_orders_the_queue, priority_order);

async fn concurrent_syncs(db: &TestDb) {
    // Two processes load the same new DAG file at the same moment.
    let dags = [dag_sync("d", "h1")];
    let (a, b) = tokio::join!(
        db.store.sync_dags(&dags, &[], false, Utc::now()),
        db.store.sync_dags(&dags, &[], false, Utc::now())
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(db.store.list_versions("d").await.unwrap().len(), 1);
    let version = weir_core::store::NewDatasetVersion {
        dataset: "raw.a".into(),
        ..Default::default()
    };
    let (x, y) = tokio::join!(
        db.store.record_dataset_version(&version, Utc::now()),
        db.store.record_dataset_version(&version, Utc::now())
    );
    let mut numbers = vec![x.unwrap().version, y.unwrap().version];
    numbers.sort();
    assert_eq!(
        numbers,
        vec![1, 2],
        "dataset versions are numbered once each"
    );
}
both_backends!(
    concurrent_syncs_and_versions_do_not_collide,
    concurrent_syncs
);

async fn moved_paths(db: &TestDb) {
    for (dataset, path) in [
        ("clean.a", "/old/data/clean/a/v=1"),
        ("clean.b", "/old/data-other/clean/b/v=1"),
        ("clean.c", "/old/data/clean/c/v=1"),
    ] {
        let v = weir_core::store::NewDatasetVersion {
            dataset: dataset.into(),
            path: Some(path.into()),
            ..Default::default()
        };
        db.store
            .record_dataset_version(&v, Utc::now())
            .await
            .unwrap();
    }
    let moved = db
        .store
        .move_version_paths("/old/data", "/new/d/")
        .await
        .unwrap();
    assert_eq!(moved, 2);
    let paths: Vec<Option<String>> = db
        .store
        .dataset_versions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert_eq!(
        paths,
        [
            Some("/new/d/clean/a/v=1".to_owned()),
            Some("/old/data-other/clean/b/v=1".to_owned()),
            Some("/new/d/clean/c/v=1".to_owned()),
        ],
        "only places under the folder move, never a folder that merely starts alike"
    );
}
both_backends!(
    a_restore_moves_the_versions_places_into_its_data_folder,
    moved_paths
);

async fn erasure(db: &TestDb) {
    use weir_core::store::{AuditAction, AuditFilter, ErasedVersion, NewDatasetVersion};
    let s = &db.store;
    let v = s
        .record_dataset_version(
            &NewDatasetVersion {
                dataset: "raw.people".into(),
                path: Some("/d/raw/people/v=1".into()),
                rows: Some(5),
                bytes: Some(900),
                ..Default::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let rewritten = ErasedVersion {
        path: "/d/raw/people/v=1.1".into(),
        rows: 3,
        bytes: 700,
        erased: 2,
        condition: "id = 3".into(),
        delta_version: None,
    };
    let after = s
        .record_erasure(v.id, &rewritten, "dpo", Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (
            after.path.as_deref(),
            after.rows,
            after.bytes,
            after.version
        ),
        (Some("/d/raw/people/v=1.1"), Some(3), Some(700), 1)
    );
    let (audit, _) = s
        .list_audit(
            &AuditFilter {
                action: Some(AuditAction::EraseRows),
                ..AuditFilter::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "dpo");
    let detail: serde_json::Value =
        serde_json::from_str(audit[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["where"], "id = 3");
    assert_eq!(
        (
            detail["rows_before"].as_i64(),
            detail["rows_after"].as_i64()
        ),
        (Some(5), Some(3))
    );
    assert_eq!(detail["old_path"], "/d/raw/people/v=1");
    // A version retention deleted meanwhile is not brought back.
    s.mark_version_deleted(v.id, "retention", Utc::now())
        .await
        .unwrap();
    assert!(matches!(
        s.record_erasure(v.id, &rewritten, "dpo", Utc::now()).await,
        Err(Error::NotFound(_))
    ));
}
both_backends!(
    an_erasure_points_a_version_at_its_rewritten_files_audited,
    erasure
);

fn life(name: &str, hostname: &str) -> weir_core::workers::NewWorker {
    weir_core::workers::NewWorker {
        name: name.into(),
        hostname: hostname.into(),
        pid: 4242,
        process_token: "boot/pid:[1]/100".into(),
        version: "0.1.0".into(),
        queues: None,
        slots: 4,
        remote: false,
    }
}

async fn worker_register(db: &TestDb) {
    use weir_core::store::WorkerFilter;
    use weir_core::workers::WorkerState;
    let s = &db.store;
    let t0 = Utc::now();
    s.register_worker(&life("standalone@h:a", "h"), t0)
        .await
        .unwrap();
    s.register_worker(&life("standalone@h:b", "h"), t0 + Duration::seconds(1))
        .await
        .unwrap();
    s.register_worker(&life("worker@elsewhere:c", "elsewhere"), t0)
        .await
        .unwrap();
    let on_h = |state| WorkerFilter {
        hostname: Some("h".into()),
        state,
    };
    let names = |w: Vec<weir_core::workers::WorkerRecord>| {
        w.into_iter().map(|w| w.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            s.list_workers(&on_h(Some(WorkerState::Active)))
                .await
                .unwrap()
        ),
        ["standalone@h:a", "standalone@h:b"],
        "one host's active lives, oldest first"
    );
    let later = t0 + Duration::seconds(10);
    s.worker_heartbeat("standalone@h:a", later).await.unwrap();
    let a = &s.list_workers(&on_h(None)).await.unwrap()[0];
    assert_eq!(a.heartbeat_at.timestamp(), later.timestamp());
    assert_eq!(
        (a.pid, a.process_token.as_str()),
        (4242, "boot/pid:[1]/100")
    );

    // Another process finds `a` gone: it ends once, and its heartbeat is refused.
    s.end_worker("standalone@h:a", WorkerState::Lost, later)
        .await
        .unwrap();
    assert!(matches!(
        s.end_worker("standalone@h:a", WorkerState::Lost, later)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.worker_heartbeat("standalone@h:a", later).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.worker_heartbeat("never-registered", later).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.end_worker("standalone@h:b", WorkerState::Active, later)
            .await,
        Err(Error::IllegalTransition(_))
    ));
    let lost = s
        .list_workers(&on_h(Some(WorkerState::Lost)))
        .await
        .unwrap();
    assert_eq!(names(lost.clone()), ["standalone@h:a"]);
    assert_eq!(
        lost[0].stopped_at.map(|t| t.timestamp()),
        Some(later.timestamp())
    );

    // Alive after all (it was only unheard of): it registers again.
    s.register_worker(&life("standalone@h:a", "h"), later)
        .await
        .unwrap();
    let a = &s.list_workers(&on_h(None)).await.unwrap()[0];
    assert_eq!((a.state, a.stopped_at), (WorkerState::Active, None));
    s.end_worker("standalone@h:b", WorkerState::Stopped, later)
        .await
        .unwrap();
    assert_eq!(
        names(s.list_workers(&WorkerFilter::default()).await.unwrap()).len(),
        3,
        "ended lives are kept"
    );
    assert_eq!(
        names(
            s.list_workers(&WorkerFilter {
                hostname: None,
                state: Some(WorkerState::Active)
            })
            .await
            .unwrap()
        ),
        ["standalone@h:a", "worker@elsewhere:c"]
    );
}
both_backends!(worker_lives_register_heartbeat_and_end, worker_register);

/// On PostgreSQL, rows are locked one by one: a heartbeat renewing two
/// leases must not hold the first while it waits for the second, or a
/// transaction finishing both in the other order deadlocks with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_never_deadlocks_with_a_transaction_on_the_same_tries() {
    use sqlx::Connection;
    let Some(db) = weir_core::testing::postgres().await else {
        return;
    };
    let run_pk = setup(&db, &["a", "b"]).await;
    let mut plan = Plan {
        tasks: vec![],
        run: Some((RunState::Queued, RunState::Running)),
        notices: Vec::new(),
        expansion: None,
    };
    for t in ["a", "b"] {
        plan.tasks
            .push(change(t, TaskState::None, TaskState::Scheduled, 0));
    }
    apply(&db, run_pk, plan).await.unwrap();
    let claimed = db.store.claim(&claim_req(2)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, b) = (claimed[0].ti_id.clone(), claimed[1].ti_id.clone());
    let held = |ti_id: &str| weir_core::store::HeldTry {
        ti_id: ti_id.into(),
        try_number: 1,
        lease_id: "L".into(),
    };

    // Another transaction holds `b`…
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("UPDATE task_instances SET updated_at = updated_at WHERE id = $1")
        .bind(&b)
        .execute(&mut other)
        .await
        .unwrap();
    // …while the heartbeat renews `a`, then waits for `b`.
    let store = db.store.clone();
    let beats = vec![held(&a), held(&b)];
    let beat = tokio::spawn(async move {
        store
            .heartbeat(&beats, Utc::now(), Utc::now() + Duration::seconds(60))
            .await
    });
    let mut watch = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'UPDATE task_instances SET lease_until%'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the heartbeat never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The other transaction now needs `a` too, then ends.
    sqlx::query("UPDATE task_instances SET updated_at = updated_at WHERE id = $1")
        .bind(&a)
        .execute(&mut other)
        .await
        .expect("no deadlock: the heartbeat holds nothing while it waits");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let lost = beat.await.unwrap().expect("the heartbeat succeeds");
    assert!(lost.is_empty(), "{lost:?}");
    drop((other, watch));
    db.cleanup().await;
}

async fn grid_pages(db: &TestDb) {
    setup(db, &["a", "b"]).await;
    let dag = db.store.get_dag("d").await.unwrap();
    let t0 = Utc::now();
    for (i, id) in ["r2", "r3"].iter().enumerate() {
        let mut run = new_run("d", id, dag.latest_version_id, &["a", "b"]);
        run.run_after = t0 + Duration::seconds(i64::try_from(i).unwrap() + 1);
        db.store.create_run(&run).await.unwrap();
    }
    let r3 = db.store.get_run("d", "r3").await.unwrap();
    apply(
        db,
        r3.id,
        Plan {
            tasks: vec![change("a", TaskState::None, TaskState::Scheduled, 0)],
            run: None,
            notices: Vec::new(),
            expansion: None,
        },
    )
    .await
    .unwrap();
    let page = |limit, offset| GridRuns::Page {
        dag_id: "d".into(),
        limit,
        offset,
    };
    // The newest two runs, shown oldest first, with every cell.
    let newest = db.store.grid(&page(2, 0)).await.unwrap();
    let ids: Vec<&str> = newest.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r2", "r3"]);
    assert_eq!(newest.total_runs, 3);
    assert_eq!(newest.cells.len(), 4);
    let cell = newest
        .cells
        .iter()
        .find(|c| c.run_pk == r3.id && c.task_id == "a")
        .unwrap();
    assert_eq!(cell.state, TaskState::Scheduled);
    let older = db.store.grid(&page(2, 2)).await.unwrap();
    assert_eq!(older.runs.len(), 1);
    assert_eq!(older.runs[0].run_id, "r1");
    assert_eq!((older.total_runs, older.cells.len()), (3, 2));
    let followed = db.store.grid(&GridRuns::Keys(vec![r3.id])).await.unwrap();
    assert_eq!((followed.runs.len(), followed.cells.len()), (1, 2));
    assert_eq!(
        db.store.grid(&GridRuns::Keys(vec![])).await.unwrap(),
        GridPage::default()
    );
    assert!(db.store.run_tries(r3.id).await.unwrap().is_empty());
}
both_backends!(grid_pages_read_runs_and_their_cells, grid_pages);

async fn quality_history_counts_checks(db: &TestDb) {
    setup(db, &["v"]).await;
    let check = |name: &str, passed: bool| CheckResultRecord {
        name: name.into(),
        kind: CheckResultKind::Required,
        column_name: Some("id".into()),
        passed,
        failed: i64::from(!passed),
        observed: None,
        threshold: None,
        severity: Severity::Error,
    };
    for (run, passed) in [("r1", true), ("r2", false)] {
        db.store
            .record_validation(
                &NewValidation {
                    quality: NewQuality {
                        producer: TryRef {
                            dag_id: "d".into(),
                            run_id: run.into(),
                            task_id: "v".into(),
                            try_number: 1,
                        },
                        dataset: "raw.x".into(),
                        input_version: None,
                        rows_in: 10,
                        rows_clean: if passed { 10 } else { 9 },
                        rows_quarantined: i64::from(!passed),
                        checks: vec![check("a", true), check("b", passed)],
                    },
                    quarantine: None,
                    clean: None,
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let history = db.store.quality_history("d", "v", 10).await.unwrap();
    let seen: Vec<(&str, i64, i64, i64)> = history
        .iter()
        .map(|p| {
            (
                p.quality.run_id.as_str(),
                p.quality.rows_quarantined,
                p.checks_passed,
                p.checks_failed,
            )
        })
        .collect();
    assert_eq!(seen, [("r2", 1, 1, 1), ("r1", 0, 2, 0)], "newest first");
    assert_eq!(
        db.store.quality_history("d", "v", 1).await.unwrap().len(),
        1
    );
    assert!(
        db.store
            .quality_history("d", "other", 10)
            .await
            .unwrap()
            .is_empty()
    );
}
both_backends!(
    quality_history_is_newest_first_with_check_counts,
    quality_history_counts_checks
);

async fn variables(db: &TestDb) {
    use weir_core::store::{AuditAction, AuditEntry, AuditFilter, SaveMode, VariableFilter};
    let s = db.store.as_ref();
    let at = Utc::now();
    let audit = |action| AuditEntry::about("alice", action, serde_json::json!({"key": "k"}), at);
    let set = |key: &'static str, value: &'static str, mode| {
        let audit = audit(AuditAction::SetVariable);
        async move {
            s.save_variable(key, value, Some("note"), mode, &audit)
                .await
        }
    };
    set("bucket", "raw", SaveMode::Create).await.unwrap();
    set("Bucket_EU", "raw-eu", SaveMode::Upsert).await.unwrap();
    set("limits", "{\"n\": 1}", SaveMode::Upsert).await.unwrap();
    assert!(matches!(
        set("bucket", "x", SaveMode::Create).await,
        Err(weir_core::store::Error::Conflict(_))
    ));
    assert!(matches!(
        set("absent", "x", SaveMode::Update).await,
        Err(weir_core::store::Error::NotFound(_))
    ));
    set("bucket", "cooked", SaveMode::Update).await.unwrap();
    let keys = |f: VariableFilter| async move {
        s.list_variables(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(VariableFilter::default()).await,
        ["Bucket_EU", "bucket", "limits"]
    );
    let pattern = |p: &str| VariableFilter {
        key_pattern: Some(p.into()),
        ..VariableFilter::default()
    };
    assert_eq!(
        keys(pattern("BUCK")).await,
        ["Bucket_EU", "bucket"],
        "case-insensitive"
    );
    assert_eq!(
        keys(pattern("b%eu")).await,
        ["Bucket_EU"],
        "% matches a run"
    );
    let prefix = VariableFilter {
        key_prefix: Some("buck".into()),
        ..VariableFilter::default()
    };
    assert_eq!(keys(prefix).await, ["bucket"], "a prefix is case-sensitive");
    let v = s.get_variable("bucket").await.unwrap().unwrap();
    assert_eq!(
        (v.value.as_str(), v.description.as_deref()),
        ("cooked", Some("note"))
    );
    s.delete_variable("bucket", &audit(AuditAction::DeleteVariable))
        .await
        .unwrap();
    assert!(s.get_variable("bucket").await.unwrap().is_none());
    assert!(matches!(
        s.delete_variable("bucket", &audit(AuditAction::DeleteVariable))
            .await,
        Err(weir_core::store::Error::NotFound(_))
    ));
    // Each change is audited in its transaction; refused ones are not.
    let (entries, _) = s.list_audit(&AuditFilter::default(), 100, 0).await.unwrap();
    let count = |a: AuditAction| entries.iter().filter(|e| e.action == a).count();
    assert_eq!(
        (
            count(AuditAction::SetVariable),
            count(AuditAction::DeleteVariable)
        ),
        (4, 1)
    );
}
both_backends!(variables_are_kept_filtered_and_audited, variables);
