//! Task outputs (§2): the small JSON value a try publishes for the tasks
//! after it, kept per try and served as Airflow's XCom entry `return_value`.

/// The largest output a try may publish, in bytes of JSON text.
pub const MAX_BYTES: usize = 64 * 1024;

/// The XCom key a task's output is served under.
pub const XCOM_KEY: &str = "return_value";

/// The outputs a try's templates read, by task id (`tasks.<id>.output`).
pub type TaskOutputs = std::collections::BTreeMap<String, serde_json::Value>;

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
