//! `weir_date(text, pattern)` and `weir_timestamp(text, pattern)`: dates and
//! times written in a contract's own notation (`%d/%m/%Y`), parsed per value;
//! a value that does not parse is NULL, which the type rule then quarantines.
//! DataFusion's `to_date` fails the whole query on one bad value instead.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, AsArray, Date32Builder, TimestampNanosecondBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The date parser's name in SQL.
pub const DATE: &str = "weir_date";
/// The timestamp parser's name in SQL.
pub const TIMESTAMP: &str = "weir_timestamp";

/// Both functions, to register in a session.
pub fn udfs() -> Vec<ScalarUDF> {
    [Kind::Date, Kind::Timestamp]
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(Parse {
                kind,
                signature: Signature::one_of(vec![TypeSignature::Any(2)], Volatility::Immutable),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Date,
    Timestamp,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Parse {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Parse {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Date => DATE,
            Kind::Timestamp => TIMESTAMP,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, None),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text, pattern] = args.args.as_slice() else {
            return exec_err!("{}: expects a text and a pattern", self.name());
        };
        let pattern = match pattern {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p)))
            | ColumnarValue::Scalar(ScalarValue::Utf8View(Some(p)))
            | ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(p))) => p.clone(),
            _ => return exec_err!("{}: the pattern must be a text literal", self.name()),
        };
        let text = cast(&text.to_array(args.number_rows)?, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let value = |i: usize| text.is_valid(i).then(|| text.value(i).trim());
        Ok(ColumnarValue::Array(match self.kind {
            Kind::Date => {
                let mut out = Date32Builder::with_capacity(text.len());
                for i in 0..text.len() {
                    out.append_option(
                        value(i)
                            .and_then(|v| NaiveDate::parse_from_str(v, &pattern).ok())
                            .and_then(|d| {
                                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
                                i32::try_from(d.signed_duration_since(epoch).num_days()).ok()
                            }),
                    );
                }
                Arc::new(out.finish())
            }
            Kind::Timestamp => {
                let mut out = TimestampNanosecondBuilder::with_capacity(text.len());
                for i in 0..text.len() {
                    out.append_option(
                        value(i)
                            .and_then(|v| NaiveDateTime::parse_from_str(v, &pattern).ok())
                            .and_then(|t| t.and_utc().timestamp_nanos_opt()),
                    );
                }
                Arc::new(out.finish())
            }
        }))
    }
}
