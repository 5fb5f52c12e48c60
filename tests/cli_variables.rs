//! `weir variables` as a user runs it: a real process on a SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;
use support::{ok, refused};

#[test]
fn variables_are_set_listed_imported_exported_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(
        dir,
        &[
            "variables",
            "set",
            "bucket",
            "raw-eu",
            "--description",
            "landing",
        ],
    );
    ok(
        dir,
        &["variables", "set", "limits", r#"{"n": 7}"#, "--json"],
    );
    ok(dir, &["variables", "set", "db_password", "hunter2"]);
    assert_eq!(ok(dir, &["variables", "get", "bucket"]), "raw-eu\n");
    assert_eq!(
        ok(dir, &["variables", "get", "db_password"]),
        "hunter2\n",
        "get prints the value"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(dir, &["variables", "list", "--output", "json"])).unwrap();
    let shown: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().into(),
                v["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("bucket".to_owned(), "raw-eu".to_owned()),
            ("db_password".to_owned(), "***".to_owned()),
            ("limits".to_owned(), r#"{"n": 7}"#.to_owned()),
        ],
        "a list masks secret values"
    );
    assert!(ok(dir, &["variables", "list", "--pattern", "LIM"]).contains("limits"));

    // Export writes every value in clear; import sets each key of an object.
    let exported = dir.join("out.json");
    ok(dir, &["variables", "export", exported.to_str().unwrap()]);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(file["db_password"], "hunter2");
    let incoming = dir.join("in.json");
    std::fs::write(
        &incoming,
        r#"{"region": "eu", "retries": 3, "tags": ["a"]}"#,
    )
    .unwrap();
    ok(dir, &["variables", "import", incoming.to_str().unwrap()]);
    assert_eq!(ok(dir, &["variables", "get", "retries"]), "3\n");
    assert_eq!(ok(dir, &["variables", "get", "tags"]), "[\"a\"]\n");

    ok(dir, &["variables", "delete", "bucket"]);
    refused(dir, &["variables", "get", "bucket"], "bucket");
    refused(dir, &["variables", "delete", "bucket"], "bucket");
    refused(dir, &["variables", "set", "has space", "x"], "variable key");
    refused(
        dir,
        &["variables", "set", "j", "{not json", "--json"],
        "not JSON",
    );
    std::fs::write(&incoming, "[1, 2]").unwrap();
    refused(
        dir,
        &["variables", "import", incoming.to_str().unwrap()],
        "JSON object",
    );
    std::fs::write(&incoming, r#"{"ok": 1, "bad key": 2}"#).unwrap();
    refused(
        dir,
        &["variables", "import", incoming.to_str().unwrap()],
        "bad key",
    );
    refused(dir, &["variables", "get", "ok"], "ok");
}
