//! The JSON Schema of the DAG file format, generated from the Rust types so it
//! cannot drift from what the loader accepts.

use crate::dag::file::DagFile;

/// The JSON Schema of a DAG file, pretty-printed, with a trailing newline.
pub fn dag_file_schema() -> String {
    let schema = schemars::schema_for!(DagFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
