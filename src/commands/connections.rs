//! `weir connections …`: the connections weir keeps for tasks (extract
//! queries, loads, SQL sensors), their secret parts sealed with the site's
//! secret key. A worker's `WEIR_CONN_<ID>` or `[connections.<id>]` wins.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use weir_core::config::Config;
use weir_core::scheduler::connections::Connection;
use weir_core::scheduler::variables::MASK;
use weir_core::store::SaveMode;

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// `weir connections` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ConnectionsCommand {
    /// List stored connections (passwords show as ***).
    List {
        /// Only ids containing this text (case-insensitive).
        #[arg(long)]
        pattern: Option<String>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show one connection (its password as ***).
    Get {
        /// The id.
        id: String,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Create or replace a connection, from a URL or from its parts.
    Add {
        /// The id tasks name it by: 1 to 200 letters, digits, `_`, `-` or `.`.
        id: String,
        /// The whole connection as a URL
        /// (`postgres://user:pw@host:5432/db?sslmode=require`, `sqlite:///path/to.db`).
        #[arg(long, conflicts_with_all = ["conn_type", "host", "port", "login", "schema", "extra"])]
        url: Option<String>,
        /// The kind, as a URL scheme (`postgres`, `sqlite`).
        #[arg(long)]
        conn_type: Option<String>,
        /// Host (for sqlite, the database file).
        #[arg(long)]
        host: Option<String>,
        /// Port.
        #[arg(long)]
        port: Option<i64>,
        /// User.
        #[arg(long)]
        login: Option<String>,
        /// Database.
        #[arg(long)]
        schema: Option<String>,
        /// Extra settings: a JSON object whose entries become URL parameters.
        #[arg(long)]
        extra: Option<String>,
        /// Read the password from this environment variable (it never
        /// appears on a command line).
        #[arg(long)]
        password_env: Option<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a connection.
    Delete {
        /// The id.
        id: String,
    },
    /// Print a new random secret key for `[core] secret_key`.
    NewKey,
}

fn shown(c: &Connection) -> serde_json::Value {
    json!({
        "connection_id": c.conn_id, "conn_type": c.conn_type, "description": c.description,
        "host": c.host, "port": c.port, "login": c.login, "schema": c.schema,
        "password": c.password.as_ref().map(|_| MASK), "extra": c.shown_extra(),
    })
}

/// Runs a `weir connections` subcommand.
pub async fn run(command: ConnectionsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    if let ConnectionsCommand::NewKey = command {
        println!("{}", weir_core::secret_key::SecretKey::generate()?.encode());
        return Ok(ExitCode::SUCCESS);
    }
    let sched = super::scheduler(config).await?;
    let actor = super::actor();
    match command {
        ConnectionsCommand::List { pattern, output } => {
            let mut all = Vec::new();
            for r in sched.list_connections(pattern.as_deref()).await? {
                let opened = sched
                    .open_connection(&r)
                    .await
                    .with_context(|| format!("connection `{}`", r.conn_id))?;
                all.push((opened, r.updated_at));
            }
            match output {
                OutputFormat::Json => print_json(&json!(
                    all.iter().map(|(c, _)| shown(c)).collect::<Vec<_>>()
                )),
                OutputFormat::Table => print_table(
                    &[
                        "ID",
                        "TYPE",
                        "HOST",
                        "PORT",
                        "SCHEMA",
                        "LOGIN",
                        "PASSWORD",
                        "DESCRIPTION",
                        "UPDATED",
                    ],
                    &all.iter()
                        .map(|(c, at)| {
                            vec![
                                c.conn_id.clone(),
                                c.conn_type.clone(),
                                c.host.clone().unwrap_or_default(),
                                c.port.map(|p| p.to_string()).unwrap_or_default(),
                                c.schema.clone().unwrap_or_default(),
                                c.login.clone().unwrap_or_default(),
                                c.password
                                    .as_ref()
                                    .map(|_| MASK)
                                    .unwrap_or_default()
                                    .to_owned(),
                                c.description.clone().unwrap_or_default(),
                                time(Some(*at)),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        ConnectionsCommand::Get { id, output } => {
            let c = sched.get_connection(&id).await?;
            match output {
                OutputFormat::Json => print_json(&shown(&c)),
                OutputFormat::Table => {
                    let v = shown(&c);
                    let rows: Vec<Vec<String>> = v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| {
                            let text = match v {
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            vec![k.clone(), text]
                        })
                        .collect();
                    print_table(&["FIELD", "VALUE"], &rows);
                }
            }
        }
        ConnectionsCommand::Add {
            id,
            url,
            conn_type,
            host,
            port,
            login,
            schema,
            extra,
            password_env,
            description,
        } => {
            let mut conn = match (url, conn_type) {
                (Some(url), _) => Connection::from_url(&id, &url)?,
                (None, Some(conn_type)) => Connection {
                    conn_id: id.clone(),
                    conn_type,
                    host,
                    port,
                    login,
                    schema,
                    extra,
                    ..Connection::default()
                },
                (None, None) => {
                    bail!("connection `{id}`: give --url, or --conn-type and its parts")
                }
            };
            if let Some(var) = password_env {
                let pw = std::env::var(&var)
                    .with_context(|| format!("--password-env: `{var}` is not set"))?;
                conn.password = Some(pw);
            }
            conn.description = description;
            sched
                .set_connection(&actor, &conn, SaveMode::Upsert)
                .await?;
            println!("saved connection {id}");
        }
        ConnectionsCommand::Delete { id } => {
            sched.delete_connection(&actor, &id).await?;
            println!("deleted connection {id}");
        }
        ConnectionsCommand::NewKey => {}
    }
    Ok(ExitCode::SUCCESS)
}
