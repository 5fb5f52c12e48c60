//! A contract compiled into one query: every declared column cast to its
//! type beside its raw text, the primary-key and reference lookups joined to
//! the rows, and one boolean flag column per row-level rule. Pure: no
//! session, no files; the validate task runs what this returns.

use weir_core::dag::DatasetName;
use weir_core::dag::contract::{
    CheckKind, CheckResultKind, ColumnType, Contract, ExactRepeats, ExtraColumns, Format, Threshold,
};

use super::DataError;
use super::csv_repair::CORRUPT;
use super::sql::{ident, json_literal, literal, type_name};

/// Columns weir adds for lineage; never "extra".
pub const LINEAGE: [&str; 2] = ["_weir_source", "_weir_row"];

/// A column of the input as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputColumn {
    /// Its name.
    pub name: String,
    /// Whether it holds text (whose blank values count as missing).
    pub text: bool,
}

/// A contract compiled against one input.
#[derive(Debug)]
pub struct Compiled {
    /// The checked query over the input (and the referenced datasets).
    pub sql: String,
    /// The row-level rules, in the order of their flag columns.
    pub rules: Vec<RowRule>,
    /// The columns of a clean row, in order.
    pub clean: Vec<String>,
    /// The columns of a quarantined row: raw texts, kept columns, flags.
    pub held: Vec<String>,
    /// The flag column of each rule (`__f<i>`).
    pub flags: Vec<String>,
    /// The missing-value tally column of each `missing_percent` check.
    pub tallies: Vec<String>,
    /// Undeclared and lineage columns carried along as they are.
    pub kept: Vec<String>,
}

/// One row-level rule: its flag column, its reason text and its result name.
#[derive(Debug)]
pub struct RowRule {
    /// The SQL condition that flags a row.
    pub condition: String,
    /// What kind of check it is.
    pub kind: CheckResultKind,
    /// Its name in results.
    pub name: String,
    /// The column it is about.
    pub column: Option<String>,
    /// A `rule`'s tolerance (`max_failed`): beyond it the check holds the
    /// version back; within it, a warning.
    pub max_failed: Option<Threshold>,
}

impl RowRule {
    /// A rule of `column` (or of the key), named after its kind.
    fn on_column(kind: CheckResultKind, column: String, condition: String) -> Self {
        RowRule {
            condition,
            kind,
            name: kind.to_string(),
            column: Some(column),
            max_failed: None,
        }
    }

    /// The reason written into `_weir_errors`.
    pub fn reason(&self) -> String {
        if matches!(
            self.kind,
            CheckResultKind::Corrupt | CheckResultKind::Repeat
        ) {
            return self.kind.to_string();
        }
        match &self.column {
            Some(c) if self.kind != CheckResultKind::Rule => format!("{}:{c}", self.name),
            _ => format!("{}:{}", self.kind, self.name),
        }
    }
}

/// A table of keys joined to every row: the rows sharing a primary key, or
/// the keys of a referenced dataset.
#[derive(Debug)]
pub(super) struct Lookup {
    /// The table, as a query.
    pub(super) query: String,
    /// Its alias in the join.
    pub(super) alias: String,
    /// Pairs of (row column, lookup column) that must be equal.
    pub(super) on: Vec<(String, String)>,
    /// The column the join adds to each row.
    pub(super) column: String,
}

/// Compiles `contract` against `input` (described as `source` in messages) with
/// these stored `columns`.
pub fn compile(
    c: &Contract,
    input: &DatasetName,
    source: &str,
    columns: &[InputColumn],
) -> Result<Compiled, DataError> {
    let present: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let missing: Vec<&String> = c
        .columns
        .keys()
        .filter(|k| !present.contains(&k.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Invalid(format!(
            "column(s) {} declared by the contract are missing from {source}",
            names(missing.iter().map(|s| s.as_str())),
        )));
    }
    let extras: Vec<String> = present
        .iter()
        .filter(|p| !c.columns.contains_key(**p) && !LINEAGE.contains(p) && **p != CORRUPT)
        .map(|p| (*p).to_owned())
        .collect();
    if c.extra_columns == ExtraColumns::Fail && !extras.is_empty() {
        return Err(DataError::Invalid(format!(
            "{input} has column(s) the contract does not declare: {} (extra_columns: fail)",
            names(extras.iter().map(|s| s.as_str()))
        )));
    }
    let lineage: Vec<&str> = LINEAGE
        .iter()
        .copied()
        .filter(|l| present.contains(l))
        .collect();
    let table = format!("{}.{}", ident(input.zone().as_str()), ident(input.name()));

    // typed: each declared column cast to its type, with its raw text beside it.
    let mut typed_cols = Vec::new();
    let mut rules: Vec<RowRule> = Vec::new();
    for (i, (name, col)) in c.columns.iter().enumerate() {
        let q = ident(name);
        let raw = format!("__raw_{i}");
        let is_text = columns.iter().any(|c| c.name == *name && c.text);
        let raw_expr = if is_text {
            format!("{}({q})", super::blank::NAME)
        } else {
            format!("CAST({q} AS VARCHAR)")
        };
        let typed_expr = match (&col.format, col.column_type) {
            (_, ColumnType::String) => raw_expr.clone(),
            (Some(Format::DatePattern(p)), _) => {
                format!("{}({raw_expr}, {})", super::patterns::DATE, literal(p))
            }
            (Some(Format::TimestampPattern(p)), _) => {
                format!("{}({raw_expr}, {})", super::patterns::TIMESTAMP, literal(p))
            }
            (_, ColumnType::Decimal { precision, scale }) => {
                format!("{}({raw_expr}, {precision}, {scale})", super::decimal::NAME)
            }
            (_, t) => format!("TRY_CAST({raw_expr} AS {})", type_name(t)),
        };
        typed_cols.push(format!("{typed_expr} AS {q}"));
        typed_cols.push(format!("{raw_expr} AS {raw}"));
        if col.column_type != ColumnType::String {
            rules.push(RowRule::on_column(
                CheckResultKind::Type,
                name.clone(),
                format!("{raw} IS NOT NULL AND {q} IS NULL"),
            ));
        }
        if col.required {
            rules.push(RowRule::on_column(
                CheckResultKind::Required,
                name.clone(),
                format!("{raw} IS NULL"),
            ));
        }
        let t = type_name(col.column_type);
        for (bound, op, kind) in [
            (&col.min, "<", CheckResultKind::Min),
            (&col.max, ">", CheckResultKind::Max),
        ] {
            if let Some(v) = bound {
                let lit = json_literal(v)
                    .map_err(|e| DataError::Invalid(format!("column `{name}` {kind}: {e}")))?;
                rules.push(RowRule::on_column(
                    kind,
                    name.clone(),
                    format!("{q} {op} CAST({lit} AS {t})"),
                ));
            }
        }
        if let Some(values) = &col.values {
            let lits = values
                .iter()
                .map(|v| json_literal(v).map(|l| format!("CAST({l} AS {t})")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DataError::Invalid(format!("column `{name}` values: {e}")))?;
            rules.push(RowRule::on_column(
                CheckResultKind::Values,
                name.clone(),
                format!("{q} NOT IN ({})", lits.join(", ")),
            ));
        }
        if let Some(bounds) = col.length {
            let len = format!("character_length({raw})");
            let limits: Vec<String> = [
                bounds.min.map(|lo| format!("{len} < {lo}")),
                bounds.max.map(|hi| format!("{len} > {hi}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !limits.is_empty() {
                rules.push(RowRule::on_column(
                    CheckResultKind::Length,
                    name.clone(),
                    format!("{raw} IS NOT NULL AND ({})", limits.join(" OR ")),
                ));
            }
        }
        if let Some(format) = col
            .format
            .as_ref()
            .filter(|f| !matches!(f, Format::DatePattern(_) | Format::TimestampPattern(_)))
        {
            let pattern = match format {
                Format::Email => r"^[^@\s]+@[^@\s]+\.[^@\s]+$".to_owned(),
                Format::Uuid => {
                    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
                        .to_owned()
                }
                Format::Date => r"^\d{4}-\d{2}-\d{2}$".to_owned(),
                Format::Url => r"^https?://[^\s/?#]+[^\s]*$".to_owned(),
                Format::Regex(re) => {
                    regex::Regex::new(re).map_err(|e| {
                        DataError::Invalid(format!("column `{name}` format regex: {e}"))
                    })?;
                    format!("^(?:{re})$")
                }
                // Parsed into the typed value above; a miss fails `type`.
                Format::DatePattern(_) | Format::TimestampPattern(_) => String::new(),
            };
            let extra = if matches!(format, Format::Date) {
                format!(" OR TRY_CAST({raw} AS DATE) IS NULL")
            } else {
                String::new()
            };
            rules.push(RowRule::on_column(
                CheckResultKind::Format,
                name.clone(),
                format!(
                    "{raw} IS NOT NULL AND (NOT regexp_like({raw}, {}){extra})",
                    literal(&pattern)
                ),
            ));
        }
    }
    for e in &extras {
        typed_cols.push(ident(e));
    }
    for l in &lineage {
        typed_cols.push(ident(l));
    }
    // exact_repeats: each row's identity (every column as it arrived) and
    // its place in source order, to keep one of identical rows.
    let repeats = c.exact_repeats != ExactRepeats::Keep;
    if repeats {
        if lineage.len() != LINEAGE.len() {
            return Err(DataError::Invalid(format!(
                "exact_repeats needs the source order of {input}'s rows (`_weir_source`, `_weir_row`, written by an extract)"
            )));
        }
        let identity: Vec<String> = present
            .iter()
            .filter(|p| !LINEAGE.contains(p) && **p != CORRUPT)
            .map(|p| format!("COALESCE(CAST({} AS VARCHAR), chr(0))", ident(p)))
            .collect();
        typed_cols.push(format!(
            "concat_ws(chr(31), {}) AS __ident",
            identity.join(", ")
        ));
        typed_cols.push(
            "concat(_weir_source, chr(31), lpad(CAST(_weir_row AS VARCHAR), 20, '0')) AS __ord"
                .to_owned(),
        );
    }

    // Lookups: primary-key counts and referenced keys.
    let mut lookups = Vec::new();
    if !c.primary_key.is_empty() {
        // Keys held by more than one row, as an aggregate joined back (a hash
        // join; cheaper than a window over every row). Null keys never join.
        let keys: Vec<String> = c.primary_key.iter().map(|k| ident(k)).collect();
        lookups.push(Lookup {
            // With exact_repeats, identical rows are one: a key is shared
            // only by rows that differ.
            query: if repeats {
                format!(
                    "SELECT {0}, COUNT(DISTINCT __ident) AS __n FROM typed GROUP BY {0} HAVING COUNT(DISTINCT __ident) > 1",
                    keys.join(", ")
                )
            } else {
                format!(
                    "SELECT {0}, COUNT(*) AS __n FROM typed GROUP BY {0} HAVING COUNT(*) > 1",
                    keys.join(", ")
                )
            },
            alias: "__dup".into(),
            on: keys.iter().map(|k| (k.clone(), k.clone())).collect(),
            column: "__dup.__n AS __pk_n".into(),
        });
        let raws: Vec<String> = c
            .primary_key
            .iter()
            .map(|k| format!("{} IS NULL", raw_of(c, k)))
            .collect();
        let typed_ok = not_null(&c.primary_key);
        rules.push(RowRule::on_column(
            CheckResultKind::PrimaryKey,
            c.primary_key.join(","),
            format!(
                "({}) OR (__pk_n > 1 AND {})",
                raws.join(" OR "),
                typed_ok.join(" AND ")
            ),
        ));
    }
    for (i, (name, col)) in c.columns.iter().enumerate() {
        let Some(r) = &col.references else { continue };
        let alias = format!("__ref_{i}");
        let t = type_name(col.column_type);
        lookups.push(Lookup {
            query: format!(
                "SELECT DISTINCT TRY_CAST({} AS {t}) AS k FROM {}.{}",
                ident(&r.column),
                ident(r.dataset.zone().as_str()),
                ident(r.dataset.name()),
            ),
            on: vec![(ident(name), "k".into())],
            column: format!("{alias}.k AS {alias}"),
            alias: alias.clone(),
        });
        rules.push(RowRule::on_column(
            CheckResultKind::References,
            name.clone(),
            format!("{} IS NOT NULL AND {alias} IS NULL", ident(name)),
        ));
    }
    if repeats {
        let pick = if c.exact_repeats == ExactRepeats::KeepLast {
            "MAX"
        } else {
            "MIN"
        };
        lookups.push(Lookup {
            query: format!(
                "SELECT __ident, {pick}(__ord) AS __keep FROM typed GROUP BY __ident HAVING COUNT(*) > 1"
            ),
            alias: "__rep".into(),
            on: vec![("__ident".into(), "__ident".into())],
            column: "__rep.__keep AS __rep_keep".into(),
        });
        rules.push(RowRule {
            condition: "__rep_keep IS NOT NULL AND __ord <> __rep_keep".into(),
            kind: CheckResultKind::Repeat,
            name: CheckResultKind::Repeat.to_string(),
            column: None,
            max_failed: None,
        });
    }
    for (j, r) in c.references.iter().enumerate() {
        let alias = format!("__cref_{j}");
        let keys: Vec<String> = r
            .columns
            .iter()
            .zip(r.targets())
            .enumerate()
            .map(|(k, (col, to))| {
                let t = c
                    .columns
                    .get(col)
                    .map_or("VARCHAR".to_owned(), |s| type_name(s.column_type));
                format!("TRY_CAST({} AS {t}) AS k{k}", ident(to))
            })
            .collect();
        lookups.push(Lookup {
            query: format!(
                "SELECT DISTINCT {} FROM {}.{}",
                keys.join(", "),
                ident(r.dataset.zone().as_str()),
                ident(r.dataset.name()),
            ),
            on: r
                .columns
                .iter()
                .enumerate()
                .map(|(k, col)| (ident(col), format!("k{k}")))
                .collect(),
            column: format!("{alias}.k0 AS {alias}"),
            alias: alias.clone(),
        });
        let present = not_null(&r.columns);
        rules.push(RowRule::on_column(
            CheckResultKind::References,
            r.columns.join(","),
            format!("{} AND {alias} IS NULL", present.join(" AND ")),
        ));
    }
    for (i, check) in c.checks.iter().enumerate() {
        if let CheckKind::Rule(rule) = &check.kind {
            check_expression(rule)?;
            rules.push(RowRule {
                condition: format!("NOT COALESCE(({rule}), TRUE)"),
                kind: CheckResultKind::Rule,
                name: check
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("rule_{}", i + 1)),
                column: None,
                max_failed: check.max_failed,
            });
        }
    }
    // Lines the extract could not read are rows of nothing but the reason:
    // quarantined as corrupt, judged by no other rule.
    let corrupt = present.contains(&CORRUPT);
    if corrupt {
        typed_cols.push(ident(CORRUPT));
        for r in &mut rules {
            r.condition = format!("{CORRUPT} IS NULL AND ({})", r.condition);
        }
        rules.push(RowRule {
            condition: format!("{CORRUPT} IS NOT NULL"),
            kind: CheckResultKind::Corrupt,
            name: CheckResultKind::Corrupt.to_string(),
            column: None,
            max_failed: None,
        });
    }
    let flags: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("COALESCE(({}), FALSE) AS __f{i}", r.condition))
        .collect();
    // Columns whose missing values a `missing_percent` check counts, over
    // every row read (by the raw text of a declared column).
    let mut tallies = Vec::new();
    for (k, check) in c.checks.iter().enumerate() {
        if let CheckKind::MissingPercent(mp) = &check.kind {
            if !present.contains(&mp.column.as_str()) {
                return Err(DataError::Invalid(format!(
                    "missing_percent: column `{}` is not in {}",
                    mp.column, input
                )));
            }
            tallies.push(format!(
                "COALESCE({} IS NULL, FALSE) AS __m{k}",
                raw_of(c, &mp.column)
            ));
        }
    }
    let sql = checked_query(
        &format!("SELECT {} FROM {table}", typed_cols.join(", ")),
        &lookups,
        &flags.into_iter().chain(tallies).collect::<Vec<_>>(),
    );
    let mut clean: Vec<String> = c.columns.keys().cloned().collect();
    if c.extra_columns == ExtraColumns::Keep {
        clean.extend(extras.iter().cloned());
    }
    clean.extend(lineage.iter().map(|l| (*l).to_owned()));
    let mut held: Vec<String> = (0..c.columns.len()).map(|i| format!("__raw_{i}")).collect();
    held.extend(extras.iter().cloned());
    held.extend(lineage.iter().map(|l| (*l).to_owned()));
    if corrupt {
        held.push(CORRUPT.to_owned());
    }
    held.extend((0..rules.len()).map(|i| format!("__f{i}")));
    let tallies: Vec<String> = c
        .checks
        .iter()
        .enumerate()
        .filter(|(_, ch)| matches!(ch.kind, CheckKind::MissingPercent(_)))
        .map(|(k, _)| format!("__m{k}"))
        .collect();
    let flags = (0..rules.len()).map(|i| format!("__f{i}")).collect();
    let kept = extras
        .into_iter()
        .chain(lineage.iter().map(|l| (*l).to_owned()))
        .chain(corrupt.then(|| CORRUPT.to_owned()))
        .collect();
    Ok(Compiled {
        sql,
        rules,
        clean,
        held,
        flags,
        tallies,
        kept,
    })
}

/// The query of every row of `typed` (a query), each lookup joined to it,
/// and the `extra` columns (expressions over them) after its own.
///
/// Each lookup is a step joining the rows so far, with the lookup on the
/// left: DataFusion builds its hash table from the left input and streams
/// the right, so the rows are never collected in memory.
pub(super) fn checked_query(typed: &str, lookups: &[Lookup], extra: &[String]) -> String {
    let mut steps = vec![format!("typed AS ({typed})")];
    let mut rows_so_far = "typed".to_owned();
    for (n, l) in lookups.iter().enumerate() {
        let step = format!("__step_{n}");
        let on: Vec<String> =
            l.on.iter()
                .map(|(col, key)| format!("{rows_so_far}.{col} = {}.{key}", l.alias))
                .collect();
        steps.push(format!(
            "{step} AS (SELECT {rows_so_far}.*, {} FROM ({}) AS {} RIGHT JOIN {rows_so_far} ON {})",
            l.column,
            l.query,
            l.alias,
            on.join(" AND ")
        ));
        rows_so_far = step;
    }
    format!(
        "WITH {} SELECT {} FROM {rows_so_far}",
        steps.join(", "),
        std::iter::once(format!("{rows_so_far}.*"))
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"c" IS NOT NULL` for each of `columns`.
fn not_null(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", ident(c)))
        .collect()
}

/// The raw-text column of a declared column.
fn raw_of(c: &Contract, column: &str) -> String {
    c.columns
        .get_index_of(column)
        .map(|i| format!("__raw_{i}"))
        .unwrap_or_else(|| ident(column))
}

/// A rule must be one SQL expression (no statements, no subqueries of other data).
pub(super) fn check_expression(rule: &str) -> Result<(), DataError> {
    use std::ops::ControlFlow;

    use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(rule)
        .map_err(|e| DataError::Invalid(format!("rule `{rule}`: {e}")))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| DataError::Invalid(format!("rule `{rule}`: {e}")))?;
    if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(DataError::Invalid(format!(
            "rule `{rule}` must be a single SQL expression"
        )));
    }
    let subquery = visit_expressions(&expr, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    if subquery.is_break() {
        return Err(DataError::Invalid(format!(
            "rule `{rule}`: subqueries are not allowed in rules"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;

    fn contract(json: serde_json::Value) -> Contract {
        serde_json::from_value(json).unwrap()
    }

    fn orders() -> Contract {
        contract(serde_json::json!({
            "columns": {
                "id": {"type": "int64", "required": true},
                "amount": {"type": "decimal(10,2)", "min": 0},
                "status": {"type": "string", "values": ["new", "paid"]},
                "email": {"type": "string", "format": "email"},
            },
            "primary_key": ["id"],
            "checks": [
                {"rule": "amount > 0 or status = 'new'", "name": "paid_has_amount"},
                {"missing_percent": {"column": "email", "max": "50%"}},
            ],
        }))
    }

    fn text_columns(names: &[&str]) -> Vec<InputColumn> {
        names
            .iter()
            .map(|n| InputColumn {
                name: (*n).into(),
                text: true,
            })
            .collect()
    }

    /// A session of weir's own with `batch` as the table `raw.orders`.
    fn session_over(
        schema: Arc<Schema>,
        batch: RecordBatch,
    ) -> datafusion::prelude::SessionContext {
        let session =
            super::super::storage::session_with(datafusion::prelude::SessionConfig::new()).unwrap();
        session
            .register_table(
                "raw.orders",
                Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
            )
            .unwrap();
        session
    }

    fn input() -> DatasetName {
        "raw.orders".parse().unwrap()
    }

    #[test]
    fn every_rule_becomes_a_flag_column_with_its_reason() {
        let cols = text_columns(&["id", "amount", "status", "email", "note", "_weir_row"]);
        let c = compile(&orders(), &input(), "raw.orders version 3", &cols).unwrap();
        let reasons: Vec<String> = c.rules.iter().map(RowRule::reason).collect();
        assert_eq!(
            reasons,
            // Columns in the contract's order (a JSON map here: sorted).
            [
                "type:amount",
                "min:amount",
                "format:email",
                "type:id",
                "required:id",
                "values:status",
                "primary_key:id",
                "rule:paid_has_amount",
            ]
        );
        assert_eq!(
            c.flags,
            (0..8).map(|i| format!("__f{i}")).collect::<Vec<_>>()
        );
        assert_eq!(c.tallies, ["__m1"]);
        // Undeclared columns are kept (extra_columns: keep is the default),
        // lineage always; both go with the clean and the held rows.
        assert_eq!(c.kept, ["note", "_weir_row"]);
        assert_eq!(
            c.clean,
            ["amount", "email", "id", "status", "note", "_weir_row"]
        );
        assert!(c.held.starts_with(&["__raw_0".to_owned()]) && c.held.ends_with(&c.flags));
        assert!(c.sql.contains("FROM \"raw\".\"orders\""), "{}", c.sql);
    }

    #[test]
    fn bad_contracts_and_inputs_are_refused_with_what_and_where() {
        let cols = text_columns(&["id", "amount", "status"]);
        let err = compile(&orders(), &input(), "raw.orders version 3", &cols)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "column(s) `email` declared by the contract are missing from raw.orders version 3"
        );
        let strict = contract(serde_json::json!({
            "columns": {"id": {"type": "int64"}},
            "extra_columns": "fail",
        }));
        let err = compile(
            &strict,
            &input(),
            "raw.orders version 1",
            &text_columns(&["id", "x"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`x`") && err.contains("extra_columns: fail"),
            "{err}"
        );
        for (rule, says) in [
            ("id > (select max(id) from raw.orders)", "subqueries"),
            ("id in (SELECT id FROM raw.orders)", "subqueries"),
            ("exists (select 1)", "subqueries"),
            ("id > 0 and (id < 5 or id > (select 1))", "subqueries"),
            ("id > 0; drop table x", "single SQL expression"),
        ] {
            let c = contract(serde_json::json!({
                "columns": {"id": {"type": "int64"}},
                "checks": [{"rule": rule}],
            }));
            let err = compile(&c, &input(), "raw.orders version 1", &text_columns(&["id"]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{rule}: {err}");
        }
        // Text that merely contains the word is no subquery.
        let harmless = contract(serde_json::json!({
            "columns": {"id": {"type": "int64"}, "status": {"type": "string"}},
            "checks": [{"rule": "status <> 'selected' or status like '%(select 1)%'"}],
        }));
        compile(
            &harmless,
            &input(),
            "raw.orders version 1",
            &text_columns(&["id", "status"]),
        )
        .unwrap();
        let absent = contract(serde_json::json!({
            "columns": {"id": {"type": "int64"}},
            "checks": [{"missing_percent": {"column": "email", "max": "5%"}}],
        }));
        let err = compile(
            &absent,
            &input(),
            "raw.orders version 1",
            &text_columns(&["id"]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing_percent: column `email`"), "{err}");
    }

    #[tokio::test]
    async fn the_compiled_query_flags_each_defect_on_rows_in_memory() {
        let schema = Arc::new(Schema::new(
            ["id", "amount", "status", "email"]
                .map(|n| Field::new(n, DataType::Utf8, true))
                .to_vec(),
        ));
        let column = |v: [Option<&str>; 5]| Arc::new(StringArray::from(v.to_vec())) as _;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column([Some("1"), Some("x"), Some("3"), Some("3"), None]),
                column([Some("5.00"), Some("1"), Some("-2"), Some("1"), Some("1")]),
                column([
                    Some("paid"),
                    Some("paid"),
                    Some("paid"),
                    Some("gone"),
                    Some("new"),
                ]),
                column([
                    Some("a@b.io"),
                    None,
                    Some("c@d.io"),
                    Some("nope"),
                    Some("e@f.io"),
                ]),
            ],
        )
        .unwrap();
        let session = session_over(schema, batch);
        let cols = text_columns(&["id", "amount", "status", "email"]);
        let c = compile(&orders(), &input(), "raw.orders version 1", &cols).unwrap();
        let batches = session.sql(&c.sql).await.unwrap().collect().await.unwrap();
        let mut reasons: Vec<Vec<String>> = Vec::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                reasons.push(
                    c.rules
                        .iter()
                        .zip(&c.flags)
                        .filter(|(_, f)| b.column_by_name(f).unwrap().as_boolean().value(row))
                        .map(|(r, _)| r.reason())
                        .collect(),
                );
            }
        }
        reasons.sort();
        assert_eq!(
            reasons,
            [
                vec![],
                vec![
                    "format:email".to_owned(),
                    "values:status".into(),
                    "primary_key:id".into(),
                ],
                vec![
                    "min:amount".into(),
                    "primary_key:id".into(),
                    "rule:paid_has_amount".into()
                ],
                vec!["required:id".into(), "primary_key:id".into()],
                vec!["type:id".into()],
            ]
        );
    }
    #[tokio::test]
    async fn length_bounds_count_characters_of_the_raw_value() {
        let schema = Arc::new(Schema::new(vec![Field::new("code", DataType::Utf8, true)]));
        let values = StringArray::from(vec![
            Some("a"),
            Some("abc"),
            Some("abcd"),
            None,
            Some("ééé"),
        ]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let session = session_over(schema, batch);
        let c = contract(serde_json::json!({
            "columns": {"code": {"type": "string", "length": {"min": 2, "max": 3}}},
        }));
        let compiled = compile(
            &c,
            &input(),
            "raw.orders version 1",
            &text_columns(&["code"]),
        )
        .unwrap();
        assert_eq!(compiled.rules[0].reason(), "length:code");
        let batches = session
            .sql(&compiled.sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut flagged = Vec::new();
        for b in &batches {
            let codes = datafusion::arrow::compute::cast(
                b.column_by_name("__raw_0").unwrap(),
                &DataType::Utf8,
            )
            .unwrap();
            let flags = b.column_by_name("__f0").unwrap().as_boolean().clone();
            for row in 0..b.num_rows() {
                if flags.value(row) {
                    flagged.push(codes.as_string::<i32>().value(row).to_owned());
                }
            }
        }
        flagged.sort();
        assert_eq!(
            flagged,
            ["a", "abcd"],
            "characters, not bytes; null is not too short"
        );
    }
    #[tokio::test]
    async fn dates_and_times_in_a_pattern_parse_or_fail_their_type() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Utf8, true),
            Field::new("at", DataType::Utf8, true),
        ]));
        let days = StringArray::from(vec![
            Some("31/01/2026"),
            Some("2026-01-31"),
            Some("31/02/2026"),
        ]);
        let ats = StringArray::from(vec![
            Some("31/01/2026 13:45"),
            Some("31/01/2026 25:00"),
            None,
        ]);
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(days), Arc::new(ats)]).unwrap();
        let session = session_over(schema, batch);
        let c = contract(serde_json::json!({
            "columns": {
                "day": {"type": "date", "format": {"date": "%d/%m/%Y"}},
                "at": {"type": "timestamp", "format": {"timestamp": "%d/%m/%Y %H:%M"}},
            },
        }));
        let compiled = compile(
            &c,
            &input(),
            "raw.orders version 1",
            &text_columns(&["day", "at"]),
        )
        .unwrap();
        let reasons: Vec<String> = compiled.rules.iter().map(RowRule::reason).collect();
        assert_eq!(
            reasons,
            ["type:at", "type:day"],
            "no regex rule beside the pattern"
        );
        let df = session.sql(&compiled.sql).await.unwrap();
        let batches = df.collect().await.unwrap();
        let b = &batches[0];
        let text = |name: &str| {
            let a =
                datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8)
                    .unwrap();
            (0..a.len())
                .map(|i| {
                    a.is_valid(i)
                        .then(|| a.as_string::<i32>().value(i).to_owned())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(text("day"), [Some("2026-01-31".to_owned()), None, None]);
        assert_eq!(
            text("at"),
            [Some("2026-01-31T13:45:00".to_owned()), None, None]
        );
        let flag = |f: &str| {
            b.column_by_name(f)
                .unwrap()
                .as_boolean()
                .iter()
                .collect::<Vec<_>>()
        };
        // type:at fails for the bad hour only (a missing value is no type error).
        assert_eq!(flag("__f0"), [Some(false), Some(true), Some(false)]);
        assert_eq!(flag("__f1"), [Some(false), Some(true), Some(true)]);
    }
}
