//! `weir_blank_null(text)`: the text with its blank values (empty, or only
//! spaces) made NULL, so a contract counts them as missing. The strings are
//! not copied: the answer shares the input's buffers and only its validity
//! changes, where `CASE WHEN TRIM(x) = '' …` built a trimmed copy of every
//! value first. The test stops at a value's first byte that is not a space.

use datafusion::arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::nullif;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The function's name in SQL.
pub const NAME: &str = "weir_blank_null";

/// The function, to register in a session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(BlankNull {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::LargeUtf8]),
                TypeSignature::Exact(vec![DataType::Utf8View]),
            ],
            Volatility::Immutable,
        ),
    })
}

/// Whether `s` is empty or only spaces (what `TRIM(s) = ''` tells).
fn blank(s: &str) -> bool {
    s.bytes().all(|b| b == b' ')
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BlankNull {
    signature: Signature,
}

impl ScalarUDFImpl for BlankNull {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] => Ok(t.clone()),
            _ => exec_err!("{NAME}: expects one text"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text] = args.args.as_slice() else {
            return exec_err!("{NAME}: expects one text");
        };
        match text {
            ColumnarValue::Scalar(s) => Ok(ColumnarValue::Scalar(match s {
                ScalarValue::Utf8(Some(v))
                | ScalarValue::LargeUtf8(Some(v))
                | ScalarValue::Utf8View(Some(v))
                    if blank(v) =>
                {
                    ScalarValue::try_from(s.data_type())?
                }
                other => other.clone(),
            })),
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(blank_null(a)?)),
        }
    }
}

/// `array` with its blank values NULL, sharing its buffers.
fn blank_null(array: &ArrayRef) -> Result<ArrayRef> {
    let blanks = match array.data_type() {
        DataType::Utf8View => blanks(array.as_string_view()),
        DataType::Utf8 => blanks(array.as_string::<i32>()),
        DataType::LargeUtf8 => blanks(array.as_string::<i64>()),
        other => return exec_err!("{NAME}: expects text, got {other}"),
    };
    if blanks.true_count() == 0 {
        return Ok(array.clone());
    }
    // Only the validity is rebuilt: the strings are neither copied nor re-checked.
    Ok(nullif(array, &blanks)?)
}

/// True where a value is blank (never where it is NULL).
fn blanks<'a>(values: impl ArrayAccessor<Item = &'a str>) -> BooleanArray {
    let bits = BooleanBuffer::collect_bool(values.len(), |i| {
        values.is_valid(i) && blank(values.value(i))
    });
    BooleanArray::new(bits, None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{LargeStringArray, StringArray, StringViewArray};

    use super::*;

    fn values(a: &ArrayRef) -> Vec<Option<String>> {
        let a = datafusion::arrow::compute::cast(a, &DataType::Utf8).unwrap();
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    #[test]
    fn blank_values_become_null_and_the_rest_stay_as_they_were() {
        let input = [
            Some("a"),
            Some(""),
            None,
            Some("   "),
            Some(" b "),
            Some("\t"),
        ];
        let expected: Vec<Option<String>> = [Some("a"), None, None, None, Some(" b "), Some("\t")]
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect();
        let arrays: [ArrayRef; 3] = [
            Arc::new(StringArray::from(input.to_vec())),
            Arc::new(LargeStringArray::from(input.to_vec())),
            Arc::new(StringViewArray::from(input.to_vec())),
        ];
        for a in arrays {
            let out = blank_null(&a).unwrap();
            assert_eq!(out.data_type(), a.data_type());
            assert_eq!(values(&out), expected, "{}", a.data_type());
        }
    }

    #[test]
    fn an_array_without_blanks_keeps_its_nulls() {
        let a: ArrayRef = Arc::new(StringViewArray::from(vec![Some("x"), None]));
        let out = blank_null(&a).unwrap();
        assert_eq!(out.null_count(), 1);
        assert_eq!(values(&out), [Some("x".to_owned()), None]);
    }

    #[tokio::test]
    async fn in_sql_it_matches_trim_on_every_value() {
        let session = crate::data::storage::session().unwrap();
        let out = session
            .sql(&format!(
                "SELECT {NAME}(v) IS NULL AS ours, (CASE WHEN TRIM(v) = '' THEN NULL ELSE v END) IS NULL AS theirs \
                 FROM (VALUES ('a'), (''), ('  '), (NULL), (' x'), ('\t')) AS t(v)"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let (ours, theirs) = (out[0].column(0).as_boolean(), out[0].column(1).as_boolean());
        assert_eq!(ours.len(), 6);
        assert_eq!(ours, theirs);
        let scalar = session
            .sql(&format!("SELECT {NAME}('  ') IS NULL, {NAME}('b')"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(scalar[0].column(0).as_boolean().value(0));
        assert_eq!(values(scalar[0].column(1)), [Some("b".to_owned())]);
    }
}
