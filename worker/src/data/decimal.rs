//! `weir_decimal(text, precision, scale)`: text to `Decimal128(precision,
//! scale)` exactly as `TRY_CAST(text AS DECIMAL(precision, scale))` answers
//! it (NULL when it is not a number or does not fit), but plain numbers
//! (`-12.5`, at most `scale` digits after the point) go through Arrow's
//! allocation-free decimal parser; the cast formats two strings per value.
//! Other forms (exponents, rounding, stray text) take the cast's own path.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::cast::parse_string_to_decimal_native;
use datafusion::arrow::compute::kernels::cast_utils::parse_decimal;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, DecimalType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

/// The function's name in SQL.
pub const NAME: &str = "weir_decimal";

/// The function, to register in a session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ParseDecimal {
        signature: Signature::one_of(vec![TypeSignature::Any(3)], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseDecimal {
    signature: Signature,
}

/// A literal argument as a small integer.
fn literal(value: Option<&ScalarValue>, what: &str) -> Result<i64> {
    match value.map(|v| v.cast_to(&DataType::Int64)) {
        Some(Ok(ScalarValue::Int64(Some(n)))) => Ok(n),
        _ => exec_err!("{NAME}: the {what} must be a literal number"),
    }
}

/// The precision and scale a call names.
fn precision_and_scale(values: &[Option<&ScalarValue>]) -> Result<(u8, i8)> {
    let [_, p, s] = values else {
        return exec_err!("{NAME}: expects a text, a precision and a scale");
    };
    let (p, s) = (literal(*p, "precision")?, literal(*s, "scale")?);
    match (u8::try_from(p), i8::try_from(s)) {
        (Ok(p), Ok(s)) if (1..=38).contains(&p) && (0..=p as i8).contains(&s) => Ok((p, s)),
        _ => exec_err!("{NAME}: no decimal type has precision {p} and scale {s}"),
    }
}

impl ScalarUDFImpl for ParseDecimal {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        exec_err!("{NAME}: the type depends on the precision and scale given")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let (p, s) = precision_and_scale(args.scalar_arguments)?;
        Ok(Arc::new(Field::new(NAME, DataType::Decimal128(p, s), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (p, s) = match args.return_field.data_type() {
            DataType::Decimal128(p, s) => (*p, *s),
            other => return exec_err!("{NAME}: unexpected result type {other}"),
        };
        let Some(text) = args.args.first() else {
            return exec_err!("{NAME}: expects a text, a precision and a scale");
        };
        let scalar = matches!(text, ColumnarValue::Scalar(_));
        // A literal is parsed once, as a one-value array.
        let array = text.to_array(if scalar { 1 } else { args.number_rows })?;
        let parsed = match array.data_type() {
            DataType::Utf8View => parse_all(array.as_string_view(), p, s),
            DataType::Utf8 => parse_all(array.as_string::<i32>(), p, s),
            DataType::LargeUtf8 => parse_all(array.as_string::<i64>(), p, s),
            _ => {
                // Not text: read as its text, as a cast from it would.
                let text = cast(&array, &DataType::Utf8)?;
                parse_all(text.as_string::<i32>(), p, s)
            }
        }
        .with_precision_and_scale(p, s)?;
        let out: ArrayRef = Arc::new(parsed);
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn parse_all<'a>(values: impl ArrayAccessor<Item = &'a str>, p: u8, s: i8) -> Decimal128Array {
    (0..values.len())
        .map(|i| {
            values
                .is_valid(i)
                .then(|| parse(values.value(i), p, s))
                .flatten()
        })
        .collect()
}

/// One value, as `TRY_CAST` reads it.
fn parse(value: &str, p: u8, s: i8) -> Option<i128> {
    let t = value.trim();
    let fast = plain(t, s)
        .then(|| parse_decimal::<Decimal128Type>(t, p, s).ok())
        .flatten();
    fast.or_else(|| parse_string_to_decimal_native::<Decimal128Type>(value, s as usize).ok())
        .filter(|v| Decimal128Type::is_valid_decimal_precision(*v, p))
}

/// `[+-]digits[.digits]` with a digit somewhere and at most `scale` after
/// the point: read the same by both parsers, with no rounding.
fn plain(t: &str, scale: i8) -> bool {
    let b = t.as_bytes();
    let body = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    (!int.is_empty() || !frac.is_empty())
        && int.iter().chain(frac).all(u8::is_ascii_digit)
        && frac.len() <= usize::try_from(scale).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;

    use super::*;

    /// Each value through `weir_decimal` and through `TRY_CAST`, as text.
    async fn both(values: &[&str], p: u8, s: i8) -> Vec<(String, String, String)> {
        let session = crate::data::storage::session().unwrap();
        let rows: Vec<String> = values
            .iter()
            .map(|v| format!("('{}')", v.replace('\'', "''")))
            .collect();
        let out = session
            .sql(&format!(
                "SELECT v, CAST({NAME}(v, {p}, {s}) AS VARCHAR) AS ours, \
                 CAST(TRY_CAST(v AS DECIMAL({p},{s})) AS VARCHAR) AS theirs \
                 FROM (VALUES {}) AS t(v)",
                rows.join(", ")
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = |a: &ArrayRef, i: usize| {
            let a = cast(a, &DataType::Utf8).unwrap();
            let a = a.as_string::<i32>();
            if a.is_null(i) {
                "NULL".to_owned()
            } else {
                a.value(i).to_owned()
            }
        };
        out.iter()
            .flat_map(|b| {
                (0..b.num_rows())
                    .map(|i| {
                        (
                            text(b.column(0), i),
                            text(b.column(1), i),
                            text(b.column(2), i),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn every_value_reads_as_the_cast_reads_it() {
        let mut values: Vec<String> = [
            "0",
            "12",
            "-12",
            "+12",
            "12.5",
            "12.50",
            "-0.05",
            ".5",
            "5.",
            "-.5",
            "0012.30",
            " 7.25 ",
            "12.345",
            "12.355",
            "-12.355",
            "1e3",
            "1.5E-1",
            "9999999999.99",
            "10000000000",
            "99999999999.99",
            "-",
            "+",
            ".",
            "+.",
            "",
            "   ",
            "abc",
            "12a",
            "1.2.3",
            "1 2",
            "--1",
            "1-",
            "٣",
            "0.000",
            "00000000000000000001",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // And a spread of generated ones.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let whole = x % 100_000_000_000;
            let digits = (x >> 40) % 5;
            let frac = (x >> 20) % 10u64.pow(digits as u32);
            let sign = if x.is_multiple_of(3) { "-" } else { "" };
            values.push(if digits == 0 {
                format!("{sign}{whole}")
            } else {
                format!("{sign}{whole}.{frac:0width$}", width = digits as usize)
            });
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        for (p, s) in [(12, 2), (5, 0), (38, 10)] {
            for (v, ours, theirs) in both(&refs, p, s).await {
                assert_eq!(ours, theirs, "{v:?} as DECIMAL({p},{s})");
            }
        }
    }

    #[tokio::test]
    async fn the_type_comes_from_literal_arguments() {
        let session = crate::data::storage::session().unwrap();
        let df = session
            .sql(&format!("SELECT {NAME}('1.5', 9, 3) AS d"))
            .await
            .unwrap();
        assert_eq!(
            df.schema().field(0).data_type(),
            &DataType::Decimal128(9, 3)
        );
        for bad in ["'1', 'nine', 3", "'1', 40, 2", "'1', 4, 5", "'1', 4"] {
            let err = match session.sql(&format!("SELECT {NAME}({bad})")).await {
                Ok(df) => df.collect().await.unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains(NAME), "{bad}: {err}");
        }
    }

    #[test]
    fn a_literal_is_read_once_whatever_the_rows() {
        let f = udf();
        let out = f
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some("2.5".into())))],
                arg_fields: vec![Arc::new(Field::new("v", DataType::Utf8, true))],
                number_rows: 0,
                return_field: Arc::new(Field::new(NAME, DataType::Decimal128(5, 2), true)),
                config_options: Default::default(),
            })
            .unwrap();
        match out {
            ColumnarValue::Scalar(v) => assert_eq!(v, ScalarValue::Decimal128(Some(250), 5, 2)),
            other => panic!("{other:?}"),
        }
    }
}
