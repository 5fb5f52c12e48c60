//! `weir db …`: migrations and backups.

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
