//! Reading a record from a row of either backend, without a derive macro.

/// Implements `sqlx::FromRow` for both backends: each field is read from the
/// column of its name (or the one named after `as`); a field followed by
/// `via T` is read as a `T` and converted with `TryFrom`.
macro_rules! from_row {
    (direct $record:ident { $($field:ident $(as $column:literal)? $(via $raw:ty)?),* $(,)? }) => {
        $crate::store::from_row!($record { $($field $(as $column)? $(via $raw)?),* });
        impl $crate::store::from_row::DirectRow for $record {
            fn from_direct(row: &rusqlite::Row<'_>) -> $crate::store::Result<Self> {
                Ok(Self {
                    $($field: $crate::store::from_row!(@direct row, $crate::store::from_row!(@name $field $($column)?) $(, $raw)?),)*
                })
            }
        }
    };
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
    (@direct $row:ident, $column:expr) => {
        $crate::store::from_row::DirectValue::direct($row, $column)?
    };
    (@direct $row:ident, $column:expr, $raw:ty) => {{
        let raw: $raw = $crate::store::from_row::DirectValue::direct($row, $column)?;
        TryFrom::try_from(raw)
            .map_err(|e| $crate::store::Error::Corrupt(format!("column `{}`: {e}", $column)))?
    }};
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

/// A record read from a row of SQLite's direct writer (see
/// `sqlite_direct`); `from_row!(direct …)` implements it.
pub(crate) trait DirectRow: Sized {
    /// Reads the record, each field from the column of its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> super::Result<Self>;
}

/// A column's value as the direct writer reads it: text stamps as sqlx
/// writes them, everything else as SQLite stores it.
pub(crate) trait DirectValue: Sized {
    /// Reads the column named `column`.
    fn direct(row: &rusqlite::Row<'_>, column: &str) -> super::Result<Self>;
}

macro_rules! direct_plain {
    ($($ty:ty),*) => {$(
        impl DirectValue for $ty {
            fn direct(row: &rusqlite::Row<'_>, column: &str) -> super::Result<Self> {
                Ok(row.get(column)?)
            }
        }
    )*};
}

direct_plain!(i64, String, Option<i64>, Option<String>);

impl DirectValue for chrono::DateTime<chrono::Utc> {
    fn direct(row: &rusqlite::Row<'_>, column: &str) -> super::Result<Self> {
        let text: String = row.get(column)?;
        parse_stamp(&text)
    }
}

impl DirectValue for Option<chrono::DateTime<chrono::Utc>> {
    fn direct(row: &rusqlite::Row<'_>, column: &str) -> super::Result<Self> {
        let text: Option<String> = row.get(column)?;
        text.as_deref().map(parse_stamp).transpose()
    }
}

/// A time stamp stored as text: RFC 3339 as sqlx writes it, or SQLite's
/// own `YYYY-MM-DD HH:MM:SS[.fff]` (UTC).
pub(crate) fn parse_stamp(text: &str) -> super::Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").map(|d| d.with_timezone(&Utc))
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc())
        })
        .map_err(|_| super::Error::Corrupt(format!("`{text}` is not a time stamp")))
}
