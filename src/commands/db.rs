//! `weir db …`: migrations and database copies; `weir backup` and `weir
//! restore`: a site's database and data together.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use weir_core::config::{Config, redacted_url};
use weir_core::store::SqliteStore;

/// `weir db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (also done at every start).
    Upgrade,
    /// Write a consistent copy of the SQLite database while weir runs.
    Backup {
        /// Where the copy goes (must not exist).
        path: String,
    },
}

/// `weir backup DIR`.
pub async fn backup(config: &Config, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let m = weir_core::backup::backup(&config.database.url, &config.core.data_dir, dir).await?;
    if m.database == "postgres" {
        println!(
            "the PostgreSQL database is not copied: dump it with `pg_dump` ({}) at the same time",
            redacted_url(&config.database.url)
        );
    } else {
        println!(
            "database copied to {}",
            dir.join(weir_core::backup::DATABASE).display()
        );
    }
    if weir_core::backup::in_object_storage(&config.core.data_dir) {
        println!(
            "the datasets in {} are not copied: they stay in object storage (keep the bucket's versioning on); the copy records their versions",
            config.core.data_dir.display()
        );
    } else {
        println!(
            "{} dataset version(s), {} file(s), {} bytes copied to {}",
            m.versions,
            m.files,
            m.bytes,
            dir.join(weir_core::backup::DATA).display()
        );
    }
    for missing in &m.missing {
        println!("not copied: {missing}");
    }
    Ok(if m.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `weir restore DIR [--force]`.
pub async fn restore(
    config: &Config,
    dir: &std::path::Path,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let m =
        weir_core::backup::restore(dir, &config.database.url, &config.core.data_dir, force).await?;
    if m.database == "postgres" {
        println!(
            "the data is back; restore the PostgreSQL database from its dump with `pg_restore`"
        );
    }
    println!(
        "restored the backup of {} ({} dataset version(s)) into {} and {}",
        m.created_at.to_rfc3339(),
        m.versions,
        redacted_url(&config.database.url),
        config.core.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs a `weir db` subcommand.
pub async fn run(command: DbCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let url = &config.database.url;
    match command {
        DbCommand::Upgrade => {
            weir_core::store::open(url).await?;
            println!("{}: migrations applied", redacted_url(url));
        }
        DbCommand::Backup { path } => {
            if weir_core::store::Backend::of(url)? != weir_core::store::Backend::Sqlite {
                bail!("weir db backup copies SQLite databases; back PostgreSQL up with pg_dump");
            }
            if std::path::Path::new(&path).exists() {
                bail!("{path} already exists");
            }
            let store = SqliteStore::connect(url).await?;
            store.backup(&path).await?;
            println!("{} copied to {path}", redacted_url(url));
        }
    }
    Ok(ExitCode::SUCCESS)
}
