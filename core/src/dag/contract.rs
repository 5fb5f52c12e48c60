//! Data contracts (§5): what each column must hold, the primary key, schema
//! drift policy and dataset-level checks.

use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::ids::DatasetName;
use super::text::text_value;

/// A contract for one data source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Who answers for the data (a team or a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the data is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels to find it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The columns the data must have, with their rules.
    pub columns: IndexMap<String, ColumnSpec>,
    /// Columns whose values together are unique and never null.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Several columns that together must exist in another dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<CompositeRef>,
    /// What to do with columns the contract does not declare.
    #[serde(default)]
    pub extra_columns: ExtraColumns,
    /// What to do with rows identical to another in every column.
    #[serde(default, skip_serializing_if = "is_default")]
    pub exact_repeats: ExactRepeats,
    /// Row-level rules and dataset-level checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// Rules for one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The type values are cast to; a value that does not cast quarantines its row.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// A missing (null or empty) value quarantines the row.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Smallest allowed value (numbers, dates, times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub min: Option<serde_json::Value>,
    /// Largest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub max: Option<serde_json::Value>,
    /// The only values allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub values: Option<Vec<serde_json::Value>>,
    /// Bounds on the number of characters of a value as it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<LengthBounds>,
    /// A format string values must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `zone.dataset.column` every value must exist in (referential integrity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ColumnRef>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who may see its values: `pii` values are masked for viewers and
    /// operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
}

/// How sensitive a column's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// Personal data: masked in the UI's quarantine view and in quality
    /// samples for roles below admin.
    Pii,
    /// Internal to the company.
    Confidential,
    /// Anyone may see it.
    Public,
}

crate::named_enum!(Classification, "classification", serde_derived, {
    Pii => "pii",
    Confidential => "confidential",
    Public => "public",
});

/// What people know about a dataset: who owns it, what it is, its tags and
/// its columns' descriptions and classifications. A contract gives it for
/// the datasets it checks; a task's `metadata:` for the dataset it writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetMeta {
    /// Who answers for the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the data is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels to find it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Columns, by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub columns: IndexMap<String, ColumnMeta>,
}

/// What people know about one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMeta {
    /// What the column holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How sensitive its values are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
}

impl DatasetMeta {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self == &DatasetMeta::default()
    }

    /// `other`'s values where it gives one, this one's elsewhere; tags of both.
    pub fn overlay(mut self, other: &DatasetMeta) -> DatasetMeta {
        if other.owner.is_some() {
            self.owner.clone_from(&other.owner);
        }
        if other.description.is_some() {
            self.description.clone_from(&other.description);
        }
        for t in &other.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        for (name, c) in &other.columns {
            let mine = self.columns.entry(name.clone()).or_default();
            if c.description.is_some() {
                mine.description.clone_from(&c.description);
            }
            if c.classification.is_some() {
                mine.classification = c.classification;
            }
        }
        self
    }

    /// The columns classified `pii`.
    pub fn pii_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|(_, c)| c.classification == Some(Classification::Pii))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// `references: [{columns, dataset, to}]`: the values of `columns`, taken
/// together, must exist as the values of `to` (default: the same names) in
/// `dataset` (composite referential integrity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeRef {
    /// This contract's columns.
    pub columns: Vec<String>,
    /// The referenced dataset.
    pub dataset: DatasetName,
    /// The referenced columns, in the same order (default: `columns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
}

impl CompositeRef {
    /// The referenced columns.
    pub fn targets(&self) -> &[String] {
        self.to.as_deref().unwrap_or(&self.columns)
    }
}

/// `length: {min, max}`: the fewest and most characters a value may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthBounds {
    /// The fewest characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// The most characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The logical types a contract column can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    String,
    /// true/false.
    Boolean,
    /// Signed integers.
    Int8,
    /// Signed integers.
    Int16,
    /// Signed integers.
    Int32,
    /// Signed integers.
    Int64,
    /// Unsigned integers.
    UInt8,
    /// Unsigned integers.
    UInt16,
    /// Unsigned integers.
    UInt32,
    /// Unsigned integers.
    UInt64,
    /// Floating point.
    Float32,
    /// Floating point.
    Float64,
    /// Exact decimal with precision and scale.
    Decimal {
        /// Total digits (1..=38).
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// A calendar date.
    Date,
    /// A point in time.
    Timestamp,
}

const TYPE_NAMES: [&str; 15] = [
    "string",
    "boolean",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "decimal(p,s)",
    "date",
    "timestamp",
];

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let simple = match t.as_str() {
            "string" | "text" | "utf8" => Some(ColumnType::String),
            "bool" | "boolean" => Some(ColumnType::Boolean),
            "int8" => Some(ColumnType::Int8),
            "int16" => Some(ColumnType::Int16),
            "int32" | "int" => Some(ColumnType::Int32),
            "int64" | "bigint" => Some(ColumnType::Int64),
            "uint8" => Some(ColumnType::UInt8),
            "uint16" => Some(ColumnType::UInt16),
            "uint32" => Some(ColumnType::UInt32),
            "uint64" => Some(ColumnType::UInt64),
            "float32" | "float" => Some(ColumnType::Float32),
            "float64" | "double" => Some(ColumnType::Float64),
            "date" => Some(ColumnType::Date),
            "timestamp" | "datetime" => Some(ColumnType::Timestamp),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok(t);
        }
        if let Some(args) = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
            let bad = || {
                format!(
                    "invalid decimal type `{s}`; expected decimal(precision,scale) with precision 1-38 and scale 0-precision"
                )
            };
            let (p, sc) = args.split_once(',').ok_or_else(bad)?;
            let precision: u8 = p.trim().parse().map_err(|_| bad())?;
            let scale: i8 = sc.trim().parse().map_err(|_| bad())?;
            if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
                return Err(bad());
            }
            return Ok(ColumnType::Decimal { precision, scale });
        }
        if t.starts_with("decimal(") && !t.contains(')') {
            return Err(format!(
                "incomplete decimal type `{s}`: inside `{{...}}` a comma ends the value, so quote it: \"decimal(12,2)\""
            ));
        }
        let hint = crate::suggest::closest(&t, TYPE_NAMES.iter().copied())
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        Err(format!(
            "unknown column type `{s}`{hint}; expected one of {}",
            TYPE_NAMES.join(", ")
        ))
    }
}

impl ColumnType {
    /// Whether a literal of the contract (a `min`, `max` or `values` entry)
    /// is a value of this type. A literal that is not would compare as NULL in
    /// the query and switch its check off, so the loader refuses it.
    pub fn check_literal(self, v: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return Err("`null` is not a value to compare with".into()),
            other => return Err(format!("`{other}` is not a number, text or boolean")),
        };
        let fits = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("`{text}` is not a value of type {self}"))
            }
        };
        match self {
            ColumnType::String => Ok(()),
            ColumnType::Boolean => fits(matches!(
                text.to_ascii_lowercase().as_str(),
                "true" | "false"
            )),
            ColumnType::Int8 => fits(text.parse::<i8>().is_ok()),
            ColumnType::Int16 => fits(text.parse::<i16>().is_ok()),
            ColumnType::Int32 => fits(text.parse::<i32>().is_ok()),
            ColumnType::Int64 => fits(text.parse::<i64>().is_ok()),
            ColumnType::UInt8 => fits(text.parse::<u8>().is_ok()),
            ColumnType::UInt16 => fits(text.parse::<u16>().is_ok()),
            ColumnType::UInt32 => fits(text.parse::<u32>().is_ok()),
            ColumnType::UInt64 => fits(text.parse::<u64>().is_ok()),
            ColumnType::Float32 => fits(text.parse::<f32>().is_ok_and(f32::is_finite)),
            ColumnType::Float64 => fits(text.parse::<f64>().is_ok_and(f64::is_finite)),
            ColumnType::Decimal { precision, scale } => {
                let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
                let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
                let numeric = !(whole.is_empty() && frac.is_empty())
                    && whole
                        .chars()
                        .chain(frac.chars())
                        .all(|c| c.is_ascii_digit());
                let whole_digits = whole.trim_start_matches('0').len();
                if numeric && frac.len() > scale as usize {
                    return Err(format!(
                        "`{text}` has more than {scale} digits after the point of {self}"
                    ));
                }
                fits(numeric && whole_digits <= (precision as usize - scale as usize))
            }
            ColumnType::Date => fits(chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").is_ok()),
            ColumnType::Timestamp => fits(
                chrono::DateTime::parse_from_rfc3339(&text).is_ok()
                    || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                        .iter()
                        .any(|f| chrono::NaiveDateTime::parse_from_str(&text, f).is_ok())
                    || chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").is_ok(),
            ),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ColumnType::String => "string",
            ColumnType::Boolean => "boolean",
            ColumnType::Int8 => "int8",
            ColumnType::Int16 => "int16",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::UInt8 => "uint8",
            ColumnType::UInt16 => "uint16",
            ColumnType::UInt32 => "uint32",
            ColumnType::UInt64 => "uint64",
            ColumnType::Float32 => "float32",
            ColumnType::Float64 => "float64",
            ColumnType::Decimal { precision, scale } => {
                return write!(f, "decimal({precision},{scale})");
            }
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        };
        f.write_str(s)
    }
}

text_value!(
    ColumnType,
    "a column type: string, boolean, int8..int64, uint8..uint64, float32, float64, decimal(p,s), date, timestamp"
);

/// A reference to a column of another dataset: `zone.dataset.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The referenced dataset.
    pub dataset: DatasetName,
    /// The referenced column.
    pub column: String,
}

impl FromStr for ColumnRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ds, col) = s.rsplit_once('.').ok_or_else(|| {
            format!(
                "reference `{s}` must be `zone.dataset.column`, like clean.customers.customer_id"
            )
        })?;
        let dataset: DatasetName = ds.parse().map_err(|e| format!("reference `{s}`: {e}"))?;
        if col.is_empty() {
            return Err(format!("reference `{s}` names no column"));
        }
        Ok(ColumnRef {
            dataset,
            column: col.to_owned(),
        })
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.dataset, self.column)
    }
}

text_value!(
    ColumnRef,
    "a column of another dataset: zone.dataset.column"
);

/// A format values must match: `email`, `uuid`, `date`, `url`, or
/// `{regex: "…"}` (the whole value must match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields, try_from = "FormatText")]
pub enum Format {
    /// An e-mail address.
    Email,
    /// A UUID.
    Uuid,
    /// A date YYYY-MM-DD.
    Date,
    /// An http(s) URL.
    Url,
    /// A regular expression the whole value must match.
    Regex(String),
    /// A `date` column's values as written, in strftime notation
    /// (`{date: "%d/%m/%Y"}`); a value that does not parse fails its type.
    #[serde(rename = "date_pattern")]
    DatePattern(String),
    /// A `timestamp` column's values as written (`{timestamp: "%d/%m/%Y %H:%M"}`).
    #[serde(rename = "timestamp_pattern")]
    TimestampPattern(String),
}

/// How a format is written in YAML: a name, or a map with `regex`, `date`
/// or `timestamp`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FormatText {
    Name(String),
    Regex {
        regex: String,
    },
    Date {
        #[serde(alias = "date_pattern")]
        date: String,
    },
    Timestamp {
        #[serde(alias = "timestamp_pattern")]
        timestamp: String,
    },
}

/// Whether `pattern` is a strftime pattern chrono understands.
fn check_pattern(pattern: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        Err(format!(
            "`{pattern}` is not a strftime pattern (like \"%d/%m/%Y\")"
        ))
    } else {
        Ok(())
    }
}

impl JsonSchema for FormatText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Format".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "email, uuid, date, url, {regex: \"…\"} (the whole value must match), or {date: \"%d/%m/%Y\"} / {timestamp: \"%d/%m/%Y %H:%M\"} for dates and times not written in ISO",
            "oneOf": [
                {"type": "string", "enum": ["email", "uuid", "date", "url"]},
                {"type": "object", "properties": {"regex": {"type": "string"}}, "required": ["regex"], "additionalProperties": false},
                {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"], "additionalProperties": false},
                {"type": "object", "properties": {"timestamp": {"type": "string"}}, "required": ["timestamp"], "additionalProperties": false}
            ]
        })
    }
}

impl TryFrom<FormatText> for Format {
    type Error = String;
    fn try_from(f: FormatText) -> Result<Self, String> {
        match f {
            FormatText::Regex { regex } => regex::Regex::new(&regex)
                .map(|_| Format::Regex(regex))
                .map_err(|e| format!("invalid regex: {e}")),
            FormatText::Date { date } => check_pattern(&date).map(|()| Format::DatePattern(date)),
            FormatText::Timestamp { timestamp } => {
                check_pattern(&timestamp).map(|()| Format::TimestampPattern(timestamp))
            }
            FormatText::Name(n) => match n.as_str() {
                "email" => Ok(Format::Email),
                "uuid" => Ok(Format::Uuid),
                "date" => Ok(Format::Date),
                "url" => Ok(Format::Url),
                other => Err(format!(
                    "unknown format `{other}`; expected email, uuid, date, url, {{regex: \"…\"}}, {{date: \"%d/%m/%Y\"}} or {{timestamp: \"…\"}}"
                )),
            },
        }
    }
}

/// What a validate task does with rows identical, column for column, to
/// another row of the same input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExactRepeats {
    /// Keep them all (the primary key, if any, quarantines rows sharing a key).
    #[default]
    Keep,
    /// Keep the first in source order; quarantine the others as `repeat`.
    KeepFirst,
    /// Keep the last in source order; quarantine the others as `repeat`.
    KeepLast,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a validate task does with columns the contract does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExtraColumns {
    /// Pass them through to the clean output.
    #[default]
    Keep,
    /// Remove them from the clean output.
    Drop,
    /// Fail the task (schema drift is an error).
    Fail,
}

/// How much a failing dataset-level check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the task; the clean version is not published.
    #[default]
    Error,
    /// Recorded; the task succeeds.
    Warn,
}

crate::named_enum!(Severity, "severity", serde_derived, {
    Error => "error",
    Warn => "warn",
});

/// What a recorded check result checked: a row-level rule of a column, the
/// key or a `rule:` (failing rows are quarantined), or a dataset-level check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResultKind {
    /// A value that does not cast to its column's `type`.
    Type,
    /// A missing `required` value.
    Required,
    /// A value below `min`.
    Min,
    /// A value above `max`.
    Max,
    /// A value not among `values`.
    Values,
    /// A value shorter or longer than its `length` allows.
    Length,
    /// A value not in its `format`.
    Format,
    /// A value absent from the referenced dataset.
    References,
    /// A missing or shared primary key.
    PrimaryKey,
    /// A `rule:` that is false.
    Rule,
    /// A row identical to one kept (`exact_repeats`).
    Repeat,
    /// A line of the source that could not be read as a row (CSV with the
    /// wrong number of fields, bytes that are not UTF-8).
    Corrupt,
    /// `row_count:`
    RowCount,
    /// `missing_percent:`
    MissingPercent,
    /// `freshness:`
    Freshness,
    /// `duplicates:`
    Duplicates,
    /// `row_count_change:`
    RowCountChange,
    /// `schema_change:`
    SchemaChange,
    /// `sql:`, a query for failing rows.
    Sql,
    /// The task's `max_quarantined`.
    MaxQuarantined,
}

crate::named_enum!(CheckResultKind, "check kind", {
    Type => "type",
    Required => "required",
    Min => "min",
    Max => "max",
    Values => "values",
    Length => "length",
    Format => "format",
    References => "references",
    PrimaryKey => "primary_key",
    Rule => "rule",
    Corrupt => "corrupt",
    Repeat => "repeat",
    RowCount => "row_count",
    MissingPercent => "missing_percent",
    Freshness => "freshness",
    Duplicates => "duplicates",
    RowCountChange => "row_count_change",
    SchemaChange => "schema_change",
    Sql => "sql",
    MaxQuarantined => "max_quarantined",
});

impl CheckResultKind {
    /// Whether a failure quarantines rows (rather than judging the dataset).
    pub fn is_row_level(self) -> bool {
        matches!(
            self,
            CheckResultKind::Type
                | CheckResultKind::Required
                | CheckResultKind::Min
                | CheckResultKind::Max
                | CheckResultKind::Values
                | CheckResultKind::Length
                | CheckResultKind::Format
                | CheckResultKind::References
                | CheckResultKind::PrimaryKey
                | CheckResultKind::Rule
                | CheckResultKind::Corrupt
                | CheckResultKind::Repeat
        )
    }
}

/// A count (`10`) or a percentage of the rows (`5%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// An absolute number of rows.
    Count(u64),
    /// A percentage (0-100) of the rows.
    Percent(f64),
}

impl Threshold {
    /// Whether `n` out of `total` rows exceeds the threshold.
    pub fn exceeded_by(self, n: u64, total: u64) -> bool {
        match self {
            Threshold::Count(max) => n > max,
            Threshold::Percent(p) => total > 0 && (n as f64) * 100.0 > p * total as f64,
        }
    }
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(Threshold::Percent(v)),
                _ => Err(format!(
                    "invalid percentage `{s}`; expected a number from 0% to 100%"
                )),
            };
        }
        t.parse::<u64>().map(Threshold::Count).map_err(|_| {
            format!("invalid threshold `{s}`; expected a row count like 10 or a percentage like 5%")
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Count(n) => write!(f, "{n}"),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Count(n) => s.serialize_u64(*n),
            Threshold::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Threshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row count like 10 or a percentage like 5%")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
                Ok(Threshold::Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
                u64::try_from(v).map(Threshold::Count).map_err(|_| {
                    E::custom(format!("invalid threshold {v}; it must not be negative"))
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Threshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a row count like 10 or a percentage like 5%",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$"}
            ]
        })
    }
}

/// One entry of `checks:`: one check, with an optional name and severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CheckEntry", into = "CheckEntry")]
pub struct Check {
    /// A name for the check in results (defaults to the check kind).
    pub name: Option<String>,
    /// `error` fails the task, `warn` only records (dataset-level checks).
    pub severity: Option<Severity>,
    /// A rule's tolerance: failing rows are quarantined either way; up to
    /// this many (or this share) the check is a warning, beyond it an error
    /// that holds the version back.
    pub max_failed: Option<Threshold>,
    /// What is checked.
    pub kind: CheckKind,
}

/// What one entry of `checks:` checks.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A SQL predicate every row must satisfy; false quarantines the row.
    Rule(String),
    /// Bounds on the number of rows.
    RowCount(RowCountCheck),
    /// The largest share of missing values in a column.
    MissingPercent(MissingPercentCheck),
    /// The newest value of a time column must be recent.
    Freshness(FreshnessCheck),
    /// The largest number of rows sharing the same values in some columns.
    Duplicates(DuplicatesCheck),
    /// The largest change of the row count against recent runs.
    RowCountChange(RowCountChangeCheck),
    /// The columns against the previous version of the same dataset.
    SchemaChange(SchemaChangeCheck),
    /// A query over the rows about to be published (`checked`) that returns
    /// the failing rows; more than `max_failed` (default none) fail the check.
    Sql(String),
}

impl CheckKind {
    /// The result kind (and YAML key) of this check.
    pub fn result_kind(&self) -> CheckResultKind {
        match self {
            CheckKind::Rule(_) => CheckResultKind::Rule,
            CheckKind::RowCount(_) => CheckResultKind::RowCount,
            CheckKind::MissingPercent(_) => CheckResultKind::MissingPercent,
            CheckKind::Freshness(_) => CheckResultKind::Freshness,
            CheckKind::Duplicates(_) => CheckResultKind::Duplicates,
            CheckKind::RowCountChange(_) => CheckResultKind::RowCountChange,
            CheckKind::SchemaChange(_) => CheckResultKind::SchemaChange,
            CheckKind::Sql(_) => CheckResultKind::Sql,
        }
    }
}

// How a check is written in YAML: the check keys side by side, of which
// exactly one must be given (serde cannot flatten an enum under
// `deny_unknown_fields`, so the entry is read as this and then checked).
// Its doc comment is the JSON Schema's description.
/// One entry of `checks:`: exactly one of the check keys, plus `name` and `severity`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Check")]
struct CheckEntry {
    /// A name for the check in results (defaults to the check kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `error` fails the task, `warn` only records (dataset-level checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    /// A rule's tolerance (`0.5%` or a count): failing rows are quarantined
    /// either way; beyond it the check fails and holds the version back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_failed: Option<Threshold>,
    /// A SQL predicate every row must satisfy; false quarantines the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// Bounds on the number of rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row_count: Option<RowCountCheck>,
    /// The largest share of missing values in a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missing_percent: Option<MissingPercentCheck>,
    /// The newest value of a time column must be recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    freshness: Option<FreshnessCheck>,
    /// The largest number of rows sharing the same values in some columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicates: Option<DuplicatesCheck>,
    /// The largest change of the row count against recent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row_count_change: Option<RowCountChangeCheck>,
    /// Columns added, removed or retyped since the previous version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_change: Option<SchemaChangeCheck>,
    /// A query over `checked` (the rows about to be published) returning
    /// the rows that fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
}

impl TryFrom<CheckEntry> for Check {
    type Error = String;

    fn try_from(e: CheckEntry) -> Result<Check, String> {
        let mut kinds: Vec<CheckKind> = Vec::new();
        kinds.extend(e.rule.map(CheckKind::Rule));
        kinds.extend(e.row_count.map(CheckKind::RowCount));
        kinds.extend(e.missing_percent.map(CheckKind::MissingPercent));
        kinds.extend(e.freshness.map(CheckKind::Freshness));
        kinds.extend(e.duplicates.map(CheckKind::Duplicates));
        kinds.extend(e.row_count_change.map(CheckKind::RowCountChange));
        kinds.extend(e.schema_change.map(CheckKind::SchemaChange));
        kinds.extend(e.sql.map(CheckKind::Sql));
        match kinds.len() {
            0 => Err("a check needs one of rule, row_count, missing_percent, freshness, duplicates, row_count_change, schema_change, sql".into()),
            1 => Ok(Check {
                name: e.name,
                severity: e.severity,
                max_failed: e.max_failed,
                kind: kinds.remove(0),
            }),
            _ => Err(format!(
                "a check declares {} at once; write one check per entry",
                kinds
                    .iter()
                    .map(|k| format!("`{}`", k.result_kind()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }
}

impl From<Check> for CheckEntry {
    fn from(c: Check) -> CheckEntry {
        let mut e = CheckEntry {
            name: c.name,
            severity: c.severity,
            max_failed: c.max_failed,
            ..CheckEntry::default()
        };
        match c.kind {
            CheckKind::Rule(r) => e.rule = Some(r),
            CheckKind::RowCount(r) => e.row_count = Some(r),
            CheckKind::MissingPercent(m) => e.missing_percent = Some(m),
            CheckKind::Freshness(f) => e.freshness = Some(f),
            CheckKind::Duplicates(d) => e.duplicates = Some(d),
            CheckKind::RowCountChange(r) => e.row_count_change = Some(r),
            CheckKind::SchemaChange(s) => e.schema_change = Some(s),
            CheckKind::Sql(q) => e.sql = Some(q),
        }
        e
    }
}

impl JsonSchema for Check {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        CheckEntry::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        CheckEntry::json_schema(generator)
    }
}

/// `row_count: {min, max}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountCheck {
    /// At least this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// At most this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// Overrides the entry's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `missing_percent: {column, max}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingPercentCheck {
    /// The column to look at.
    pub column: String,
    /// The largest share of missing values.
    pub max: Threshold,
    /// Overrides the entry's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `freshness: {column, max_age}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreshnessCheck {
    /// A date or timestamp column.
    pub column: String,
    /// The newest value must be at most this old.
    pub max_age: Duration,
    /// Overrides the entry's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `duplicates: {columns, max}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesCheck {
    /// The columns whose values together should be unique.
    pub columns: Vec<String>,
    /// How many duplicate rows are tolerated.
    #[serde(default)]
    pub max: u64,
    /// Overrides the entry's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `row_count_change: {max, over_last}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountChangeCheck {
    /// The largest change against the average of recent versions.
    pub max: Threshold,
    /// How many recent versions to compare with.
    #[serde(default = "default_over_last")]
    pub over_last: u32,
    /// Overrides the entry's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `schema_change: {added, removed, retyped}`: what each kind of change
/// against the previous version of the dataset counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaChangeCheck {
    /// New columns (default `warn`).
    #[serde(default = "warn")]
    pub added: ChangeSeverity,
    /// Columns gone (default `error`).
    #[serde(default = "error")]
    pub removed: ChangeSeverity,
    /// Columns whose type changed (default `error`).
    #[serde(default = "error")]
    pub retyped: ChangeSeverity,
}

/// How a schema change is judged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSeverity {
    /// Not reported.
    Ignore,
    /// Recorded; the task succeeds.
    Warn,
    /// Fails the task; the version is not published.
    Error,
}

fn warn() -> ChangeSeverity {
    ChangeSeverity::Warn
}

fn error() -> ChangeSeverity {
    ChangeSeverity::Error
}

fn default_over_last() -> u32 {
    7
}

impl Contract {
    /// What the contract says about the data for people: owner,
    /// description, tags and its columns' descriptions and classifications.
    pub fn metadata(&self) -> DatasetMeta {
        DatasetMeta {
            owner: self.owner.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            columns: self
                .columns
                .iter()
                .filter(|(_, c)| c.description.is_some() || c.classification.is_some())
                .map(|(n, c)| {
                    (
                        n.clone(),
                        ColumnMeta {
                            description: c.description.clone(),
                            classification: c.classification,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Every dataset the contract looks values up in.
    pub fn referenced_datasets(&self) -> Vec<&DatasetName> {
        self.columns
            .values()
            .filter_map(|c| c.references.as_ref().map(|r| &r.dataset))
            .chain(self.references.iter().map(|r| &r.dataset))
            .collect()
    }

    /// Problems that make the contract unusable, each with the path (below the
    /// contract) it concerns.
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let declared = |c: &str| self.columns.contains_key(c);
        for (i, r) in self.references.iter().enumerate() {
            let at = |key: &str| vec!["references".to_owned(), i.to_string(), key.to_owned()];
            if r.columns.is_empty() {
                out.push((
                    at("columns"),
                    "a reference needs at least one column".into(),
                ));
            }
            for col in &r.columns {
                if !declared(col) {
                    out.push((
                        at("columns"),
                        format!("reference column `{col}` is not declared under `columns`"),
                    ));
                }
            }
            if r.targets().len() != r.columns.len() {
                out.push((
                    at("to"),
                    format!(
                        "`to` names {} column(s) for {} in `columns`",
                        r.targets().len(),
                        r.columns.len()
                    ),
                ));
            }
        }
        for (i, col) in self.primary_key.iter().enumerate() {
            if !declared(col) {
                out.push((
                    vec!["primary_key".into(), i.to_string()],
                    format!("primary key column `{col}` is not declared under `columns`"),
                ));
            }
        }
        for (i, check) in self.checks.iter().enumerate() {
            if check.severity.is_some() && matches!(check.kind, CheckKind::SchemaChange(_)) {
                out.push((
                    vec!["checks".into(), i.to_string(), "severity".into()],
                    "`schema_change` is judged per change: set `added`, `removed` or `retyped` to ignore, warn or error".into(),
                ));
            }
            if check.max_failed.is_some()
                && !matches!(check.kind, CheckKind::Rule(_) | CheckKind::Sql(_))
            {
                out.push((
                    vec!["checks".into(), i.to_string(), "max_failed".into()],
                    "`max_failed` is the tolerance of a `rule` or an `sql` check; other checks have their own limits".into(),
                ));
            }
            if matches!(check.kind, CheckKind::Rule(_)) && check.severity == Some(Severity::Warn) {
                out.push((
                    vec!["checks".into(), i.to_string(), "severity".into()],
                    "`severity: warn` does nothing on a `rule`: a row that fails a rule is always quarantined; \
                     give the rule a tolerance with `max_failed` (e.g. `max_failed: 1%`) to fail only beyond it"
                        .into(),
                ));
            }
            let mut need = |kind: &str, col: &str| {
                if !declared(col) {
                    out.push((
                        vec!["checks".into(), i.to_string(), kind.into()],
                        format!("{kind} check names column `{col}`, which is not declared under `columns`"),
                    ));
                }
            };
            match &check.kind {
                CheckKind::MissingPercent(c) => need("missing_percent", &c.column),
                CheckKind::Freshness(c) => {
                    need("freshness", &c.column);
                    let kind = self.columns.get(&c.column).map(|col| col.column_type);
                    if let Some(t) =
                        kind.filter(|t| !matches!(t, ColumnType::Date | ColumnType::Timestamp))
                    {
                        out.push((
                            vec!["checks".into(), i.to_string(), "freshness".into()],
                            format!(
                                "freshness needs a date or timestamp column; `{}` is {t}",
                                c.column
                            ),
                        ));
                    }
                }
                CheckKind::Duplicates(c) => {
                    for col in &c.columns {
                        need("duplicates", col);
                    }
                }
                CheckKind::Rule(_)
                | CheckKind::RowCount(_)
                | CheckKind::RowCountChange(_)
                | CheckKind::SchemaChange(_)
                | CheckKind::Sql(_) => {}
            }
        }
        for (name, col) in &self.columns {
            if let Some(LengthBounds { min, max }) = col.length {
                let problem = match (min, max) {
                    (None, None) => Some("`length` needs `min`, `max` or both".to_owned()),
                    (Some(lo), Some(hi)) if lo > hi => {
                        Some(format!("`length` min {lo} is above its max {hi}"))
                    }
                    _ => None,
                };
                if let Some(p) = problem {
                    out.push((
                        vec!["columns".into(), name.clone(), "length".into()],
                        format!("column `{name}`: {p}"),
                    ));
                }
            }
            let wrong_type = match &col.format {
                Some(Format::DatePattern(_)) if col.column_type != ColumnType::Date => Some("date"),
                Some(Format::TimestampPattern(_)) if col.column_type != ColumnType::Timestamp => {
                    Some("timestamp")
                }
                _ => None,
            };
            if let Some(t) = wrong_type {
                out.push((
                    vec!["columns".into(), name.clone(), "format".into()],
                    format!(
                        "column `{name}`: a {{{t}: …}} format needs `type: {t}`, not {}",
                        col.column_type
                    ),
                ));
            }
            let bounds = [("min", &col.min), ("max", &col.max)];
            for (key, bound) in bounds {
                if let Some(Err(e)) = bound.as_ref().map(|v| col.column_type.check_literal(v)) {
                    out.push((
                        vec!["columns".into(), name.clone(), key.into()],
                        format!("column `{name}` {key}: {e}"),
                    ));
                }
            }
            for (i, v) in col.values.iter().flatten().enumerate() {
                if let Err(e) = col.column_type.check_literal(v) {
                    out.push((
                        vec![
                            "columns".into(),
                            name.clone(),
                            "values".into(),
                            i.to_string(),
                        ],
                        format!("column `{name}` values: {e}"),
                    ));
                }
            }
        }
        for (name, col) in &self.columns {
            if let Some(Format::Regex(re)) = &col.format
                && let Err(e) = regex::Regex::new(re)
            {
                out.push((
                    vec!["columns".into(), name.clone(), "format".into()],
                    format!("column `{name}`: invalid regex: {e}"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepts(t: &str, v: serde_json::Value) -> bool {
        let t: ColumnType = t.parse().unwrap_or_else(|e| panic!("{e}"));
        t.check_literal(&v).is_ok()
    }

    #[test]
    fn literals_that_do_not_cast_to_the_column_type_are_refused() {
        let cases = [
            ("int32", json!(5), true),
            ("int32", json!("5"), true),
            ("int32", json!("paid"), false),
            ("int32", json!(1.5), false),
            ("int8", json!(300), false),
            ("uint16", json!(-1), false),
            ("float32", json!(1e39), false),
            ("float64", json!("2.5"), true),
            ("decimal(5,2)", json!(123.45), true),
            ("decimal(5,2)", json!(1234.5), false),
            ("decimal(5,2)", json!("1.234"), false),
            ("decimal(5,2)", json!("ten"), false),
            ("boolean", json!(true), true),
            ("boolean", json!("yes"), false),
            ("date", json!("2026-02-28"), true),
            ("date", json!("2026-02-30"), false),
            ("timestamp", json!("2026-02-28T10:00:00Z"), true),
            ("timestamp", json!("2026-02-28 10:00:00"), true),
            ("timestamp", json!("yesterday"), false),
            ("string", json!(5), true),
            ("string", json!(null), false),
            ("int64", json!([1]), false),
        ];
        for (t, v, ok) in cases {
            assert_eq!(accepts(t, v.clone()), ok, "{t} {v}");
        }
    }
    #[test]
    fn formats_survive_the_stored_definition() {
        // A version stores its contract as JSON and reads it back.
        for f in [
            json!("email"),
            json!({"regex": "[A-Z]{3}"}),
            json!({"date": "%d/%m/%Y"}),
            json!({"timestamp": "%d/%m/%Y %H:%M"}),
        ] {
            let format: Format =
                serde_json::from_value(f.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
            let stored = serde_json::to_value(&format).unwrap_or_else(|e| panic!("{e}"));
            let back: Format =
                serde_json::from_value(stored).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(back, format);
        }
    }
}
