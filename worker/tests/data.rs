//! Data tasks end to end on both backends: generated files with known
//! defects go through extract, validate, transform and load in a real
//! scheduler and worker pool; the tests read the versions written back with
//! DataFusion and the target tables with SQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use weir_core::both_backends;
use weir_core::state::{RunState, TaskState};
use weir_core::store::{CheckResultRecord, DatasetVersionRecord, QualityRecord, RunRecord};
use weir_core::testing::TestDb;
use weir_worker::data::home::{Home, Place};

mod common;
use common::{Extras, Site};

impl Site {
    /// Triggers a run and waits for its end.
    async fn run(&self) -> RunRecord {
        let run = self.trigger(serde_json::json!({})).await;
        self.wait(&run).await
    }

    async fn state(&self, run: &RunRecord, task: &str) -> TaskState {
        let tis = self
            .sched
            .store()
            .list_task_instances(run.id)
            .await
            .unwrap();
        tis.iter().find(|t| t.task_id == task).unwrap().state
    }

    /// The newest version of a dataset.
    async fn latest(&self, dataset: &str) -> DatasetVersionRecord {
        self.sched
            .store()
            .latest_dataset_version(dataset)
            .await
            .unwrap()
            .unwrap()
    }

    /// What the run's validate task of `dataset` recorded: counts and checks.
    async fn quality(
        &self,
        run: &RunRecord,
        dataset: &str,
    ) -> (QualityRecord, Vec<CheckResultRecord>) {
        self.sched
            .store()
            .quality_of_run("t", &run.run_id)
            .await
            .unwrap()
            .into_iter()
            .find(|(q, _)| q.dataset == dataset)
            .unwrap()
    }

    /// The rows of the newest version of a dataset, as text, sorted.
    async fn rows(&self, dataset: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let v = self.latest(dataset).await;
        read_rows(&PathBuf::from(v.path.unwrap()), columns).await
    }
}

async fn read_rows(dir: &std::path::Path, columns: &[&str]) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(format!("{}/", dir.display()), ParquetReadOptions::default())
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<_> = columns
            .iter()
            .map(|c| {
                let col = b
                    .column_by_name(c)
                    .unwrap_or_else(|| panic!("no column {c}"));
                match col.data_type() {
                    // A list (`_weir_errors`) reads as its items joined by "; ".
                    DataType::List(_) => {
                        let list = col.as_list::<i32>();
                        let joined: datafusion::arrow::array::StringArray = (0..list.len())
                            .map(|i| {
                                let items = cast(&list.value(i), &DataType::Utf8).unwrap();
                                let items = items.as_string::<i32>();
                                Some(
                                    (0..items.len())
                                        .map(|j| items.value(j))
                                        .collect::<Vec<_>>()
                                        .join("; "),
                                )
                            })
                            .collect();
                        std::sync::Arc::new(joined) as _
                    }
                    _ => cast(col, &DataType::Utf8).unwrap(),
                }
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|a| {
                        if a.is_null(i) {
                            "∅".to_owned()
                        } else {
                            a.as_string::<i32>().value(i).to_owned()
                        }
                    })
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

const CUSTOMERS: &str = "id,name\n1,Ada\n2,Blaise\n3,Carl\n";

const ORDERS: &str = "\
id,customer,amount,status,email,code,note
1,1,10.50,paid,a@x.io,ABC,fine
2,2,0,new,b@x.io,XYZ,fine
3,1,x,paid,c@x.io,ABC,bad amount
4,2,-1,paid,d@x.io,ABC,negative and unpaid
5,3,5,lost,e@x.io,ABC,bad status
6,3,5,paid,not-mail,ABC,bad email
,1,5,paid,g@x.io,ABC,no id
8,1,5,paid,h@x.io,ABC,twin one
8,2,6,paid,i@x.io,ABC,twin two
9,99,5,paid,j@x.io,ABC,unknown customer
10,1,5,paid,k@x.io,abcd,bad code
11,2,2000,paid,l@x.io,ABC,too much
12,3,7,new,,ABC,fine without email
";

fn pipeline(extra_checks: &str, max_quarantined: &str) -> String {
    format!(
        r#"
tasks:
  customers:
    kind: extract
    source: {{format: csv, path: "in/customers.csv"}}
    output: raw.customers
  clean_customers:
    kind: validate
    input: raw.customers
    contract:
      columns:
        id: {{type: int64, required: true}}
        name: {{type: string}}
      primary_key: [id]
    output: clean.customers
  orders:
    kind: extract
    source: {{format: csv, path: "in/orders*.csv"}}
    output: raw.orders
  check_orders:
    kind: validate
    input: raw.orders
    retries: 0
    {max_quarantined}
    contract:
      columns:
        id: {{type: int64, required: true}}
        customer: {{type: int64, references: clean.customers.id}}
        amount: {{type: "decimal(10,2)", min: 0, max: 1000}}
        status: {{type: string, values: [new, paid]}}
        email: {{type: string, format: email}}
        code: {{type: string, format: {{regex: "[A-Z]{{3}}"}}}}
      primary_key: [id]
      extra_columns: keep
      checks:
        - rule: "amount > 0 or status = 'new'"
          name: paid_has_amount
{extra_checks}
    output: clean.orders
"#
    )
}

both_backends!(each_defect_is_quarantined_with_its_reasons, defects_case);
async fn defects_case(db: &TestDb) {
    let site = Site::start(
        db,
        &pipeline("", ""),
        &[
            ("in/customers.csv", CUSTOMERS),
            ("in/orders.csv", ORDERS),
            ("count_orders.yaml", COUNT_ORDERS),
        ],
    )
    .await;
    let run = site.run().await;
    assert_eq!(
        run.state,
        RunState::Success,
        "{}",
        site.log(&run, "check_orders", 1)
    );

    let validated = site
        .sched
        .store()
        .task_outputs(run.id, &["check_orders".into()])
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(validated[0].2.as_deref().unwrap()).unwrap();
    assert_eq!(
        out,
        serde_json::json!({
            "dataset": "clean.orders", "version": 1, "rows": 3, "rows_in": 13, "quarantined": 10,
            "quarantine": {"dataset": "quarantine.orders", "version": 1, "rows": 10},
        }),
        "a validate task publishes its counts"
    );
    let clean = site.rows("clean.orders", &["id", "amount", "note"]).await;
    assert_eq!(
        clean,
        vec![
            vec!["1".to_owned(), "10.50".into(), "fine".into()],
            vec!["12".into(), "7.00".into(), "fine without email".into()],
            vec!["2".into(), "0.00".into(), "fine".into()],
        ]
    );
    let q = site.latest("quarantine.orders").await;
    let schema: Vec<serde_json::Value> =
        serde_json::from_str(q.schema.as_deref().unwrap_or("[]")).unwrap();
    let errors = schema.iter().find(|f| f["name"] == "_weir_errors").unwrap();
    assert_eq!(
        errors["type"], "List(Utf8)",
        "the reasons are a list of text"
    );
    let quarantined = site
        .rows("quarantine.orders", &["note", "_weir_errors", "_weir_row"])
        .await;
    let reasons: BTreeMap<String, (String, String)> = quarantined
        .into_iter()
        .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
        .collect();
    let expect = [
        ("bad amount", "type:amount", "3"),
        (
            "negative and unpaid",
            "min:amount; rule:paid_has_amount",
            "4",
        ),
        ("bad status", "values:status", "5"),
        ("bad email", "format:email", "6"),
        ("no id", "required:id; primary_key:id", "7"),
        ("twin one", "primary_key:id", "8"),
        ("twin two", "primary_key:id", "9"),
        ("unknown customer", "references:customer", "10"),
        ("bad code", "format:code", "11"),
        ("too much", "max:amount", "12"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for (note, why, row) in expect {
        assert_eq!(
            reasons.get(note),
            Some(&(why.to_owned(), row.to_owned())),
            "{note}: {reasons:#?}"
        );
    }

    // The catalog: counts reconcile, every check is recorded, lineage is kept.
    let (orders, checks) = site.quality(&run, "raw.orders").await;
    assert_eq!(
        (orders.rows_in, orders.rows_clean, orders.rows_quarantined),
        (13, 3, 10)
    );
    assert!(orders.published);
    let failed: BTreeMap<String, i64> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            (
                format!("{}:{}", c.name, c.column_name.clone().unwrap_or_default()),
                c.failed,
            )
        })
        .collect();
    assert_eq!(
        failed,
        BTreeMap::from([
            ("type:amount".to_owned(), 1),
            ("required:id".into(), 1),
            ("min:amount".into(), 1),
            ("max:amount".into(), 1),
            ("values:status".into(), 1),
            ("format:email".into(), 1),
            ("format:code".into(), 1),
            ("primary_key:id".into(), 3),
            ("references:customer".into(), 1),
            ("paid_has_amount:".into(), 1),
        ])
    );
    let clean_v = site.latest("clean.orders").await;
    let raw_v = site.latest("raw.orders").await;
    let cust_v = site.latest("clean.customers").await;
    assert_eq!(clean_v.input_ids(), vec![raw_v.id, cust_v.id]);
    assert!(clean_v.schema.unwrap().contains("\"amount\""));
    assert!(clean_v.path.unwrap().ends_with("clean/orders/v=1"));
    let log = site.log(&run, "check_orders", 1);
    assert!(
        log.contains("13 row(s) in, 3 clean, 10 quarantined"),
        "{log}"
    );
    assert!(
        log.contains("quarantined references (customer): 1 row(s)"),
        "{log}"
    );

    // No temporary folder is left, and a leftover one (a crash mid-write)
    // is never a version: readers go through the catalog.
    let folder = site.dir.path().join("data/clean/orders");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["_delta_log", "v=1"]);
    assert_eq!(
        hidden_entries(&site.dir.path().join("data")),
        Vec::<String>::new()
    );
    // A crash mid-write leaves a whole copy of the rows in a temporary
    // folder; a task reading the dataset still sees only version 1.
    let leftover = folder.join(".tmp-crashed");
    std::fs::create_dir_all(&leftover).unwrap();
    for file in std::fs::read_dir(folder.join("v=1")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, leftover.join(file.file_name().unwrap())).unwrap();
    }
    let count = site
        .sched
        .trigger(
            "count_orders",
            weir_core::scheduler::Trigger {
                actor: "test".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let count = site.wait(&count).await;
    assert_eq!(count.state, RunState::Success);
    assert_eq!(
        site.rows("curated.order_count", &["n"]).await,
        vec![vec!["3".to_owned()]],
        "only the catalogued version is read"
    );
}

/// A second DAG that reads `clean.orders` as an external input.
const COUNT_ORDERS: &str = r#"
tasks:
  count:
    kind: transform
    inputs: [clean.orders]
    sql: select count(*) as n from clean.orders
    output: curated.order_count
"#;

both_backends!(
    dataset_checks_warn_fail_and_hold_back_the_clean_version,
    dataset_checks_case
);
async fn dataset_checks_case(db: &TestDb) {
    // Every dataset check passing, as warnings, then failing.
    let passing = "        - row_count: {min: 3, max: 100}\n        - missing_percent: {column: email, max: 50%}\n        - duplicates: {columns: [customer], max: 5}\n        - row_count_change: {max: 50%}\n";
    let site = Site::start(
        db,
        &pipeline(passing, "max_quarantined: 80%"),
        &[("in/customers.csv", CUSTOMERS), ("in/orders.csv", ORDERS)],
    )
    .await;
    let run = site.run().await;
    assert_eq!(
        run.state,
        RunState::Success,
        "{}",
        site.log(&run, "check_orders", 1)
    );
    let (_, checks) = site.quality(&run, "raw.orders").await;
    let by_name = |n: &str| checks.iter().find(|c| c.name == n).unwrap().clone();
    assert!(by_name("row_count").passed);
    assert_eq!(by_name("row_count").observed.as_deref(), Some("3"));
    assert!(by_name("missing_percent").passed);
    assert!(by_name("duplicates").passed);
    assert!(by_name("row_count_change").passed, "no history yet");
    assert!(by_name("max_quarantined").passed);

    site.stop().await;

    // Error-severity failures: nothing is published, quarantine is kept.
    let failing = "        - row_count: {min: 50}\n        - missing_percent: {column: email, max: 1%}\n        - duplicates: {columns: [status], max: 0}\n        - name: tiny\n          row_count_change: {max: 1}\n";
    let site = Site::start(
        db,
        &pipeline(failing, "max_quarantined: 10%"),
        &[
            ("in/customers.csv", CUSTOMERS),
            ("in/orders.csv", ORDERS),
            ("in/orders2.csv", "id,customer,amount,status,email,code,note\n13,1,5,paid,m@x.io,ABC,fine\n14,2,5,paid,n@x.io,ABC,fine\n"),
        ],
    )
    .await;
    let before = site.latest("clean.orders").await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(site.state(&run, "check_orders").await, TaskState::Failed);
    let after = site.latest("clean.orders").await;
    assert_eq!(
        after.id, before.id,
        "write-audit-publish: no new clean version"
    );
    let (q, checks) = site.quality(&run, "raw.orders").await;
    assert!(!q.published && q.clean_version.is_none() && q.quarantine_version.is_some());
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| {
            !c.passed
                && ![
                    "type",
                    "required",
                    "min",
                    "max",
                    "values",
                    "format",
                    "references",
                    "primary_key",
                    "rule",
                ]
                .contains(&c.kind.as_str())
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        vec![
            "row_count",
            "missing_percent",
            "duplicates",
            "tiny",
            "max_quarantined"
        ]
    );
    let missing = checks.iter().find(|c| c.name == "missing_percent").unwrap();
    assert!(
        missing
            .observed
            .as_deref()
            .unwrap_or("")
            .ends_with(&format!(" of {})", q.rows_in)),
        "missing_percent counts every row read: {missing:?}"
    );
    let log = site.log(&run, "check_orders", 1);
    assert!(log.contains("clean.orders not published"), "{log}");
    assert_eq!(
        hidden_entries(&site.dir.path().join("data")),
        Vec::<String>::new(),
        "the unpublished clean rows and the scratch files are removed"
    );
}

/// Names of hidden files and folders (staging, scratch) anywhere under `dir`;
/// the data folder's catalog marker is meant to be there.
fn hidden_entries(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == weir_worker::resources::CATALOG_MARKER {
            continue;
        }
        if name.starts_with('.') {
            found.push(entry.path().display().to_string());
        } else if entry.file_type().unwrap().is_dir() {
            found.extend(hidden_entries(&entry.path()));
        }
    }
    found
}

both_backends!(missing_and_extra_columns_fail_by_name, columns_case);
async fn columns_case(db: &TestDb) {
    let dag = r#"
tasks:
  e:
    kind: extract
    source: {format: csv, path: "in/x.csv"}
    output: raw.x
  v:
    kind: validate
    input: raw.x
    retries: 0
    contract:
      columns:
        a: {type: int64}
        b: {type: string}
      extra_columns: fail
    output: clean.x
"#;
    let site = Site::start(db, dag, &[("in/x.csv", "a,c\n1,2\n")]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    let log = site.log(&run, "v", 1);
    assert!(
        log.contains("column(s) `b` declared by the contract are missing from raw.x"),
        "{log}"
    );
}

const LOAD: &str = r#"
tasks:
  e:
    kind: extract
    source: {format: ndjson, path: "in/sales.ndjson"}
    output: raw.sales
  t:
    kind: transform
    inputs: [raw.sales]
    unchecked_inputs: [raw.sales]
    sql: "select region, sum(amount) as total, count(*) as n from raw.sales group by region"
    output: curated.totals
  up:
    kind: load
    input: curated.totals
    target: {connection: warehouse, table: totals_up, mode: upsert, key: [region]}
  app:
    kind: load
    input: curated.totals
    target: {connection: warehouse, table: totals_app, mode: append}
  rep:
    kind: load
    input: curated.totals
    target: {connection: warehouse, table: totals_rep, mode: replace}
  file:
    kind: load
    input: curated.totals
    target: {path: "out/totals.json", format: json}
  summary:
    kind: shell
    depends_on: [up]
    command: echo "wrote={{ tasks.t.output.dataset }} v{{ tasks.t.output.version }} rows={{ tasks.t.output.rows }} loaded={{ tasks.up.output.rows }} into={{ tasks.up.output.target }}"
"#;

async fn count(url: &str, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}

both_backends!(loads_never_duplicate_rows_when_run_again, load_case);
async fn load_case(db: &TestDb) {
    let sales = "{\"region\": \"eu\", \"amount\": 10}\n{\"region\": \"us\", \"amount\": 5}\n{\"region\": \"eu\", \"amount\": 1}\n";
    let site = Site::start(db, LOAD, &[("in/sales.ndjson", sales)]).await;
    let run = site.run().await;
    let logs: Vec<String> = ["e", "t", "up", "app", "rep", "file"]
        .iter()
        .map(|t| site.log(&run, t, 1))
        .collect();
    assert_eq!(run.state, RunState::Success, "{logs:#?}");
    for t in ["totals_up", "totals_app", "totals_rep"] {
        assert_eq!(count(&db.url, t).await, 2, "{t}");
    }
    // Data tasks publish what they wrote; downstream templates read it.
    let summary = site.log(&run, "summary", 1);
    assert!(
        summary.contains("wrote=curated.totals v1 rows=2 loaded=2 into=warehouse.totals_up"),
        "{summary}"
    );
    let mut outputs = site
        .sched
        .store()
        .task_outputs(run.id, &["e".into(), "file".into()])
        .await
        .unwrap();
    outputs.sort();
    let e: serde_json::Value = serde_json::from_str(outputs[0].2.as_deref().unwrap()).unwrap();
    assert_eq!(
        e,
        serde_json::json!({"dataset": "raw.sales", "version": 1, "rows": 3})
    );
    let file: serde_json::Value = serde_json::from_str(outputs[1].2.as_deref().unwrap()).unwrap();
    assert_eq!(file["rows"], 2);
    assert!(
        file["target"]
            .as_str()
            .unwrap()
            .ends_with("out/totals.json"),
        "{file}"
    );
    // Clearing the loads runs them again: the same rows, not twice as many.
    site.sched
        .clear(
            "t",
            &run.run_id,
            &weir_core::scheduler::ClearSpec {
                task_ids: vec!["up".into(), "app".into(), "rep".into()],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let run = site.wait(&run).await;
    let logs: Vec<String> = ["up", "app", "rep"]
        .iter()
        .map(|t| site.log(&run, t, 2))
        .collect();
    assert_eq!(run.state, RunState::Success, "{logs:#?}");
    for t in ["totals_up", "totals_app", "totals_rep"] {
        assert_eq!(count(&db.url, t).await, 2, "{t} after a second load");
    }
    // A second run appends its own rows, and upserts update in place.
    let second = site.run().await;
    assert_eq!(second.state, RunState::Success);
    assert_eq!(count(&db.url, "totals_up").await, 2);
    assert_eq!(count(&db.url, "totals_app").await, 4);
    assert_eq!(count(&db.url, "totals_rep").await, 2);
    let file = std::fs::read_to_string(site.dir.path().join("dags/out/totals.json")).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{file}");
}

/// The rows of `sql` on the SQLite or PostgreSQL database at `url`.
async fn fetch_all<T>(url: &str, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    }
}

both_backends!(loads_keep_every_value_as_it_was, load_values_case);
async fn load_values_case(db: &TestDb) {
    // Every bound type, text that needs quoting, empty text beside NULL, and
    // enough rows to span several batches.
    let dag = r#"
tasks:
  e:
    kind: extract
    source: {format: csv, path: "in/n.csv"}
    output: raw.n
  t:
    kind: transform
    inputs: [raw.n]
    unchecked_inputs: [raw.n]
    sql: |
      select * from (values
        (1, 1.5, true, date '2026-01-02', timestamp '2026-01-02 03:04:05', cast(12.34 as decimal(10,2)), 'a, "quoted"' || chr(10) || 'line'),
        (2, cast(null as double), cast(null as boolean), cast(null as date), cast(null as timestamp), cast(null as decimal(10,2)), ''),
        (3, -2.0, false, date '1999-12-31', timestamp '1999-12-31 23:59:59', cast(-0.5 as decimal(10,2)), cast(null as varchar)),
        (4, 0.0, true, date '2026-01-02', timestamp '2026-01-02 00:00:00', cast(0 as decimal(10,2)), 'weir-null')
      ) as v(id, f, b, d, ts, amt, s)
      union all
      select cast(n as bigint) + 100, 1.0, true, date '2026-01-01', timestamp '2026-01-01 00:00:00', cast(1 as decimal(10,2)), 'many' from raw.n
    output: curated.values
  l:
    kind: load
    input: curated.values
    target: {connection: warehouse, table: all_values, mode: upsert, key: [id]}
  e2:
    kind: extract
    source: {format: csv, path: "in/twice.csv"}
    output: raw.twice
  l2:
    kind: load
    input: raw.twice
    unchecked_inputs: [raw.twice]
    target: {connection: warehouse, table: twice, mode: upsert, key: [k]}
"#;
    let numbers: String = std::iter::once("n\n".to_owned())
        .chain((0..20_000).map(|i| format!("{i}\n")))
        .collect();
    let site = Site::start(
        db,
        dag,
        &[
            ("in/n.csv", numbers.as_str()),
            ("in/twice.csv", "k,v\na,first\nb,only\na,last\n"),
        ],
    )
    .await;
    let run = site.run().await;
    assert_eq!(
        run.state,
        RunState::Success,
        "{}{}",
        site.log(&run, "l", 1),
        site.log(&run, "l2", 1)
    );
    // A key loaded twice in one upsert: its last row wins.
    let sql = "SELECT k, v FROM twice ORDER BY k";
    let twice: Vec<(String, String)> = fetch_all(&db.url, sql).await;
    assert_eq!(
        twice,
        vec![("a".into(), "last".into()), ("b".into(), "only".into())]
    );
    assert_eq!(count(&db.url, "all_values").await, 20_004);
    let postgres = !db.url.starts_with("sqlite:");
    let sql = if postgres {
        "SELECT CAST(id AS TEXT), CAST(f AS TEXT), CAST(b AS TEXT), CAST(d AS TEXT), \
         to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), CAST(amt AS TEXT), s \
         FROM all_values WHERE id < 100 ORDER BY id"
    } else {
        "SELECT CAST(id AS TEXT), CAST(f AS TEXT), CASE b WHEN 1 THEN 'true' WHEN 0 THEN 'false' END, d, \
         substr(ts, 1, 19), CAST(amt AS TEXT), s FROM all_values WHERE id < 100 ORDER BY id"
    };
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = fetch_all(&db.url, sql).await;
    let some = |s: &str| Some(s.to_owned());
    let (zero, amount_half, amount_zero) = if postgres {
        ("0", "-0.50", "0.00")
    } else {
        ("0.0", "-0.5", "0")
    };
    assert_eq!(
        rows,
        vec![
            (
                "1".to_owned(),
                some("1.5"),
                some("true"),
                some("2026-01-02"),
                some("2026-01-02T03:04:05"),
                some("12.34"),
                some("a, \"quoted\"\nline")
            ),
            ("2".to_owned(), None, None, None, None, None, some("")),
            (
                "3".to_owned(),
                some(if postgres { "-2" } else { "-2.0" }),
                some("false"),
                some("1999-12-31"),
                some("1999-12-31T23:59:59"),
                some(amount_half),
                None
            ),
            (
                "4".to_owned(),
                some(zero),
                some("true"),
                some("2026-01-02"),
                some("2026-01-02T00:00:00"),
                some(amount_zero),
                some("weir-null")
            ),
        ]
    );
}

both_backends!(transforms_refuse_anything_but_a_query, refuse_case);
async fn refuse_case(db: &TestDb) {
    for (sql, word) in [
        ("create table x as select 1", "CREATE"),
        ("copy (select 1) to '/tmp/weir-x.csv'", "COPY"),
        (
            "create external table p stored as csv location '/etc/passwd'",
            "CREATE",
        ),
        ("drop table raw.s", "DROP"),
    ] {
        let dag = format!(
            "tasks:\n  e:\n    kind: extract\n    source: {{format: csv, path: \"in/s.csv\"}}\n    output: raw.s\n  t:\n    kind: transform\n    retries: 0\n    inputs: [raw.s]\n    unchecked_inputs: [raw.s]\n    sql: \"{sql}\"\n    output: curated.s\n"
        );
        let site = Site::start(db, &dag, &[("in/s.csv", "a\n1\n")]).await;
        let run = site.run().await;
        assert_eq!(run.state, RunState::Failed, "{sql}");
        let log = site.log(&run, "t", 1);
        assert!(
            log.contains(&format!(
                "only SELECT or WITH queries are allowed in a transform; {word} is refused"
            )),
            "{sql}: {log}"
        );
        site.stop().await;
    }
    // Queries can read the input datasets only: no file-reading functions,
    // no file paths as tables.
    for (sql, named) in [
        ("select * from read_csv('/etc/passwd')", "read_csv"),
        ("select * from read_parquet('/etc/passwd')", "read_parquet"),
        ("select * from '/etc/passwd'", "/etc/passwd"),
    ] {
        let dag = format!(
            "tasks:\n  e:\n    kind: extract\n    source: {{format: csv, path: \"in/s.csv\"}}\n    output: raw.s\n  t:\n    kind: transform\n    retries: 0\n    inputs: [raw.s]\n    unchecked_inputs: [raw.s]\n    sql: \"{sql}\"\n    output: curated.s\n"
        );
        let site = Site::start(db, &dag, &[("in/s.csv", "a\n1\n")]).await;
        let run = site.run().await;
        assert_eq!(run.state, RunState::Failed, "{sql}");
        let log = site.log(&run, "t", 1);
        assert!(
            log.contains(named) && !log.contains("root:"),
            "{sql}: {log}"
        );
        site.stop().await;
    }
}

both_backends!(
    retention_deletes_old_versions_and_records_it,
    retention_case
);
async fn retention_case(db: &TestDb) {
    let dag = "tasks:\n  e:\n    kind: extract\n    source: {format: csv, path: \"in/s.csv\"}\n    output: raw.s\n";
    let rules = weir_core::config::RetentionRules(
        [(
            "raw".to_owned(),
            weir_core::config::RetentionConfig {
                keep: Some(2),
                max_age: None,
            },
        )]
        .into(),
    );
    let site = Site::start_with(
        db,
        dag,
        Extras {
            files: &[("in/s.csv", "a\n1\n")],
            retention: rules,
            ..Extras::default()
        },
    )
    .await;
    for _ in 0..4 {
        let r = site.run().await;
        assert_eq!(r.state, RunState::Success, "{}", site.log(&r, "e", 1));
    }
    let versions = site
        .sched
        .store()
        .dataset_versions(Some("raw.s"))
        .await
        .unwrap();
    let live: Vec<i64> = versions
        .iter()
        .filter(|v| v.deleted_at.is_none())
        .map(|v| v.version)
        .collect();
    assert_eq!(live, vec![3, 4]);
    let folder = site.dir.path().join("data/raw/s");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["_delta_log", "v=3", "v=4"]);
    // The Delta table: its latest snapshot is version 4's file, version 3's
    // commit still reads (its file kept by the vacuum), and what the
    // vacuum deleted is gone from disk too.
    use weir_worker::data::delta;
    let latest = delta::open(&Place::Local(folder.clone()), None)
        .await
        .unwrap()
        .unwrap();
    let files = |t: &deltalake_core::DeltaTable| -> Vec<String> {
        t.snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|f| f.path().into_owned())
            .collect()
    };
    let kept: Vec<_> = versions.iter().filter(|v| v.deleted_at.is_none()).collect();
    let d4 = kept[1].delta_version.expect("version 4 was committed");
    let d3 = kept[0].delta_version.expect("version 3 was committed");
    assert!(
        d3 < d4 && latest.version().unwrap() > d4 as u64,
        "the vacuum commits come after"
    );
    assert!(
        files(&latest).iter().all(|p| p.starts_with("v=4/")),
        "{:?}",
        files(&latest)
    );
    let at3 = delta::files_at(&Place::Local(folder.clone()), d3)
        .await
        .unwrap();
    assert!(
        !at3.is_empty()
            && at3
                .iter()
                .all(|f| f.path.starts_with("v=3/") && folder.join(&f.path).exists())
    );
    let report = weir_worker::data::verify::verify(
        site.sched.store().as_ref(),
        &Home::Local(site.dir.path().join("data")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        report.findings,
        vec![],
        "verify finds the catalog and the Delta log agree"
    );
    let (audit, _) = site
        .sched
        .store()
        .list_audit(&weir_core::store::AuditFilter::default(), 100, 0)
        .await
        .unwrap();
    let deletions: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == weir_core::store::AuditAction::DeleteDatasetVersion)
        .map(|a| a.actor.as_str())
        .collect();
    assert_eq!(deletions, vec!["retention", "retention"]);
    assert_eq!(site.rows("raw.s", &["a"]).await, vec![vec!["1".to_owned()]]);
}

async fn execute(url: &str, statements: &[&str]) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(*s))
                .execute(&pool)
                .await
                .unwrap();
        }
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(*s))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

both_backends!(extract_from_a_query_on_a_connection, query_case);
async fn query_case(db: &TestDb) {
    execute(
        &db.url,
        &[
            "CREATE TABLE src (id BIGINT, name TEXT, amount NUMERIC(10,2))",
            "INSERT INTO src VALUES (1, 'ada', 10.5), (2, 'blaise', NULL), (3, NULL, 7)",
        ],
    )
    .await;
    let dag = r#"
tasks:
  e:
    kind: extract
    retries: 0
    source: {sql: "select id, name, amount from src where id <= {{ params.top }} order by id", connection: warehouse}
    output: raw.src
params: {top: 2}
"#;
    let site = Site::start(db, dag, &[]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "e", 1));
    let rows = site
        .rows("raw.src", &["id", "name", "_weir_source", "_weir_row"])
        .await;
    assert_eq!(
        rows,
        vec![
            vec![
                "1".to_owned(),
                "ada".into(),
                "connection:warehouse".into(),
                "1".into()
            ],
            vec![
                "2".into(),
                "blaise".into(),
                "connection:warehouse".into(),
                "2".into()
            ],
        ]
    );
    let v = site.latest("raw.src").await;
    assert!(
        v.schema
            .unwrap()
            .contains("\"name\":\"id\",\"nullable\":true,\"type\":\"Int64\"")
    );

    site.stop().await;

    let bad = "tasks:\n  e:\n    kind: extract\n    retries: 0\n    source: {sql: \"delete from src\", connection: warehouse}\n    output: raw.gone\n";
    let site = Site::start(db, bad, &[]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    let log = site.log(&run, "e", 1);
    assert!(
        log.contains("only a query (SELECT or WITH) can be extracted"),
        "{log}"
    );
    assert_eq!(count(&db.url, "src").await, 3, "nothing was deleted");
}

both_backends!(every_file_format_round_trips, formats_case);
async fn formats_case(db: &TestDb) {
    // JSON array in; Parquet and CSV out through loads; both read back by extracts.
    let dag = r#"
tasks:
  from_json:
    kind: extract
    source: {format: json, path: "in/items.json"}
    output: raw.items
  keep_known:
    kind: validate
    input: raw.items
    contract:
      columns:
        sku: {type: string, required: true}
        qty: {type: int64, min: 0}
      extra_columns: drop
    output: clean.items
  to_parquet:
    kind: load
    input: clean.items
    target: {path: "out/items.parquet", format: parquet}
  to_csv:
    kind: load
    input: clean.items
    target: {path: "out/items.csv", format: csv}
  from_parquet:
    kind: extract
    depends_on: [to_parquet]
    source: {format: parquet, path: "out/items.parquet"}
    output: raw.items_parquet
  from_csv:
    kind: extract
    depends_on: [to_csv]
    source: {format: csv, path: "out/*.csv", delimiter: ",", null_values: ["", "NA"]}
    output: raw.items_csv
"#;
    let items = r#"[{"sku": "a", "qty": 2, "colour": "red"}, {"sku": "b", "qty": -1, "colour": "blue"}, {"sku": "c", "qty": 5, "colour": "NA"}]"#;
    let site = Site::start(db, dag, &[("in/items.json", items)]).await;
    let run = site.run().await;
    let logs: Vec<String> = [
        "from_json",
        "keep_known",
        "to_parquet",
        "from_parquet",
        "to_csv",
        "from_csv",
    ]
    .iter()
    .map(|t| site.log(&run, t, 1))
    .collect();
    assert_eq!(run.state, RunState::Success, "{logs:#?}");
    let expect = vec![
        vec!["a".to_owned(), "2".into()],
        vec!["c".into(), "5".into()],
    ];
    assert_eq!(site.rows("clean.items", &["sku", "qty"]).await, expect);
    let clean = site.latest("clean.items").await;
    assert!(
        !clean.schema.unwrap().contains("colour"),
        "extra_columns: drop"
    );
    assert_eq!(
        site.rows("raw.items_parquet", &["sku", "qty"]).await,
        expect
    );
    assert_eq!(site.rows("raw.items_csv", &["sku", "qty"]).await, expect);
    let sources = site.rows("raw.items_csv", &["_weir_source"]).await;
    assert!(sources[0][0].ends_with("out/items.csv"), "{sources:?}");
    let out: Vec<String> = std::fs::read_dir(site.dir.path().join("dags/out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(out.len(), 2, "no temporary files left: {out:?}");

    site.stop().await;

    // A file that is not what its format says fails the extract by name.
    let bad = "tasks:\n  e:\n    kind: extract\n    retries: 0\n    source: {format: json, path: \"in/x.json\"}\n    output: raw.x\n";
    let site = Site::start(db, bad, &[("in/x.json", "{\"not\": \"an array\"}")]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    assert!(
        site.log(&run, "e", 1)
            .contains("is not a JSON array of objects"),
        "{}",
        site.log(&run, "e", 1)
    );
}

both_backends!(
    freshness_is_measured_at_the_end_of_the_runs_data_interval,
    freshness_case
);
async fn freshness_case(db: &TestDb) {
    // A backfill of 2024-01-01: rows stamped that evening are 4 hours old
    // when the day's interval ends, whatever the wall clock says.
    let dag = r#"
schedule: "@daily"
start_date: "2100-01-01"
tasks:
  events:
    kind: extract
    source: {format: csv, path: "in/events.csv"}
    output: raw.events
  check_events:
    kind: validate
    input: raw.events
    contract:
      columns:
        id: {type: int64}
        at: {type: timestamp}
      checks:
        - freshness: {column: at, max_age: 6h}
    output: clean.events
"#;
    let site = Site::start(
        db,
        dag,
        &[(
            "in/events.csv",
            "id,at\n1,2024-01-01T08:00:00Z\n2,2024-01-01T20:00:00Z\n",
        )],
    )
    .await;
    let on = |day: &str| weir_core::scheduler::Trigger {
        logical_date: Some(format!("{day}T00:00:00Z").parse().unwrap()),
        actor: "test".into(),
        ..Default::default()
    };
    let fresh = site.sched.trigger("t", on("2024-01-01")).await.unwrap();
    let fresh = site.wait(&fresh).await;
    assert_eq!(
        fresh.state,
        RunState::Success,
        "{}",
        site.log(&fresh, "check_events", 1)
    );
    let (_, checks) = site.quality(&fresh, "raw.events").await;
    assert!(
        checks.iter().any(|c| c.name == "freshness" && c.passed),
        "{checks:?}"
    );

    // The run of 2024-01-05 sees the same rows four days old: it fails.
    let stale = site.sched.trigger("t", on("2024-01-05")).await.unwrap();
    let stale = site.wait(&stale).await;
    assert_eq!(stale.state, RunState::Failed);
    let (q, checks) = site.quality(&stale, "raw.events").await;
    assert!(!q.published);
    let check = checks.iter().find(|c| c.name == "freshness").unwrap();
    assert!(!check.passed, "{check:?}");
    assert!(
        check
            .observed
            .as_deref()
            .unwrap_or("")
            .contains("2024-01-06"),
        "the observation names the time it was measured at: {check:?}"
    );
    site.stop().await;
}

/// The Python that reads zone files in the next test (`WEIR_TEST_PYTHON`,
/// else `python3`), if it has pyarrow. CI installs it and must not skip.
/// Reads a version's folder with pyarrow: each row's `columns` as text,
/// lists as JSON arrays, sorted.
const READ_WITH_PYARROW: &str = r#"
import json, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
columns = sys.argv[2].split(",")
rows = []
for row in table.select(columns).to_pylist():
    rows.append([v if isinstance(v, list) else (None if v is None else str(v)) for v in (row[c] for c in columns)])
print(json.dumps(sorted(rows, key=json.dumps)))
"#;

#[tokio::test]
async fn zone_files_read_the_same_in_pyarrow() {
    let Some(python) = common::python_with("pyarrow") else {
        return;
    };
    let db = weir_core::testing::sqlite().await;
    let site = Site::start(
        &db,
        &pipeline("", ""),
        &[("in/customers.csv", CUSTOMERS), ("in/orders.csv", ORDERS)],
    )
    .await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success);
    let clean = site.latest("clean.orders").await;
    let quarantine = site.latest("quarantine.orders").await;
    let pyarrow = |path: &str, columns: &str| {
        let out = std::process::Command::new(&python)
            .args(["-c", READ_WITH_PYARROW, path, columns])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    // Clean rows: the same ids and notes as DataFusion reads.
    let mut ours = site.rows("clean.orders", &["id", "note"]).await;
    ours.sort_by_key(|r| serde_json::to_string(r).unwrap());
    assert_eq!(
        pyarrow(clean.path.as_deref().unwrap(), "id,note"),
        serde_json::json!(ours)
    );

    // Quarantined rows: every reason an item of a list.
    let theirs = pyarrow(quarantine.path.as_deref().unwrap(), "note,_weir_errors");
    let rows = theirs.as_array().unwrap();
    assert_eq!(rows.len() as i64, quarantine.rows.unwrap());
    let reasons_of = |note: &str| {
        rows.iter()
            .find(|r| r[0] == note)
            .unwrap_or_else(|| panic!("no quarantined row {note}: {theirs}"))[1]
            .clone()
    };
    assert_eq!(
        reasons_of("negative and unpaid"),
        serde_json::json!(["min:amount", "rule:paid_has_amount"])
    );
    assert_eq!(reasons_of("bad email"), serde_json::json!(["format:email"]));
    site.stop().await;
}

both_backends!(
    datasets_written_before_delta_tables_are_migrated,
    migrate_case
);
async fn migrate_case(db: &TestDb) {
    use weir_worker::data::{delta, migrate};
    let dag = "tasks:\n  e:\n    kind: extract\n    source: {format: csv, path: \"in/s.csv\"}\n    output: raw.s\n";
    let site = Site::start(db, dag, &[("in/s.csv", "a\n1\n")]).await;
    for _ in 0..3 {
        assert_eq!(site.run().await.state, RunState::Success);
    }
    // As an older weir left it: version folders, no Delta log, no Delta
    // versions in the catalog.
    let store = site.sched.store();
    let folder = site.dir.path().join("data/raw/s");
    std::fs::remove_dir_all(folder.join("_delta_log")).unwrap();
    for v in store.dataset_versions(Some("raw.s")).await.unwrap() {
        store.set_delta_version(v.id, None).await.unwrap();
    }

    let done = migrate::migrate(store.as_ref(), None).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].dataset, "raw.s");
    assert_eq!(done[0].versions, vec![(1, 0), (2, 1), (3, 2)]);
    let recorded: Vec<Option<i64>> = store
        .dataset_versions(Some("raw.s"))
        .await
        .unwrap()
        .iter()
        .map(|v| v.delta_version)
        .collect();
    assert_eq!(recorded, vec![Some(0), Some(1), Some(2)]);
    // Each commit is its version's files, and nothing was copied.
    for (n, d) in [(1, 0), (3, 2)] {
        let files = delta::files_at(&Place::Local(folder.clone()), d)
            .await
            .unwrap();
        assert!(
            !files.is_empty() && files.iter().all(|f| f.path.starts_with(&format!("v={n}/"))),
            "{files:?}"
        );
    }
    let report = weir_worker::data::verify::verify(
        store.as_ref(),
        &Home::Local(site.dir.path().join("data")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.findings, vec![]);
    // Once is enough; the next version is the next commit.
    assert_eq!(
        migrate::migrate(store.as_ref(), None).await.unwrap(),
        vec![]
    );
    assert_eq!(site.run().await.state, RunState::Success);
    assert_eq!(site.latest("raw.s").await.delta_version, Some(3));
    site.stop().await;
}

/// Reads one column of the Delta table `argv[1]` with `argv[2]` (deltalake
/// or polars) at Delta version `argv[3]` (the latest when negative); prints
/// the values as sorted strings.
const READ_DELTA: &str = r#"
import json, os, sys
path, engine, version, column = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
at = None if version < 0 else version
if engine == "deltalake":
    from deltalake import DeltaTable
    values = DeltaTable(path, version=at).to_pyarrow_table(columns=[column]).column(column).to_pylist()
else:
    import polars as pl
    values = pl.read_delta(path, version=at, columns=[column])[column].to_list()
print(json.dumps(sorted(str(v) for v in values)), flush=True)
# deltalake's reader threads can abort the interpreter's normal exit.
os._exit(0)
"#;

#[tokio::test]
async fn zones_read_as_delta_tables_in_deltalake_and_polars() {
    let Some(python) = common::python_with("deltalake, polars") else {
        return;
    };
    let db = weir_core::testing::sqlite().await;
    let site = Site::start(
        &db,
        &pipeline("", ""),
        &[("in/customers.csv", CUSTOMERS), ("in/orders.csv", ORDERS)],
    )
    .await;
    assert_eq!(site.run().await.state, RunState::Success);
    let (clean1, quarantine1) = (
        site.latest("clean.orders").await,
        site.latest("quarantine.orders").await,
    );
    // The second run's orders: the first five lines only.
    let fewer: String = ORDERS.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(site.dir.path().join("dags/in/orders.csv"), fewer).unwrap();
    assert_eq!(site.run().await.state, RunState::Success);
    let (clean2, quarantine2) = (
        site.latest("clean.orders").await,
        site.latest("quarantine.orders").await,
    );
    assert_eq!((clean2.version, quarantine2.version), (2, 2));

    let read = |dataset: &DatasetVersionRecord, engine: &str, at: Option<i64>, column: &str| {
        let table = std::path::Path::new(dataset.path.as_deref().unwrap())
            .parent()
            .unwrap();
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                READ_DELTA,
                table.to_str().unwrap(),
                engine,
                &at.unwrap_or(-1).to_string(),
                column,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<String>>(&out.stdout).unwrap()
    };
    let ours = |v: &DatasetVersionRecord, column: &'static str| {
        let v = v.clone();
        async move {
            let session = weir_worker::data::storage::session().unwrap();
            let df = weir_worker::data::storage::read_version(&session, &v)
                .await
                .unwrap();
            let batches = df
                .select_columns(&[column])
                .unwrap()
                .collect()
                .await
                .unwrap();
            let mut values = Vec::new();
            for b in &batches {
                let col = datafusion::arrow::compute::cast(
                    b.column(0),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .unwrap();
                let col = col
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .unwrap();
                values.extend(col.iter().map(|s| s.unwrap_or("None").to_owned()));
            }
            values.sort();
            values
        }
    };
    let (ids1, ids2) = (ours(&clean1, "id").await, ours(&clean2, "id").await);
    assert_ne!(ids1, ids2, "the two runs wrote different clean rows");
    let (notes1, notes2) = (
        ours(&quarantine1, "note").await,
        ours(&quarantine2, "note").await,
    );
    for engine in ["deltalake", "polars"] {
        // The clean table: the latest version is the second run's rows, and
        // travelling to the first version's Delta commit gives its rows.
        assert_eq!(read(&clean2, engine, None, "id"), ids2, "{engine}");
        assert_eq!(
            read(&clean1, engine, clean1.delta_version, "id"),
            ids1,
            "{engine}"
        );
        // Quarantine appends: its latest holds both runs' rows, its first
        // commit the first run's.
        let mut both: Vec<String> = notes1.iter().chain(&notes2).cloned().collect();
        both.sort();
        assert_eq!(read(&quarantine2, engine, None, "note"), both, "{engine}");
        assert_eq!(
            read(&quarantine1, engine, quarantine1.delta_version, "note"),
            notes1,
            "{engine}"
        );
        assert_eq!(
            both.len() as i64,
            quarantine1.rows.unwrap() + quarantine2.rows.unwrap()
        );
    }
    site.stop().await;
}

/// A transform whose output a contract checks (`{row_count}` is its row_count check).
fn checked_transform(row_count: &str) -> String {
    format!(
        r#"
tasks:
  e:
    kind: extract
    source: {{format: csv, path: "in/s.csv"}}
    output: raw.s
  t:
    kind: transform
    retries: 0
    inputs: [raw.s]
    unchecked_inputs: [raw.s]
    sql: "select k, n * 10 as n from raw.s"
    contract:
      columns:
        k: {{type: string, required: true}}
        n: {{type: int64, min: 0}}
      primary_key: [k]
      checks:
        - row_count: {row_count}
    output: curated.t
"#
    )
}

both_backends!(
    a_transforms_contract_holds_back_its_output,
    transform_contract_case
);
async fn transform_contract_case(db: &TestDb) {
    let rows = "k,n\na,1\nb,-1\nc,2\n";
    let site = Site::start(db, &checked_transform("{min: 1}"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "t", 1));
    // Failing rows are quarantined, the rest published, with a quality record.
    assert_eq!(
        site.rows("curated.t", &["k", "n"]).await,
        vec![
            vec!["a".to_owned(), "10".into()],
            vec!["c".into(), "20".into()]
        ]
    );
    assert_eq!(
        site.rows("quarantine.t", &["k", "_weir_errors"]).await,
        vec![vec!["b".to_owned(), "min:n".into()]]
    );
    let (q, checks) = site.quality(&run, "curated.t").await;
    assert!(q.published && q.input_version.is_none());
    assert_eq!((q.rows_in, q.rows_clean, q.rows_quarantined), (3, 2, 1));
    assert!(checks.iter().any(|c| c.name == "min" && c.failed == 1));
    let published = site.latest("curated.t").await;
    site.stop().await;

    // An error-severity dataset check holds the new version back.
    let site = Site::start(db, &checked_transform("{min: 10}"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        site.latest("curated.t").await.id,
        published.id,
        "not published"
    );
    let (q, _) = site.quality(&run, "curated.t").await;
    assert!(!q.published);
    assert!(site.log(&run, "t", 1).contains("curated.t not published"));
    site.stop().await;
}

/// Extract `in/s.csv` (columns `k`, `n`) and validate it with a contract
/// declaring those two columns followed by `tail` (contract keys, indented).
fn validate_ks(tail: &str) -> String {
    format!(
        r#"
tasks:
  e:
    kind: extract
    source: {{format: csv, path: "in/s.csv"}}
    output: raw.s
  v:
    kind: validate
    retries: 0
    input: raw.s
    contract:
      columns:
        k: {{type: string}}
        n: {{type: int64}}
{tail}    output: clean.s
"#
    )
}

/// [`validate_ks`] with `checks` (YAML list items, indented for `checks:`).
fn checked_ks(checks: &str) -> String {
    validate_ks(&format!("      checks:\n{checks}"))
}

fn tolerant(max_failed: &str) -> String {
    checked_ks(&format!(
        "        - rule: \"n >= 0\"\n          name: non_negative\n          max_failed: {max_failed}\n"
    ))
}

both_backends!(
    a_rules_tolerance_warns_within_and_blocks_beyond,
    tolerance_case
);
async fn tolerance_case(db: &TestDb) {
    let rows = "k,n\na,1\nb,-1\nc,2\nd,3\ne,4\n";
    // One failing row in five is within 20%: quarantined, a warning, published.
    let site = Site::start(db, &tolerant("20%"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "v", 1));
    let (q, checks) = site.quality(&run, "raw.s").await;
    assert!(q.published);
    assert_eq!(q.rows_quarantined, 1);
    let rule = checks.iter().find(|c| c.name == "non_negative").unwrap();
    assert_eq!(
        (
            rule.failed,
            rule.severity.as_str(),
            rule.threshold.as_deref()
        ),
        (1, "warn", Some("20%"))
    );
    assert!(site.log(&run, "v", 1).contains("WARNING rule non_negative"));
    let published = site.latest("clean.s").await;
    site.stop().await;

    // Beyond a tolerance of none, the rule holds the version back.
    let site = Site::start(db, &tolerant("0"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(site.latest("clean.s").await.id, published.id);
    let log = site.log(&run, "v", 1);
    assert!(
        log.contains("FAILED rule non_negative") && log.contains("not published"),
        "{log}"
    );
    site.stop().await;
}

const WATCH_SCHEMA: &str = r#"
tasks:
  e:
    kind: extract
    source: {format: ndjson, path: "in/s.json"}
    output: raw.s
  v:
    kind: validate
    retries: 0
    input: raw.s
    contract:
      columns:
        k: {type: string}
      checks:
        - schema_change: {added: warn, retyped: error}
    output: clean.s
"#;

both_backends!(
    schema_changes_against_the_previous_version_warn_or_fail,
    schema_change_case
);
async fn schema_change_case(db: &TestDb) {
    let mut last = None;
    for (rows, state, judged) in [
        (
            r#"{"k": "a", "n": 1}"#,
            RunState::Success,
            "no earlier version",
        ),
        (
            r#"{"k": "a", "n": 1, "extra": "x"}"#,
            RunState::Success,
            "added: extra",
        ),
        (
            r#"{"k": "a", "n": "one", "extra": "x"}"#,
            RunState::Failed,
            "retyped: n (Int64 → Utf8",
        ),
    ] {
        // The same DAG text in each site's own folder: its source path must
        // resolve against that folder (the version includes the file's place).
        let site = Site::start(db, WATCH_SCHEMA, &[("in/s.json", rows)]).await;
        let run = site.run().await;
        assert_eq!(
            run.state,
            state,
            "{}\n{}",
            site.log(&run, "e", 1),
            site.log(&run, "v", 1)
        );
        let (_, checks) = site.quality(&run, "raw.s").await;
        let check = checks.iter().find(|c| c.name == "schema_change").unwrap();
        let observed = check.observed.clone().unwrap_or_default();
        assert!(observed.contains(judged), "{observed}");
        if let Some(previous) = last.replace(observed.clone())
            && state == RunState::Success
        {
            assert!(previous != observed);
            assert_eq!(check.severity.as_str(), "warn", "{check:?}");
        }
        site.stop().await;
    }
}

const COMPOSITE: &str = r#"
tasks:
  regions:
    kind: extract
    source: {format: csv, path: "in/regions.csv"}
    output: raw.regions
  clean_regions:
    kind: validate
    input: raw.regions
    contract:
      columns:
        country: {type: string}
        code: {type: string}
    output: clean.regions
  sales:
    kind: extract
    source: {format: csv, path: "in/sales.csv"}
    output: raw.sales
  clean_sales:
    kind: validate
    input: raw.sales
    contract:
      columns:
        k: {type: string}
        country: {type: string}
        region: {type: string}
      references:
        - columns: [country, region]
          dataset: clean.regions
          to: [country, code]
    output: clean.sales
"#;

both_backends!(
    composite_references_need_every_column_to_match_one_row,
    composite_case
);
async fn composite_case(db: &TestDb) {
    let regions = "country,code\nFR,IDF\nFR,BRE\nDE,BY\n";
    // `FR,BY` has a known country and a known code, but no such pair.
    let sales = "k,country,region\na,FR,IDF\nb,FR,BY\nc,DE,BY\nd,DE,\n";
    let site = Site::start(
        db,
        COMPOSITE,
        &[("in/regions.csv", regions), ("in/sales.csv", sales)],
    )
    .await;
    let run = site.run().await;
    assert_eq!(
        run.state,
        RunState::Success,
        "{}",
        site.log(&run, "clean_sales", 1)
    );
    assert_eq!(
        site.rows("quarantine.sales", &["k", "_weir_errors"]).await,
        vec![vec!["b".to_owned(), "references:country,region".into()]]
    );
    let mut clean = site.rows("clean.sales", &["k"]).await;
    clean.sort();
    assert_eq!(
        clean,
        vec![vec!["a".to_owned()], vec!["c".into()], vec!["d".into()]]
    );
    site.stop().await;
}

fn sql_checked(severity: &str) -> String {
    checked_ks(&format!(
        "        - name: few_big\n          sql: \"select k, n from checked where n > 2 order by k\"\n          max_failed: 1\n          severity: {severity}\n"
    ))
}

both_backends!(an_sql_check_shows_the_rows_that_fail_it, sql_check_case);
async fn sql_check_case(db: &TestDb) {
    let rows = "k,n\na,1\nb,2\nc,3\nd,4\n";
    let site = Site::start(db, &sql_checked("error"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed, "two rows fail, one is allowed");
    let (q, checks) = site.quality(&run, "raw.s").await;
    assert!(!q.published);
    let check = checks.iter().find(|c| c.name == "few_big").unwrap();
    assert_eq!(
        check.observed.as_deref(),
        Some("2 row(s): k=c, n=3; k=d, n=4"),
        "{check:?}"
    );
    site.stop().await;

    let site = Site::start(db, &sql_checked("warn"), &[("in/s.csv", rows)]).await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "a warning only records");
    site.stop().await;
}

both_backends!(
    a_truncated_file_fails_the_extract_naming_the_file,
    truncated_case
);
async fn truncated_case(db: &TestDb) {
    // A Parquet file cut short, then newline-delimited JSON cut mid-record.
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let df = ctx
        .sql("select * from (values (1, 'a'), (2, 'b'), (3, 'c')) as t(id, name)")
        .await
        .unwrap();
    let whole = dir.path().join("whole");
    df.write_parquet(
        whole.to_str().unwrap(),
        datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await
    .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    // Past the records schema inference reads, so only the full read finds it.
    let mut json: String = (0..5000)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"n{i}\"}}\n"))
        .collect();
    json.push_str("{\"id\": 5000, \"na");
    for (format, name, body) in [
        ("parquet", "in/cut.parquet", None),
        ("ndjson", "in/cut.ndjson", Some(json.as_str())),
    ] {
        let dag = format!(
            "tasks:\n  e:\n    kind: extract\n    retries: 0\n    source: {{format: {format}, path: \"{name}\"}}\n    output: raw.cut\n"
        );
        let site = Site::start(db, &dag, &[]).await;
        let path = site.dir.path().join("dags").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match body {
            Some(text) => std::fs::write(&path, text).unwrap(),
            None => std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap(),
        }
        let run = site.run().await;
        assert_eq!(run.state, RunState::Failed, "{format}");
        let log = site.log(&run, "e", 1);
        assert!(
            log.contains(name),
            "{format}: the error names the file: {log}"
        );
        site.stop().await;
    }
}

both_backends!(broken_csv_lines_are_quarantined_as_corrupt, corrupt_case);
async fn corrupt_case(db: &TestDb) {
    let mut csv = b"k,n\na,1\nb,2,surplus\nc,3\nd\n".to_vec();
    csv.extend_from_slice(b"e,\xff\nf,6\n");
    let dag = checked_ks("        - row_count: {min: 1}\n");
    let site = Site::start(db, &dag, &[]).await;
    std::fs::create_dir_all(site.dir.path().join("dags/in")).unwrap();
    std::fs::write(site.dir.path().join("dags/in/s.csv"), csv).unwrap();
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "e", 1));
    let mut clean = site.rows("clean.s", &["k", "_weir_row"]).await;
    clean.sort();
    assert_eq!(
        clean,
        vec![
            vec!["a".to_owned(), "1".into()],
            vec!["c".into(), "3".into()],
            vec!["f".into(), "6".into()]
        ]
    );
    let mut held = site
        .rows(
            "quarantine.s",
            &["_weir_row", "_weir_errors", "_weir_corrupt"],
        )
        .await;
    held.sort();
    assert_eq!(
        held,
        vec![
            vec![
                "2".to_owned(),
                "corrupt".into(),
                "line 3: 3 field(s), the header has 2".into()
            ],
            vec![
                "4".into(),
                "corrupt".into(),
                "line 5: 1 field(s), the header has 2".into()
            ],
            vec![
                "5".into(),
                "corrupt".into(),
                "line 6: not valid UTF-8".into()
            ],
        ]
    );
    let (q, _) = site.quality(&run, "raw.s").await;
    assert_eq!((q.rows_in, q.rows_clean, q.rows_quarantined), (6, 3, 3));
    site.stop().await;
}

fn repeats(keep: &str) -> String {
    validate_ks(&format!(
        "      primary_key: [k]\n      exact_repeats: {keep}\n"
    ))
}

both_backends!(
    exact_repeats_keep_one_row_and_quarantine_the_others,
    repeats_case
);
async fn repeats_case(db: &TestDb) {
    let rows = "k,n\na,1\na,1\nb,2\na,1\nb,3\n";
    for (keep, kept_row) in [("keep_first", "1"), ("keep_last", "4")] {
        let site = Site::start(db, &repeats(keep), &[("in/s.csv", rows)]).await;
        let run = site.run().await;
        assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "v", 1));
        assert_eq!(
            site.rows("clean.s", &["k", "_weir_row"]).await,
            vec![vec!["a".to_owned(), kept_row.to_owned()]],
            "{keep}: one of the identical rows; b's rows differ, so its key is shared"
        );
        let mut held = site
            .rows("quarantine.s", &["_weir_row", "_weir_errors"])
            .await;
        held.sort();
        let mut expected: Vec<Vec<String>> = ["1", "2", "4"]
            .into_iter()
            .filter(|r| *r != kept_row)
            .map(|r| vec![r.to_owned(), "repeat".into()])
            .chain([
                vec!["3".to_owned(), "primary_key:k".into()],
                vec!["5".to_owned(), "primary_key:k".into()],
            ])
            .collect();
        expected.sort();
        assert_eq!(held, expected, "{keep}");
        site.stop().await;
    }
}

fn gated_load(table: &str) -> String {
    format!(
        r#"
tasks:
  e:
    kind: extract
    source: {{format: csv, path: "in/s.csv"}}
    output: raw.s
  l:
    kind: load
    retries: 0
    input: raw.s
    unchecked_inputs: [raw.s]
    contract:
      columns:
        k: {{type: string, required: true}}
        n: {{type: int64, min: 0}}
      checks:
        - row_count: {{min: 2}}
    target: {{connection: warehouse, table: {table}, mode: replace}}
"#
    )
}

both_backends!(
    a_loads_contract_lets_nothing_through_unless_every_row_passes,
    gated_load_case
);
async fn gated_load_case(db: &TestDb) {
    let site = Site::start(
        db,
        &gated_load("gated_ok"),
        &[("in/s.csv", "k,n\na,1\nb,2\n")],
    )
    .await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Success, "{}", site.log(&run, "l", 1));
    assert_eq!(count(&db.url, "gated_ok").await, 2);
    let (q, checks) = site.quality(&run, "raw.s").await;
    assert_eq!((q.rows_in, q.rows_clean, q.published), (2, 2, false));
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    site.stop().await;

    // One row below min: the load writes nothing, and says why.
    let site = Site::start(
        db,
        &gated_load("gated_bad"),
        &[("in/s.csv", "k,n\na,1\nb,-2\nc,3\n")],
    )
    .await;
    let run = site.run().await;
    assert_eq!(run.state, RunState::Failed);
    let log = site.log(&run, "l", 1);
    assert!(
        log.contains("FAILED min (n): 1 row(s)") && log.contains("nothing loaded"),
        "{log}"
    );
    let tables = if db.url.starts_with("sqlite:") {
        fetch_all::<(String,)>(
            &db.url,
            "SELECT name FROM sqlite_master WHERE name = 'gated_bad'",
        )
        .await
    } else {
        fetch_all::<(String,)>(
            &db.url,
            "SELECT tablename::text FROM pg_tables WHERE tablename = 'gated_bad'",
        )
        .await
    };
    assert!(tables.is_empty(), "the table was never created");
    let (q, _) = site.quality(&run, "raw.s").await;
    assert_eq!((q.rows_in, q.rows_quarantined), (3, 1));
    site.stop().await;
}

both_backends!(
    quarantined_rows_are_deleted_after_thirty_days_by_default,
    quarantine_retention_case
);
async fn quarantine_retention_case(db: &TestDb) {
    let clock = std::sync::Arc::new(weir_core::scheduler::ManualClock::new(chrono::Utc::now()));
    let site = Site::start_with(
        db,
        &checked_ks("        - row_count: {min: 1}\n"),
        Extras {
            files: &[("in/s.csv", "k,n\na,1\nb,x\n")],
            clock: Some(clock.clone()),
            ..Extras::default()
        },
    )
    .await;
    let live = || async {
        site.sched
            .store()
            .dataset_versions(Some("quarantine.s"))
            .await
            .unwrap()
            .into_iter()
            .filter(|v| v.deleted_at.is_none())
            .map(|v| v.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(site.run().await.state, RunState::Success);
    clock.advance(chrono::Duration::days(29));
    assert_eq!(site.run().await.state, RunState::Success);
    assert_eq!(live().await, vec![1, 2], "29 days: both kept");
    clock.advance(chrono::Duration::days(2));
    assert_eq!(site.run().await.state, RunState::Success);
    assert_eq!(live().await, vec![2, 3], "version 1 is 31 days old");
    let (audit, _) = site
        .sched
        .store()
        .list_audit(&weir_core::store::AuditFilter::default(), 100, 0)
        .await
        .unwrap();
    assert!(
        audit.iter().any(
            |a| a.action == weir_core::store::AuditAction::DeleteDatasetVersion
                && a.actor == "retention"
        ),
        "the deletion is audited"
    );
    site.stop().await;
}
