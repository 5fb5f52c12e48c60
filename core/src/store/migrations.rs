//! weir's schema migrations, embedded in the binary: one list per backend,
//! each file `NNNN_name.sql` under `migrations/<backend>/`. A test checks
//! that the lists name exactly the files in those folders.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// A migration file: its name and its SQL.
type File = (&'static str, &'static str);

macro_rules! files {
    ($backend:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../migrations/", $backend, "/", $name)))),*]
    };
}

/// SQLite's migrations.
pub(crate) const SQLITE: &[File] = files!("sqlite":
    "0001_engine.sql",
    "0002_access.sql",
    "0003_data.sql",
    "0004_workers.sql",
    "0005_version_sources.sql",
    "0006_remote_workers.sql",
    "0007_task_queue.sql",
    "0008_variables.sql",
    "0009_task_outputs.sql",
    "0010_connections.sql",
    "0011_assets.sql",
    "0012_notifications.sql",
    "0013_task_mapping.sql",
    "0014_delta_versions.sql",
);

/// PostgreSQL's migrations.
pub(crate) const POSTGRES: &[File] = files!("postgres":
    "0001_engine.sql",
    "0002_access.sql",
    "0003_data.sql",
    "0004_workers.sql",
    "0005_version_sources.sql",
    "0006_remote_workers.sql",
    "0007_task_queue.sql",
    "0008_variables.sql",
    "0009_task_outputs.sql",
    "0010_connections.sql",
    "0011_assets.sql",
    "0012_notifications.sql",
    "0013_task_mapping.sql",
    "0014_delta_versions.sql",
);

/// The migrator for a list of files. Versions, descriptions, checksums and
/// whether a file runs outside a transaction (its first line is
/// `-- no-transaction`) are derived from the files as sqlx derives them from
/// a folder, so a database migrated by any weir build validates against any
/// other.
pub(crate) fn migrator(files: &[File]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|(name, sql)| {
                let (version, description) = name_parts(name);
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

/// `0004_workers.sql` → (4, "workers"). The names are constants of this
/// module, held to the pattern by a test.
fn name_parts(name: &str) -> (i64, String) {
    let (version, rest) = name.split_once('_').unwrap_or((name, ""));
    let description = rest.trim_end_matches(".sql").replace('_', " ");
    (version.parse().unwrap_or_default(), description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(backend: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_once_in_order() {
        for (backend, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let listed: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
            assert_eq!(
                listed,
                folder(backend),
                "{backend}: the list in migrations.rs"
            );
            let versions: Vec<i64> = files.iter().map(|(n, _)| name_parts(n).0).collect();
            let expected: Vec<i64> = (1..=files.len() as i64).collect();
            assert_eq!(versions, expected, "{backend}: versions 1, 2, … in order");
        }
    }

    #[test]
    fn checksums_are_the_sha384_of_each_file_as_for_a_folder() {
        // What sqlx records for a migration read from a folder; a database
        // migrated by a build that read the folder must still validate.
        use sha2::{Digest, Sha384};
        for (backend, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            for (m, (name, _)) in migrator(files).iter().zip(files) {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../migrations")
                    .join(backend)
                    .join(name);
                let text =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    m.checksum.as_ref(),
                    &Sha384::digest(&text)[..],
                    "{backend}/{name}"
                );
            }
        }
    }

    #[tokio::test]
    async fn rebuilding_task_instances_keeps_every_try_and_the_foreign_keys() {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("weir.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let before = SQLITE
            .iter()
            .position(|(n, _)| *n == "0013_task_mapping.sql")
            .unwrap_or_default();
        migrator(&SQLITE[..before])
            .run(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for sql in [
            "INSERT INTO dag_versions (dag_id, version_number, hash, definition, fileloc, created_at) \
             VALUES ('d', 1, 'h', '{}', 'd.yaml', 'now')",
            "INSERT INTO dag_runs (dag_id, run_id, version_id, run_type, state, run_after, queued_at) \
             VALUES ('d', 'r', 1, 'manual', 'running', 'now', 'now')",
            "INSERT INTO task_instances (id, run_pk, version_id, dag_id, run_id, task_id, state, max_tries, pool, updated_at) \
             VALUES ('ti', 1, 1, 'd', 'r', 't', 'running', 0, 'default', 'now')",
            "INSERT INTO task_tries (ti_id, try_number, dag_id, run_id, task_id, state, start_date, log_path) \
             VALUES ('ti', 1, 'd', 'r', 't', 'running', 'now', 'd/r/t/1.log')",
            "INSERT INTO try_logs (ti_id, try_number, pos, data) VALUES ('ti', 1, 0, x'41')",
        ] {
            sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        migrator(SQLITE)
            .run(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        };
        assert_eq!(
            count("SELECT COUNT(*) FROM task_tries").await,
            1,
            "the try survived"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM try_logs").await,
            1,
            "and its log piece"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM task_queue").await,
            1,
            "still in flight"
        );
        assert_eq!(
            count("SELECT map_index FROM task_instances WHERE id = 'ti'").await,
            -1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM pragma_foreign_key_check()").await,
            0
        );
        // A mapped instance of the same task is a row of its own, entering
        // the queue through the rebuilt triggers; deleting the run still
        // cascades to every instance and try.
        sqlx::query(
            "INSERT INTO task_instances (id, run_pk, version_id, dag_id, run_id, task_id, state, max_tries, pool, \
             updated_at, map_index) VALUES ('ti0', 1, 1, 'd', 'r', 't', 'scheduled', 0, 'default', 'now', 0)",
        )
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count("SELECT COUNT(*) FROM task_queue").await, 2);
        sqlx::query("DELETE FROM dag_runs")
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count("SELECT COUNT(*) FROM task_tries").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM try_logs").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM task_queue").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM task_instances").await, 0);
    }

    #[tokio::test]
    async fn processes_opening_a_new_database_at_once_both_end_up_usable() {
        use crate::store::{DagStore, SqliteStore, Store};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("weir.db").display());
        let (a, b) = tokio::join!(SqliteStore::connect(&url), SqliteStore::connect(&url));
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("{e}")),
            b.unwrap_or_else(|e| panic!("{e}")),
        );
        let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
        ma.unwrap_or_else(|e| panic!("{e}"));
        mb.unwrap_or_else(|e| panic!("{e}"));
        // Each can still write in transactions of its own afterwards.
        for store in [&a, &b] {
            match store.set_paused("nope", true, None).await {
                Ok(()) | Err(crate::store::Error::NotFound(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn versions_and_descriptions_read_as_sqlx_reads_a_folder() {
        assert_eq!(name_parts("0004_workers.sql"), (4, "workers".to_string()));
        assert_eq!(
            name_parts("0012_two_words.sql"),
            (12, "two words".to_string())
        );
        let migrator = migrator(SQLITE);
        let first = migrator
            .iter()
            .next()
            .map(|m| (m.version, m.description.to_string()));
        assert_eq!(first, Some((1, "engine".to_string())));
    }
}
