//! A macro for value types written as one YAML string: parsed with `FromStr`
//! inside the deserializer (so a bad value is reported at its own line and
//! column), written back with `Display`, described in the JSON Schema as a string.

/// Implements `Serialize`, `Deserialize` and `JsonSchema` for a type that is
/// `FromStr<Err = String>` and `Display`. `$desc` documents the type in the schema;
/// `$pattern` (optional) is a regular expression the schema checks.
macro_rules! text_value {
    ($ty:ty, $desc:expr) => {
        $crate::dag::text::text_value!(@impl $ty, $desc, None::<&str>);
    };
    ($ty:ty, $desc:expr, $pattern:expr) => {
        $crate::dag::text::text_value!(@impl $ty, $desc, Some($pattern));
    };
    (@impl $ty:ty, $desc:expr, $pattern:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($desc)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse::<$ty>().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let mut schema = schemars::json_schema!({"type": "string", "description": $desc});
                if let Some(p) = $pattern {
                    schema.insert("pattern".into(), p.into());
                }
                schema
            }
        }
    };
}

pub(crate) use text_value;
