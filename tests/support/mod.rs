//! Running the `weir` binary as a user does, on a SQLite file in a folder.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test uses what it needs

use std::path::Path;
use std::process::{Command, Output};

/// Runs weir with `args` in `dir`, on `dir/weir.db`.
pub fn weir(dir: &Path, args: &[&str]) -> Output {
    weir_with(dir, args, &[])
}

/// [`weir`] with these environment variables too.
pub fn weir_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_CONFIG")
        .env_remove("WEIR_CORE_SECRET_KEY")
        .env(
            "WEIR_DATABASE_URL",
            format!("sqlite://{}", dir.join("weir.db").display()),
        )
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run weir: {e}"))
}

/// Runs `args`, which must succeed; returns what it printed.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = weir(dir, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "weir {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args`, which must fail naming `what`.
pub fn refused(dir: &Path, args: &[&str], what: &str) {
    let out = weir(dir, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "weir {args:?} succeeded");
    assert!(err.contains(what), "weir {args:?}: {err}");
}

/// Every file under `dir` (not its folders), sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
