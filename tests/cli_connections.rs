//! `weir connections` as a user runs it: a real process on a SQLite file,
//! its secrets sealed with the key file it makes on first use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;
use support::{ok, refused, weir_with};

#[test]
fn connections_are_added_shown_masked_sealed_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(
        dir,
        &[
            "connections",
            "add",
            "lite",
            "--url",
            "sqlite:///tmp/lite.db",
        ],
    );
    assert!(
        !dir.join("weir.key").exists(),
        "nothing secret: no key needed yet"
    );
    let out = weir_with(
        dir,
        &[
            "connections",
            "add",
            "warehouse",
            "--conn-type",
            "postgres",
            "--host",
            "db.local",
            "--port",
            "5432",
            "--login",
            "etl",
            "--schema",
            "wh",
            "--password-env",
            "WH_PW",
            "--extra",
            r#"{"sslmode": "require"}"#,
            "--description",
            "the warehouse",
        ],
        &[("WH_PW", "hunter2-pw")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("weir.key").exists(),
        "the key file is made on first use"
    );
    let table = ok(dir, &["connections", "list"]);
    assert!(
        table.contains("warehouse") && table.contains("***") && table.contains("db.local"),
        "{table}"
    );
    assert!(!table.contains("hunter2"), "{table}");
    let one: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &["connections", "get", "warehouse", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(one["password"], "***");
    assert_eq!(one["extra"], r#"{"sslmode":"require"}"#);
    assert_eq!(one["port"], 5432);
    let db = std::fs::read(dir.join("weir.db")).unwrap();
    assert!(
        !db.windows(b"hunter2".len()).any(|w| w == b"hunter2"),
        "the password is not in the database file in clear"
    );

    // Another key cannot read what this one sealed; a malformed one is named.
    let other = ok(dir, &["connections", "new-key"]);
    assert_eq!(other.trim().len(), 44, "{other}");
    let out = weir_with(
        dir,
        &["connections", "get", "warehouse"],
        &[("WEIR_CORE_SECRET_KEY", other.trim())],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read with this secret key"));
    let out = weir_with(
        dir,
        &["connections", "get", "warehouse"],
        &[("WEIR_CORE_SECRET_KEY", "short")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 bytes in base64"));

    refused(
        dir,
        &["connections", "add", "x"],
        "give --url, or --conn-type",
    );
    refused(
        dir,
        &["connections", "add", "x", "--url", "not a url"],
        "not a URL",
    );
    refused(
        dir,
        &["connections", "add", "bad id", "--url", "sqlite:///x.db"],
        "connection id",
    );
    refused(
        dir,
        &[
            "connections",
            "add",
            "x",
            "--conn-type",
            "postgres",
            "--extra",
            "[1]",
        ],
        "extra must be a JSON object",
    );
    refused(
        dir,
        &[
            "connections",
            "add",
            "x",
            "--url",
            "postgres://h/db",
            "--password-env",
            "NOT_SET_HERE",
        ],
        "NOT_SET_HERE",
    );
    ok(dir, &["connections", "delete", "lite"]);
    refused(dir, &["connections", "delete", "lite"], "connection `lite`");
    let left = ok(dir, &["connections", "list", "--output", "json"]);
    assert!(!left.contains("\"lite\""), "{left}");
}
