//! Dynamic task mapping end to end with real processes on both backends:
//! expansion over an upstream output, a param and a literal list, item
//! order downstream, `max_active`, empty lists, the cap, retrying one
//! mapped instance, and a failed one failing the run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use weir_core::both_backends;
use weir_core::scheduler::ClearSpec;
use weir_core::state::{RunState, TaskState};
use weir_core::store::{RunRecord, TaskInstanceRecord};
use weir_core::testing::TestDb;

mod common;
use common::Site;

/// The instances of `task` in `run`, its own first, then by map index.
async fn instances(e: &Site, run: &RunRecord, task: &str) -> Vec<TaskInstanceRecord> {
    let mut all: Vec<TaskInstanceRecord> = e
        .sched
        .store()
        .list_task_instances(run.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.task_id == task)
        .collect();
    all.sort_by_key(|t| t.map_index);
    all
}

/// The log of a mapped instance's try.
fn mapped_log(e: &Site, run: &RunRecord, task: &str, map_index: i64, try_number: i64) -> String {
    let path = weir_core::store::log_path("t", &run.run_id, task, map_index, try_number);
    std::fs::read_to_string(e.dir.path().join("logs").join(path)).unwrap_or_default()
}

const MAPPED: &str = r#"
params:
  regions: [eu, us]
tasks:
  list:
    kind: shell
    command: |
      echo '{"files": ["c.csv", "a.csv", "b.csv"]}' > "$WEIR_OUTPUT"
  each:
    kind: shell
    depends_on: [list]
    expand:
      items: "{{ tasks.list.output.files }}"
      max_active: 1
    command: |
      test "$WEIR_MAP_ITEM" = '"{{ item }}"'
      echo '{"file": "{{ item }}", "index": {{ map_index }}}' > "$WEIR_OUTPUT"
  gather:
    kind: shell
    depends_on: [each]
    command: echo "got {{ tasks.each.output | map(attribute='file') | join(',') }}"
  per_region:
    kind: shell
    expand: {items: "{{ params.regions }}"}
    output: last_line
    command: echo "region-{{ item }}"
  regions_done:
    kind: shell
    depends_on: [per_region]
    command: echo "regions {{ tasks.per_region.output | join(',') }}"
  each_again:
    kind: shell
    depends_on: [each]
    expand: {items: "{{ tasks.each.output }}"}
    command: echo "again {{ item.file }}"
  nothing:
    kind: shell
    expand: {items: []}
    command: "false"
  after_nothing:
    kind: shell
    depends_on: [nothing]
    command: "true"
"#;

async fn mapped_tasks(db: &TestDb) {
    let e = Site::start(db, MAPPED, &[]).await;
    let run = e
        .trigger(serde_json::json!({"regions": ["eu", "us", "ap"]}))
        .await;
    let ended = e.wait(&run).await;
    assert_eq!(ended.state, RunState::Success, "{:#?}", e.tries(&run).await);

    // One instance per item, in item order, each with its item and a log.
    let each = instances(&e, &run, "each").await;
    let items: Vec<(i64, Option<&str>, TaskState)> = each
        .iter()
        .map(|t| (t.map_index, t.map_item.as_deref(), t.state))
        .collect();
    assert_eq!(
        items,
        [
            (-1, None, TaskState::Success),
            (0, Some("\"c.csv\""), TaskState::Success),
            (1, Some("\"a.csv\""), TaskState::Success),
            (2, Some("\"b.csv\""), TaskState::Success),
        ]
    );
    assert_eq!(
        each[0].map_count,
        Some(3),
        "the task's own instance expanded into 3"
    );
    assert!(
        e.log(&run, "each", 1).contains("expanding over 3 items"),
        "{}",
        e.log(&run, "each", 1)
    );
    assert!(mapped_log(&e, &run, "each", 1, 1).contains("each[1]"));

    // max_active 1: one instance's try ended before the next one's began.
    let mut spans = Vec::new();
    for t in &each[1..] {
        let tries = e.sched.store().list_tries(&t.id).await.unwrap();
        assert_eq!(tries.len(), 1);
        spans.push((tries[0].start_date, tries[0].end_date.unwrap()));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "instances overlapped: {spans:?}");
    }

    // Downstream tasks read the mapped outputs as a list in item order.
    assert!(
        e.log(&run, "gather", 1).contains("got c.csv,a.csv,b.csv"),
        "{}",
        e.log(&run, "gather", 1)
    );
    // A mapped task expands over another's outputs, one instance each.
    let again = instances(&e, &run, "each_again").await;
    assert_eq!(again.len(), 4, "its own and three");
    assert!(mapped_log(&e, &run, "each_again", 2, 1).contains("again b.csv"));
    // A param (the run's conf wins over the DAG's default).
    assert!(
        e.log(&run, "regions_done", 1)
            .contains("regions region-eu,region-us,region-ap"),
        "{}",
        e.log(&run, "regions_done", 1)
    );
    // An empty list skips the task, and all_success skips what follows.
    let nothing = instances(&e, &run, "nothing").await;
    assert_eq!(nothing.len(), 1);
    assert_eq!(nothing[0].state, TaskState::Skipped);
    assert_eq!(
        instances(&e, &run, "after_nothing").await[0].state,
        TaskState::Skipped
    );
    e.stop().await;
}
both_backends!(mapped_tasks_run_once_per_item, mapped_tasks);

const CAPPED: &str = r#"
tasks:
  too_many:
    kind: shell
    command: echo '[1, 2, 3, 4]' > "$WEIR_OUTPUT"
  capped:
    kind: shell
    depends_on: [too_many]
    expand: {items: "{{ tasks.too_many.output }}", max_items: 3}
    command: "true"
  not_a_list:
    kind: shell
    output: last_line
    command: echo "a.csv"
  over_text:
    kind: shell
    depends_on: [not_a_list]
    expand: {items: "{{ tasks.not_a_list.output }}"}
    command: "true"
  from_conf:
    kind: shell
    expand: {items: "{{ params.files }}", max_items: 2}
    command: "true"
"#;

async fn capped(db: &TestDb) {
    let e = Site::start(db, CAPPED, &[]).await;
    let run = e
        .trigger(serde_json::json!({"files": ["a", "b", "c"]}))
        .await;
    let ended = e.wait(&run).await;
    assert_eq!(ended.state, RunState::Failed);
    let tries = e.tries(&run).await;
    let error = |task: &str| {
        tries
            .iter()
            .find(|t| t.starts_with(&format!("{task} try 1")))
            .cloned()
            .unwrap_or_default()
    };
    // The upstream task whose output is too long fails, naming the limit.
    assert!(
        error("too_many").contains(
            "`capped` expands over `tasks.too_many.output`, which has 4 items: more than the 3"
        ),
        "{tries:#?}"
    );
    assert_eq!(
        instances(&e, &run, "capped").await[0].state,
        TaskState::UpstreamFailed
    );
    // An output that is not a list fails the task that published it.
    assert!(
        error("not_a_list").contains("which is a string here, not a list"),
        "{tries:#?}"
    );
    // A param past the cap fails the expansion itself.
    assert!(
        error("from_conf").contains("3 items, more than the 2"),
        "{tries:#?}"
    );
    let from_conf = instances(&e, &run, "from_conf").await;
    assert_eq!(from_conf.len(), 1, "no instance was made");
    assert_eq!(from_conf[0].state, TaskState::Failed);
    e.stop().await;
}
both_backends!(lists_past_the_cap_fail_the_task_that_made_them, capped);

const FLAKY: &str = r#"
tasks:
  each:
    kind: shell
    expand: {items: [1, 2, 3, 2]}
    notify: [{on: [failure], command: "true"}]
    command: test {{ item }} != 2 || test -e "{{ params.marker }}"
  after:
    kind: shell
    depends_on: [each]
    command: "true"
"#;

async fn flaky_mapped(db: &TestDb) {
    let e = Site::start(db, FLAKY, &[]).await;
    let marker = e.dir.path().join("marker");
    let run = e
        .trigger(serde_json::json!({"marker": marker.display().to_string()}))
        .await;
    let ended = e.wait(&run).await;
    assert_eq!(ended.state, RunState::Failed);
    let each = instances(&e, &run, "each").await;
    let states: Vec<TaskState> = each.iter().map(|t| t.state).collect();
    use TaskState::*;
    assert_eq!(states, [Success, Success, Failed, Success, Failed]);
    assert_eq!(instances(&e, &run, "after").await[0].state, UpstreamFailed);
    // Each failed instance fires its own notification.
    let mut fired: Vec<(Option<String>, i64)> = e
        .sched
        .store()
        .run_notifications(run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.task_id, n.map_index))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [(Some("each".to_owned()), 1), (Some("each".to_owned()), 3)]
    );

    // Clearing failed tasks reruns the failed instance only, not the expansion.
    std::fs::write(&marker, "").unwrap();
    e.sched
        .clear(
            "t",
            &run.run_id,
            &ClearSpec {
                task_ids: vec!["each".into()],
                downstream: true,
                only_failed: true,
                ..ClearSpec::default()
            },
            "test",
        )
        .await
        .unwrap();
    let ended = e
        .wait(&e.sched.store().get_run_by_pk(run.id).await.unwrap())
        .await;
    assert_eq!(ended.state, RunState::Success, "{:#?}", e.tries(&run).await);
    let each = instances(&e, &run, "each").await;
    let tries: Vec<i64> = each.iter().map(|t| t.try_number).collect();
    assert_eq!(
        tries,
        [1, 1, 2, 1, 2],
        "only the failed instances ran again"
    );
    assert_eq!(instances(&e, &run, "after").await[0].state, Success);
    e.stop().await;
}
both_backends!(
    a_failed_instance_fails_the_run_and_clearing_it_runs_only_it,
    flaky_mapped
);

const RETRIED: &str = r#"
tasks:
  each:
    kind: shell
    retries: 1
    retry_delay: 1s
    expand: {items: [1, 2, 3]}
    command: test {{ item }} != 2 || test $WEIR_TRY_NUMBER -gt 1
"#;

async fn retried_mapped(db: &TestDb) {
    let e = Site::start(db, RETRIED, &[]).await;
    let run = e.trigger(serde_json::json!({})).await;
    let ended = e.wait(&run).await;
    assert_eq!(ended.state, RunState::Success, "{:#?}", e.tries(&run).await);
    let each = instances(&e, &run, "each").await;
    let tries: Vec<(i64, i64)> = each.iter().map(|t| (t.map_index, t.try_number)).collect();
    assert_eq!(
        tries,
        [(-1, 1), (0, 1), (1, 2), (2, 1)],
        "the failing instance alone was retried, under its own retries"
    );
    assert!(mapped_log(&e, &run, "each", 1, 1).contains("the try failed"));
    assert!(mapped_log(&e, &run, "each", 1, 2).contains("the try succeeded"));
    e.stop().await;
}
both_backends!(a_mapped_instance_is_retried_on_its_own, retried_mapped);
