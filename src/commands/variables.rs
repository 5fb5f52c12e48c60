//! `weir variables …`: the values templates read as `var.value.<key>` and
//! `var.json.<key>`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use weir_core::config::Config;
use weir_core::scheduler::variables::shown;
use weir_core::store::{SaveMode, VariableFilter};

use super::time;
use crate::output::{OutputFormat, print_json, print_table};

/// `weir variables` subcommands.
#[derive(Debug, Subcommand)]
pub enum VariablesCommand {
    /// List variables (values of keys that name a secret show as ***).
    List {
        /// Only keys containing this text (case-insensitive).
        #[arg(long)]
        pattern: Option<String>,
        /// Table or JSON.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print one variable's value.
    Get {
        /// The key.
        key: String,
    },
    /// Create or change a variable.
    Set {
        /// The key: 1 to 250 letters, digits, `_`, `-` or `.`.
        key: String,
        /// The value (with --json it must be JSON, kept as its text).
        value: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Check that the value is JSON (for `var.json.<key>`).
        #[arg(long)]
        json: bool,
    },
    /// Delete a variable.
    Delete {
        /// The key.
        key: String,
    },
    /// Set every variable of a JSON object file (`{"key": value, …}`;
    /// strings are kept as they are, other values as their JSON text).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Write every variable to a JSON object file (values in clear).
    Export {
        /// The file.
        file: PathBuf,
    },
}

/// A value as stored: strings as they are, other JSON as its text.
fn stored(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs a `weir variables` subcommand.
pub async fn run(command: VariablesCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    let actor = super::actor();
    match command {
        VariablesCommand::List { pattern, output } => {
            let filter = VariableFilter {
                key_pattern: pattern,
                key_prefix: None,
            };
            let all = sched.list_variables(&filter).await?;
            match output {
                OutputFormat::Json => print_json(&json!(all
                    .iter()
                    .map(|v| json!({"key": v.key, "value": shown(&v.key, &v.value), "description": v.description, "updated_at": v.updated_at}))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => print_table(
                    &["KEY", "VALUE", "DESCRIPTION", "UPDATED"],
                    &all.iter()
                        .map(|v| {
                            vec![
                                v.key.clone(),
                                shown(&v.key, &v.value).to_owned(),
                                v.description.clone().unwrap_or_default(),
                                time(Some(v.updated_at)),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        VariablesCommand::Get { key } => {
            let v = sched.get_variable(&key).await?;
            println!("{}", v.value);
        }
        VariablesCommand::Set {
            key,
            value,
            description,
            json,
        } => {
            if json {
                serde_json::from_str::<serde_json::Value>(&value)
                    .with_context(|| format!("variable `{key}`: the value is not JSON"))?;
            }
            sched
                .set_variable(
                    &actor,
                    &key,
                    &value,
                    description.as_deref(),
                    SaveMode::Upsert,
                )
                .await?;
            println!("set variable {key}");
        }
        VariablesCommand::Delete { key } => {
            sched.delete_variable(&actor, &key).await?;
            println!("deleted variable {key}");
        }
        VariablesCommand::Import { file } => {
            let text = tokio::fs::read_to_string(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            let Some(object) = parsed.as_object() else {
                bail!(
                    "{}: expected a JSON object of keys and values",
                    file.display()
                );
            };
            for (key, value) in object {
                if value.is_null() {
                    bail!("{}: variable `{key}` is null", file.display());
                }
                weir_core::scheduler::variables::check_key(key)
                    .with_context(|| format!("{}", file.display()))?;
            }
            for (key, value) in object {
                sched
                    .set_variable(&actor, key, &stored(value), None, SaveMode::Upsert)
                    .await?;
            }
            println!(
                "imported {} variable(s) from {}",
                object.len(),
                file.display()
            );
        }
        VariablesCommand::Export { file } => {
            let all = sched.list_variables(&VariableFilter::default()).await?;
            let object: serde_json::Map<String, serde_json::Value> = all
                .iter()
                .map(|v| (v.key.clone(), json!(v.value)))
                .collect();
            let text = serde_json::to_string_pretty(&object)?;
            tokio::fs::write(&file, text + "\n")
                .await
                .with_context(|| format!("writing {}", file.display()))?;
            println!("exported {} variable(s) to {}", all.len(), file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
