//! Reading a record from a row of either backend, without a derive macro.

/// Implements `sqlx::FromRow` for both backends: each field is read from the
/// column of its name (or the one named after `as`); a field followed by
/// `via T` is read as a `T` and converted with `TryFrom`.
macro_rules! from_row {
    ($record:ident { $($field:ident $(as $column:literal)? $(via $raw:ty)?),* $(,)? }) => {
        $crate::store::from_row!(@backend sqlx::sqlite::SqliteRow, $record { $($field $(as $column)? $(via $raw)?),* });
        $crate::store::from_row!(@backend sqlx::postgres::PgRow, $record { $($field $(as $column)? $(via $raw)?),* });
    };
    (@backend $row:ty, $record:ident { $($field:ident $(as $column:literal)? $(via $raw:ty)?),* }) => {
        impl<'r> sqlx::FromRow<'r, $row> for $record {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($field: $crate::store::from_row!(@get row, $crate::store::from_row!(@name $field $($column)?) $(, $raw)?),)*
                })
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $column:literal) => { $column };
    (@get $row:ident, $column:expr) => { sqlx::Row::try_get($row, $column)? };
    (@get $row:ident, $column:expr, $raw:ty) => {{
        let raw: $raw = sqlx::Row::try_get($row, $column)?;
        $crate::store::from_row::convert(raw, $column)?
    }};
}

pub(crate) use from_row;

/// Converts a column's raw value to its field type, or fails naming the column.
pub(crate) fn convert<R, T>(raw: R, column: &str) -> Result<T, sqlx::Error>
where
    T: TryFrom<R>,
    T::Error: Into<sqlx::error::BoxDynError>,
{
    T::try_from(raw).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: e.into(),
    })
}
