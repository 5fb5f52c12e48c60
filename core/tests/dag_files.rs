//! DAG files as a user writes them: every example loads, every broken fixture
//! fails with the expected message at the expected line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use weir_core::dag::graph::EdgeKind;
use weir_core::loader::{self, ImportError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags")
}

/// Reads `# expect: LINE:COL: text` from a fixture's first line.
fn expectation(path: &Path) -> (usize, usize, String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
    let mut parts = rest.splitn(3, ':');
    let mut num = || -> usize {
        parts
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: bad expect line", path.display()))
    };
    let (line, col) = (num(), num());
    (
        line,
        col,
        parts.next().unwrap_or_default().trim().to_owned(),
    )
}

#[test]
fn every_broken_fixture_reports_the_expected_error() {
    let dir = fixtures().join("invalid");
    let files = loader::dag_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(files.len() >= 20, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let (line, col, text) = expectation(path);
        let errors: Vec<ImportError> = match loader::load_file(path) {
            Ok(Some(_)) => {
                failures.push(format!("{}: loaded, expected an error", path.display()));
                continue;
            }
            Ok(None) => {
                failures.push(format!("{}: taken for a contract file", path.display()));
                continue;
            }
            Err(e) => e,
        };
        let hit = errors
            .iter()
            .any(|e| e.line == line && e.column == col && e.message.contains(&text));
        if !hit {
            failures.push(format!(
                "{}: expected {line}:{col}: {text}\n   got: {}",
                path.display(),
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n        ")
            ));
        }
        for e in &errors {
            assert_eq!(e.file, *path, "errors name the file they are about");
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn example_dags_load_without_errors() {
    let report = loader::load_folder(&examples());
    let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert!(report.errors.is_empty(), "{}", msgs.join("\n"));
    let ids: Vec<&str> = report.dags.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["hello_shell", "orders_daily"]);
}

#[test]
fn dataset_names_make_implicit_edges() {
    let report = loader::load_folder(&examples());
    let dag = report
        .dags
        .iter()
        .find(|d| d.id.as_str() == "orders_daily")
        .unwrap_or_else(|| panic!("orders_daily did not load: {:?}", report.errors));
    let idx = |t: &str| {
        dag.tasks
            .get_index_of(t)
            .unwrap_or_else(|| panic!("no task {t}"))
    };
    let edges = dag.graph.edges();
    // validate_orders reads raw.orders, which extract_orders writes.
    assert!(edges.contains(&(
        idx("extract_orders"),
        idx("validate_orders"),
        EdgeKind::Dataset
    )));
    // daily_revenue reads both clean datasets.
    assert_eq!(
        dag.graph.upstream(idx("daily_revenue")),
        vec![idx("validate_customers"), idx("validate_orders")]
    );
    // notify's edge is explicit.
    assert!(edges.contains(&(idx("load_revenue"), idx("notify"), EdgeKind::Explicit)));
    // Every task comes after its upstream tasks.
    let order = dag.graph.topological_order();
    for (a, b, _) in edges {
        let pos = |t| order.iter().position(|&x| x == t);
        assert!(pos(a) < pos(b));
    }
    // The contract file was inlined into the version, so the hash covers it.
    assert!(dag.version.definition.contains("paid_orders_have_amount"));
    assert_eq!(dag.version.hash.len(), 64);
}

#[test]
fn problems_across_files_name_both_sides() {
    let report = loader::load_folder(&fixtures().join("cross"));
    let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(msgs[0].contains("b_orders_again.yaml:3:3: dataset `raw.orders` is written by both `shop_copy.grab` and `shop.extract`"), "{msgs:#?}");
    assert!(
        msgs[1].contains("c_same_id.yaml:1:6: DAG id `shop` is already used by"),
        "{msgs:#?}"
    );
    let ids: Vec<&str> = report.dags.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["d_fine", "shop"],
        "the file name is the default id; a bad file hides no other"
    );
}

#[test]
fn a_version_hash_changes_with_the_content_only() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("v.yaml");
    let write = |text: &str| std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let hash = || match loader::load_file(&path) {
        Ok(Some((dag, _))) => dag.version.hash,
        other => panic!("{other:?}"),
    };
    write("tasks:\n  a: {kind: shell, command: echo one}\n");
    let first = hash();
    write("# a comment changes nothing\ntasks:\n  a:\n    kind: shell\n    command: echo one\n");
    assert_eq!(hash(), first);
    write("tasks:\n  a: {kind: shell, command: echo two}\n");
    assert_ne!(hash(), first);
}

#[test]
fn the_shipped_schema_is_the_generated_one() {
    let shipped = std::fs::read_to_string(examples().join("schema.json")).unwrap_or_default();
    let generated = weir_core::schema::dag_file_schema();
    assert!(
        shipped == generated,
        "dags/schema.json is out of date: run `cargo run -- dags schema > dags/schema.json`"
    );
}

#[test]
fn unchecked_inputs_open_the_quality_gate_and_mark_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peek.yaml");
    std::fs::write(
        &path,
        "tasks:\n  extract:\n    kind: extract\n    source: {format: csv, path: o.csv}\n    output: raw.orders\n  \
         peek:\n    kind: transform\n    inputs: [raw.orders]\n    unchecked_inputs: [raw.orders]\n    \
         sql: select count(*) as n from raw.orders\n    output: curated.peek\n",
    )
    .unwrap();
    let dag = match loader::load_file(&path) {
        Ok(Some((dag, _))) => dag,
        Ok(None) => panic!("taken for a contract file"),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(dag.graph.edges(), vec![(0, 1, EdgeKind::UncheckedDataset)]);
}

#[test]
fn the_same_file_in_another_folder_is_another_version() {
    // Relative paths resolve against the file's folder, so a moved DAG must
    // not keep running against its old place.
    let text = "tasks:\n  a: {kind: shell, command: ./run.sh}\n";
    let hash_in = |dir: &Path| {
        let path = dir.join("moved.yaml");
        std::fs::write(&path, text).unwrap();
        match loader::load_file(&path) {
            Ok(Some((dag, _))) => dag.version.hash,
            other => panic!("{other:?}"),
        }
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_ne!(hash_in(a.path()), hash_in(b.path()));
    assert_eq!(hash_in(a.path()), hash_in(a.path()));
}

#[test]
fn a_version_keeps_the_text_of_its_file_and_contracts() {
    let report = loader::load_folder(&examples());
    let dag = report
        .dags
        .iter()
        .find(|d| d.id.as_str() == "orders_daily")
        .unwrap();
    let names: Vec<&str> = dag
        .version
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "orders_daily.yaml",
            "contracts/customers.yaml",
            "contracts/orders.yaml"
        ]
    );
    let text = std::fs::read_to_string(examples().join("contracts/orders.yaml")).unwrap();
    assert_eq!(
        dag.version.sources[2].text, text,
        "the text as read, comments too"
    );
}
