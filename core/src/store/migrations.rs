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
