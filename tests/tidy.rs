//! Checks of the code's shape that a reader would otherwise have to trust:
//! each holds one of ARCHITECTURE.md's invariants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir` (relative to the workspace root).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), &mut out);
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

const LIBRARY_SOURCES: [&str; 3] = ["core/src", "worker/src", "api/src"];

#[test]
fn anyhow_only_in_the_binary() {
    for krate in ["core", "worker", "api"] {
        let manifest = read(&root().join(krate).join("Cargo.toml"));
        assert!(
            !manifest.contains("anyhow"),
            "{krate}/Cargo.toml depends on anyhow: libraries use typed errors"
        );
    }
    for file in LIBRARY_SOURCES.iter().flat_map(|d| rust_files(d)) {
        assert!(
            !read(&file).contains("anyhow"),
            "{} uses anyhow: libraries use typed errors",
            relative(&file)
        );
    }
}

#[test]
fn sql_stays_in_the_store() {
    // weir's own tables, from the migrations.
    let create = regex::Regex::new(r"(?i)CREATE TABLE (?:IF NOT EXISTS )?(\w+)").unwrap();
    let mut tables: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root().join("migrations/sqlite")).unwrap() {
        let text = read(&entry.unwrap().path());
        tables.extend(create.captures_iter(&text).map(|c| c[1].to_owned()));
    }
    assert!(tables.contains(&"task_instances".to_owned()), "{tables:?}");
    let statement = regex::Regex::new(&format!(
        r#"(?i)"[^"]*\b(?:FROM|INTO|UPDATE|JOIN)\s+({})\b"#,
        tables.join("|")
    ))
    .unwrap();
    for file in LIBRARY_SOURCES
        .iter()
        .chain(&["src"])
        .flat_map(|d| rust_files(d))
    {
        let path = relative(&file);
        if path.starts_with("core/src/store/") || path == "core/src/testing.rs" {
            continue;
        }
        let text = read(&file);
        for (n, line) in text.lines().enumerate() {
            assert!(
                !statement.is_match(line),
                "{path}:{}: SQL on weir's own tables outside core::store: {line}",
                n + 1
            );
        }
        if !path.starts_with("worker/src/") {
            assert!(
                !text.contains("sqlx::query"),
                "{path} runs SQL: only core::store (and the worker, on task connections) may"
            );
        }
    }
}

#[test]
fn every_source_file_is_on_the_code_map() {
    let map = read(&root().join("ARCHITECTURE.md"));
    let mut missing = Vec::new();
    for file in LIBRARY_SOURCES
        .iter()
        .chain(&["src"])
        .flat_map(|d| rust_files(d))
    {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(stem.as_str(), "mod" | "lib" | "main") {
            continue;
        }
        if !map.contains(&stem) {
            missing.push(relative(&file));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}

#[test]
fn every_api_handler_names_its_role() {
    // The handler after each `#[utoipa::path(…)]`: its signature up to `{`.
    // No token: health checks, the version (as in Airflow), and getting one.
    let open = [
        "api/src/routes/monitor.rs: health",
        "api/src/routes/monitor.rs: version",
        "api/src/routes/auth.rs: login",
    ];
    let mut unguarded = Vec::new();
    let mut handlers = 0;
    for file in rust_files("api/src/routes") {
        let text = read(&file);
        for (i, _) in text.match_indices("#[utoipa::path(") {
            let rest = &text[i..];
            let Some(at) = rest.find("pub async fn ") else {
                continue;
            };
            let signature = &rest[at..at + rest[at..].find('{').unwrap()];
            let name = signature["pub async fn ".len()..]
                .split('(')
                .next()
                .unwrap()
                .to_owned();
            handlers += 1;
            let guarded = ["Viewer", "Operator", "Admin", "WorkerToken"]
                .iter()
                .any(|g| signature.contains(g));
            let handler = format!("{}: {name}", relative(&file));
            if !guarded && !open.contains(&handler.as_str()) {
                unguarded.push(handler);
            }
        }
    }
    assert!(handlers > 30, "found only {handlers} handlers");
    assert!(
        unguarded.is_empty(),
        "handlers without a role guard (Viewer, Operator, Admin, WorkerToken): {unguarded:?}"
    );
}
