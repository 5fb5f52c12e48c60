//! Task outputs (§2): the small JSON value a try publishes for the tasks
//! after it, kept per try and served as Airflow's XCom entry `return_value`.

/// The largest output a try may publish, in bytes of JSON text.
pub const MAX_BYTES: usize = 64 * 1024;

/// The XCom key a task's output is served under.
pub const XCOM_KEY: &str = "return_value";

/// The outputs a try's templates read, by task id (`tasks.<id>.output`).
pub type TaskOutputs = std::collections::BTreeMap<String, serde_json::Value>;

/// The outputs templates see from the store's `(task id, map index, JSON
/// text)` rows (by task, then map index): a task's own output, or for a
/// mapped task the list of its instances' outputs in item order (`null`
/// where one published nothing).
pub fn gather(rows: Vec<(String, i64, Option<String>)>) -> TaskOutputs {
    let mut out = TaskOutputs::new();
    for (task, map_index, text) in rows {
        let value = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        if map_index < 0 {
            out.insert(task, value);
            continue;
        }
        let entry = out
            .entry(task)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = entry {
            list.push(value);
        }
    }
    out
}

/// Why an output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// More than [`MAX_BYTES`].
    #[error(
        "the output is {0} bytes; outputs are limited to {MAX_BYTES} bytes (write larger data to a dataset or a file and publish its name or path)"
    )]
    TooLarge(usize),
    /// Not a JSON document.
    #[error("the output is not JSON: {0}")]
    NotJson(String),
}

/// Checks an output's JSON text and gives it back in compact form.
pub fn check(text: &str) -> Result<String, OutputError> {
    // Text past the limit is not parsed at all.
    if text.len() > MAX_BYTES {
        return Err(OutputError::TooLarge(text.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| OutputError::NotJson(e.to_string()))?;
    encode(&value)
}

/// The JSON text of a value a try publishes, checked against the limit.
pub fn encode(value: &serde_json::Value) -> Result<String, OutputError> {
    let text = value.to_string();
    if text.len() > MAX_BYTES {
        return Err(OutputError::TooLarge(text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mapped_outputs_gather_into_a_list_in_item_order() {
        let rows = vec![
            ("a".to_owned(), -1, Some("{\"rows\": 3}".to_owned())),
            ("m".to_owned(), 0, Some("\"x\"".to_owned())),
            ("m".to_owned(), 1, None),
            ("m".to_owned(), 2, Some("2".to_owned())),
        ];
        let got = gather(rows);
        assert_eq!(got["a"], serde_json::json!({"rows": 3}));
        assert_eq!(got["m"], serde_json::json!(["x", null, 2]));
    }

    use super::*;

    #[test]
    fn outputs_are_json_within_the_limit() {
        assert_eq!(check(" {\"rows\": 3} \n").as_deref(), Ok("{\"rows\":3}"));
        assert_eq!(check("\"text\"").as_deref(), Ok("\"text\""));
        assert!(matches!(check("rows=3"), Err(OutputError::NotJson(_))));
        assert!(matches!(check(""), Err(OutputError::NotJson(_))));
        let big = format!("\"{}\"", "x".repeat(MAX_BYTES));
        let e = check(&big).unwrap_err();
        assert!(matches!(e, OutputError::TooLarge(n) if n == MAX_BYTES + 2));
        assert!(e.to_string().contains("limited to 65536 bytes"), "{e}");
        assert!(encode(&serde_json::json!("x".repeat(MAX_BYTES))).is_err());
        assert_eq!(encode(&serde_json::json!([1, 2])).as_deref(), Ok("[1,2]"));
    }
}
