//! `weir users …` and `weir tokens …`: who may use the API.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use weir_api::auth::{password, tokens};
use weir_core::access::{Role, UserRecord};
use weir_core::config::Config;
use weir_core::store::{AuditAction, AuditEntry, Store};

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// `weir users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (asks for the password when --password is not given).
    Create {
        /// The login name.
        #[arg(long)]
        username: String,
        /// viewer (read), operator (also trigger, clear, mark, pause) or admin (also users, tokens, pools).
        #[arg(long)]
        role: String,
        /// The password (prefer the prompt: arguments show in the process list).
        #[arg(long)]
        password: Option<String>,
    },
    /// List users.
    List {
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove a user (their access tokens stop working at once).
    Delete {
        /// The login name.
        username: String,
    },
}

/// `weir tokens` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a long-lived API token; it is printed once.
    Create {
        /// viewer, operator, admin, or worker (may only claim and report tasks).
        #[arg(long)]
        role: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Stop working after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List API tokens (never their secrets).
    List {
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Revoke a token: it is refused from now on.
    Revoke {
        /// The token's id (the part after `weir_`).
        id: String,
    },
}

fn role(text: &str) -> anyhow::Result<Role> {
    text.parse::<Role>().map_err(anyhow::Error::msg)
}

async fn audit(
    store: &dyn Store,
    action: AuditAction,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = AuditEntry::about(&super::actor(), action, detail, chrono::Utc::now());
    store.audit(&entry).await?;
    Ok(())
}

/// Adds a user with a hashed password.
pub async fn create_user(
    store: &dyn Store,
    username: &str,
    role: Role,
    password: &str,
) -> anyhow::Result<()> {
    if role == Role::Worker {
        bail!(
            "users are viewer, operator or admin; use `weir tokens create --role worker` for workers"
        );
    }
    if username.trim().is_empty() || username.len() > 128 || username.contains(char::is_whitespace)
    {
        bail!("a user name is 1 to 128 characters without spaces");
    }
    if password.chars().count() < 8 {
        bail!("a password has at least 8 characters");
    }
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw)).await??;
    store
        .create_user(&UserRecord {
            username: username.to_owned(),
            password_hash: hash,
            role,
            created_at: chrono::Utc::now(),
            last_login_at: None,
        })
        .await?;
    audit(
        store,
        AuditAction::CreateUser,
        json!({"username": username, "role": role.as_str()}),
    )
    .await
}

fn prompt_password() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Again: ")?;
    if first != again {
        bail!("the passwords differ");
    }
    Ok(first)
}

/// Runs a `weir users` subcommand.
pub async fn run_users(command: UsersCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    match command {
        UsersCommand::Create {
            username,
            role: r,
            password,
        } => {
            let r = role(&r)?;
            let password = match password {
                Some(p) => p,
                None => prompt_password().context("reading the password")?,
            };
            create_user(store.as_ref(), &username, r, &password).await?;
            println!("created user {username} ({r})");
        }
        UsersCommand::List { output } => {
            let users = store.list_users().await?;
            match output {
                OutputFormat::Json => print_json(&json!(users
                    .iter()
                    .map(|u| json!({"username": u.username, "role": u.role.as_str(), "created_at": u.created_at, "last_login_at": u.last_login_at}))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => print_table(
                    &["USERNAME", "ROLE", "CREATED", "LAST LOGIN"],
                    &users
                        .iter()
                        .map(|u| vec![u.username.clone(), u.role.to_string(), time(Some(u.created_at)), time(u.last_login_at)])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        UsersCommand::Delete { username } => {
            store.delete_user(&username).await?;
            audit(
                store.as_ref(),
                AuditAction::DeleteUser,
                json!({"username": username}),
            )
            .await?;
            println!("deleted user {username}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `weir tokens` subcommand.
pub async fn run_tokens(command: TokensCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let store = super::store(config).await?;
    match command {
        TokensCommand::Create {
            role: r,
            description,
            expires_in_days,
        } => {
            let r = role(&r)?;
            let now = chrono::Utc::now();
            let expires = expires_in_days.map(|d| now + chrono::Duration::days(i64::from(d)));
            let new = tokens::generate(r, description, &super::actor(), expires, now)?;
            store.create_token(&new.record).await?;
            audit(
                store.as_ref(),
                AuditAction::CreateToken,
                json!({"token": new.record.id, "role": r.as_str()}),
            )
            .await?;
            eprintln!("token {} ({r}); it is shown only now:", new.record.id);
            println!("{}", new.token);
        }
        TokensCommand::List { output } => {
            let all = store.list_tokens().await?;
            match output {
                OutputFormat::Json => print_json(&json!(all
                    .iter()
                    .map(|t| json!({"id": t.id, "role": t.role.as_str(), "description": t.description, "created_by": t.created_by, "created_at": t.created_at, "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": t.last_used_at}))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => print_table(
                    &["ID", "ROLE", "DESCRIPTION", "CREATED", "EXPIRES", "REVOKED", "LAST USED"],
                    &all.iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.role.to_string(),
                                t.description.clone().unwrap_or_default(),
                                time(Some(t.created_at)),
                                time(t.expires_at),
                                time(t.revoked_at),
                                time(t.last_used_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        TokensCommand::Revoke { id } => {
            store.revoke_token(&id, chrono::Utc::now()).await?;
            audit(
                store.as_ref(),
                AuditAction::RevokeToken,
                json!({"token": id}),
            )
            .await?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
