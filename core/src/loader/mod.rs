//! Loading DAG files from a folder: each file becomes a [`Dag`] or a list of
//! [`ImportError`]s (file, line, column, message). A bad file never hides the
//! others.

mod positions;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use positions::{Pos, Positions};

use crate::dag::contract::Contract;
use crate::dag::convert::{self, Anchor, Problem};
use crate::dag::file::{ContractSpec, DagFile, KindName};
use crate::dag::{Dag, DagId, DatasetName, SourceText, TaskId};

/// A file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The file with the problem (a DAG file or a contract file it uses).
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl ImportError {
    fn new(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        ImportError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// What loading a folder found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The DAGs that loaded, sorted by id.
    pub dags: Vec<Dag>,
    /// Every problem, sorted by file and position.
    pub errors: Vec<ImportError>,
    /// How many DAG files were read.
    pub files: usize,
}

/// Whether a path is a DAG file by name (`*.yaml` or `*.yml`).
pub fn is_dag_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Every `*.yaml`/`*.yml` file below `dir`, sorted; hidden entries are skipped.
pub fn dag_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if is_dag_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every DAG file below `dir`. Blocking: call it from `spawn_blocking`
/// in async code.
pub fn load_folder(dir: &Path) -> LoadReport {
    let files = match dag_files(dir) {
        Ok(f) => f,
        Err(e) => {
            return LoadReport {
                errors: vec![ImportError::new(
                    dir,
                    Pos { line: 1, column: 1 },
                    format!("cannot read the DAG folder: {e}"),
                )],
                ..LoadReport::default()
            };
        }
    };
    let mut report = LoadReport::default();
    let mut loaded = Vec::new();
    for path in &files {
        match load_file(path) {
            Ok(Some(dag)) => loaded.push(dag),
            Ok(None) => continue,
            Err(errs) => report.errors.extend(errs),
        }
        report.files += 1;
    }
    cross_check(loaded, &mut report);
    report
        .errors
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    report.dags.sort_by(|a, b| a.id.cmp(&b.id));
    report
}

/// Checks between DAGs: ids are unique, and no dataset has two writers.
/// The later file (by path) gets the error and is not loaded.
fn cross_check(loaded: Vec<(Dag, Positions)>, report: &mut LoadReport) {
    let mut ids: HashMap<DagId, PathBuf> = HashMap::new();
    let mut writers: HashMap<DatasetName, (DagId, TaskId)> = HashMap::new();
    for (dag, positions) in loaded {
        let file = dag.fileloc.clone();
        if let Some(first) = ids.get(&dag.id) {
            let pos = positions.locate(&["dag".to_owned()], false, 0);
            report.errors.push(ImportError::new(
                &file,
                pos,
                format!("DAG id `{}` is already used by {}", dag.id, first.display()),
            ));
            continue;
        }
        let mut clashes = Vec::new();
        for task in dag.tasks.values() {
            for ds in task.writes() {
                if let Some((odag, otask)) = writers.get(ds) {
                    let pos = positions.locate(&["tasks".to_owned(), task.id.to_string()], true, 0);
                    clashes.push(ImportError::new(
                        &file,
                        pos,
                        format!(
                            "dataset `{ds}` is written by both `{}.{}` and `{odag}.{otask}`",
                            dag.id, task.id
                        ),
                    ));
                }
            }
        }
        if !clashes.is_empty() {
            report.errors.extend(clashes);
            continue;
        }
        for task in dag.tasks.values() {
            for ds in task.writes() {
                writers.insert(ds.clone(), (dag.id.clone(), task.id.clone()));
            }
        }
        ids.insert(dag.id.clone(), file);
        report.dags.push(dag);
    }
}

/// Loads one file. `Ok(None)` means the file is a contract, not a DAG
/// (it has `columns:` and no `tasks:`).
pub fn load_file(path: &Path) -> Result<Option<(Dag, Positions)>, Vec<ImportError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ImportError::new(
            path,
            Pos { line: 1, column: 1 },
            format!("cannot read the file: {e}"),
        )]
    })?;
    load_str(&text, path)
}

/// Loads DAG text as if read from `path` (contract files resolve against its folder).
pub fn load_str(text: &str, path: &Path) -> Result<Option<(Dag, Positions)>, Vec<ImportError>> {
    let positions = positions_of(text, path)?;
    if file_is_contract(&positions) {
        return Ok(None);
    }
    let mut file: DagFile = deserialize(text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut sources = vec![SourceText {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        text: text.to_owned(),
    }];
    for (tid, task) in file.tasks.iter_mut() {
        if task.kind != KindName::Validate {
            continue;
        }
        if let Some(ContractSpec::File(rel)) = &task.contract {
            match read_contract(&base.join(rel)) {
                Ok((c, text)) => {
                    if !sources.iter().any(|s| s.name == *rel) {
                        sources.push(SourceText {
                            name: rel.clone(),
                            text,
                        });
                    }
                    task.contract = Some(ContractSpec::Inline(Box::new(c)));
                }
                Err(ContractError::Missing(e)) => {
                    let at = positions.locate(
                        &["tasks".into(), tid.to_string(), "contract".into()],
                        false,
                        0,
                    );
                    errors.push(ImportError::new(
                        path,
                        at,
                        format!("cannot read contract file `{rel}`: {e}"),
                    ));
                }
                Err(ContractError::Invalid(errs)) => errors.extend(errs),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match convert::to_dag(&file, path) {
        Ok(mut dag) => {
            dag.version.sources = sources;
            Ok(Some((dag, positions)))
        }
        Err(problems) => Err(problems
            .iter()
            .map(|p| locate_problem(path, &positions, p))
            .collect()),
    }
}

fn file_is_contract(positions: &Positions) -> bool {
    positions.top_keys.iter().any(|k| k == "columns")
        && !positions.top_keys.iter().any(|k| k == "tasks")
}

enum ContractError {
    Missing(std::io::Error),
    Invalid(Vec<ImportError>),
}

/// A contract file, checked, with its text.
fn read_contract(path: &Path) -> Result<(Contract, String), ContractError> {
    let text = std::fs::read_to_string(path).map_err(ContractError::Missing)?;
    let positions = positions_of(&text, path).map_err(ContractError::Invalid)?;
    let contract: Contract = deserialize(&text, path).map_err(ContractError::Invalid)?;
    let problems = contract.problems();
    if problems.is_empty() {
        return Ok((contract, text));
    }
    Err(ContractError::Invalid(
        problems
            .into_iter()
            .map(|(p, message)| ImportError::new(path, positions.locate(&p, false, 0), message))
            .collect(),
    ))
}

fn locate_problem(file: &Path, positions: &Positions, p: &Problem) -> ImportError {
    let pos = match p.anchor {
        Anchor::Key => positions.locate(&p.path, true, 0),
        Anchor::Value => positions.locate(&p.path, false, 0),
        Anchor::ValueLine(n) => positions.locate(&p.path, false, n),
    };
    ImportError::new(file, pos, p.message.clone())
}

/// Reads the node positions of YAML `text`, reporting emptiness, syntax errors
/// and duplicate keys.
fn positions_of(text: &str, path: &Path) -> Result<Positions, Vec<ImportError>> {
    let start = Pos { line: 1, column: 1 };
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Err(vec![ImportError::new(
            path,
            start,
            "the file is empty; a DAG file needs at least `tasks:`",
        )]);
    }
    let positions = Positions::of(text).map_err(|e| {
        vec![ImportError::new(
            path,
            e.pos,
            format!("YAML syntax error: {}", e.message),
        )]
    })?;
    if !positions.duplicates.is_empty() {
        return Err(positions
            .duplicates
            .iter()
            .map(|(p, pos)| {
                let key = p.last().map(String::as_str).unwrap_or_default();
                let key = key.split('\u{0}').next().unwrap_or(key);
                ImportError::new(path, *pos, format!("duplicate key `{key}`"))
            })
            .collect());
    }
    Ok(positions)
}

/// Deserializes YAML `text` into `T`, reporting a type error with its position.
fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, Vec<ImportError>> {
    serde_yaml::from_str::<T>(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        vec![ImportError::new(path, pos, serde_message(&e.to_string()))]
    })
}

/// Cleans a serde_yaml message: drops the trailing position (given separately)
/// and adds a "did you mean" for an unknown key or variant.
fn serde_message(raw: &str) -> String {
    let msg = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw,
    };
    let hint = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|marker| {
            let start = msg.find(marker)? + marker.len();
            let word = &msg[start..start + msg[start..].find('`')?];
            let expected = &msg[msg.find("expected")?..];
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            crate::suggest::closest(word, candidates).map(|c| format!(" (did you mean `{c}`?)"))
        });
    match hint {
        Some(h) => format!("{msg}{h}"),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_is_described_by_its_contract_under_its_writer_s_metadata() {
        let text = r#"
tasks:
  extract:
    kind: extract
    source: {format: csv, path: people.csv}
    output: raw.people
    metadata:
      owner: intake
      columns: {email: {classification: pii}}
  check:
    kind: validate
    input: raw.people
    output: clean.people
    metadata:
      description: People, checked
      tags: [crm]
      columns: {name: {description: Full name}}
    contract:
      owner: crm-team
      description: People as the CRM sends them
      tags: [people]
      columns:
        name: {type: string, classification: pii}
        email: {type: string, classification: confidential}
        age: {type: int64}
"#;
        let Ok(Some((dag, _))) = load_str(text, Path::new("people.yaml")) else {
            panic!("the DAG loads");
        };
        let ds = |n: &str| {
            n.parse::<crate::dag::DatasetName>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let clean = dag
            .dataset_metadata(&ds("clean.people"))
            .unwrap_or_default();
        assert_eq!(clean.owner.as_deref(), Some("crm-team"));
        assert_eq!(clean.description.as_deref(), Some("People, checked"));
        assert_eq!(clean.tags, ["people", "crm"]);
        assert_eq!(clean.pii_columns(), ["name"]);
        assert_eq!(
            clean.columns["name"].description.as_deref(),
            Some("Full name")
        );
        // The quarantine holds the same rows: the same metadata.
        let held = dag.dataset_metadata(&ds("quarantine.people"));
        assert_eq!(held.as_ref(), Some(&clean));
        let raw = dag.dataset_metadata(&ds("raw.people")).unwrap_or_default();
        assert_eq!(raw.owner.as_deref(), Some("intake"));
        assert_eq!(raw.pii_columns(), ["email"]);
        assert_eq!(dag.dataset_metadata(&ds("curated.nothing")), None);
    }

    #[test]
    fn serde_messages_get_suggestions() {
        let m = serde_message(
            "tasks.a: unknown field `retires`, expected one of `kind`, `retries` at line 3 column 5",
        );
        assert_eq!(
            m,
            "tasks.a: unknown field `retires`, expected one of `kind`, `retries` (did you mean `retries`?)"
        );
    }
}
