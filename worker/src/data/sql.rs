//! Writing SQL text safely: quoted identifiers and literals, and the SQL
//! names of contract types.

use weir_core::dag::contract::ColumnType;

/// `"name"`, with quotes inside doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with quotes inside doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A JSON value as a SQL literal (strings quoted, numbers and booleans as they are).
pub fn json_literal(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(literal(s)),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("`{other}` is not a number, text or boolean")),
    }
}

/// The DataFusion SQL type of a contract type.
pub fn type_name(t: ColumnType) -> String {
    match t {
        ColumnType::String => "VARCHAR".into(),
        ColumnType::Boolean => "BOOLEAN".into(),
        ColumnType::Int8 => "TINYINT".into(),
        ColumnType::Int16 => "SMALLINT".into(),
        ColumnType::Int32 => "INT".into(),
        ColumnType::Int64 => "BIGINT".into(),
        ColumnType::UInt8 => "TINYINT UNSIGNED".into(),
        ColumnType::UInt16 => "SMALLINT UNSIGNED".into(),
        ColumnType::UInt32 => "INT UNSIGNED".into(),
        ColumnType::UInt64 => "BIGINT UNSIGNED".into(),
        ColumnType::Float32 => "REAL".into(),
        ColumnType::Float64 => "DOUBLE".into(),
        ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        ColumnType::Date => "DATE".into(),
        ColumnType::Timestamp => "TIMESTAMP".into(),
    }
}

/// Whether `name` is a plain identifier (letters, digits, `_`; not starting with a digit).
pub fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(json_literal(&serde_json::json!(2.5)).unwrap(), "2.5");
        assert!(json_literal(&serde_json::json!([1])).is_err());
        assert!(is_plain("daily_revenue") && !is_plain("x; drop") && !is_plain("1a"));
    }
}
