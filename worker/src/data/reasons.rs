//! `weir_reasons(f0, f1, …)`: a quarantined row's reasons as a list of
//! text (`["min:amount", "rule:paid_has_amount"]`), one entry per flag that
//! is true, so readers in any engine get a list, not a string to split.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The function's name in SQL.
pub const NAME: &str = "weir_reasons";

/// The function for rules whose reasons are `reasons`, in flag order.
pub fn udf(reasons: Vec<String>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Reasons {
        signature: Signature::one_of(
            vec![
                TypeSignature::Nullary,
                TypeSignature::Variadic(vec![DataType::Boolean]),
            ],
            Volatility::Immutable,
        ),
        reasons,
    })
}

/// The type of `_weir_errors`.
pub fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Reasons {
    signature: Signature,
    reasons: Vec<String>,
}

impl ScalarUDFImpl for Reasons {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(list_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() > self.reasons.len() {
            return exec_err!(
                "{NAME}: {} flags for {} reasons",
                args.args.len(),
                self.reasons.len()
            );
        }
        // Each flag at full length (a constant flag arrives as a scalar).
        let flags = args
            .args
            .iter()
            .map(|v| v.to_array(args.number_rows))
            .collect::<Result<Vec<_>>>()?;
        let mut out = ListBuilder::new(StringBuilder::new());
        for row in 0..args.number_rows {
            for (flag, reason) in flags.iter().zip(&self.reasons) {
                let Some(flag) = flag.as_boolean_opt() else {
                    return exec_err!("{NAME}: flags must be boolean");
                };
                if flag.is_valid(row) && flag.value(row) {
                    out.values().append_value(reason);
                }
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
