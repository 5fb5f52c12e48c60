//! The endpoints, one module per resource.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod backfills;
pub mod connections;
pub mod dag_runs;
pub mod dag_stats;
pub mod dags;
pub mod datasets;
pub mod import_errors;
pub mod logs;
pub mod monitor;
pub mod notifications;
pub mod pools;
pub mod run_wait;
pub mod task_instance_patch;
pub mod task_instances;
pub mod tokens;
pub mod variables;
pub mod worker_api;
pub mod workers;
pub mod xcom;

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// The largest page a list answers.
pub const MAX_LIMIT: u32 = 1000;

/// `limit` and `offset` of a list.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many (default 50, at most 1000).
    #[serde(default = "default_limit")]
    #[param(minimum = 0, maximum = 1000)]
    pub limit: u32,
    /// Skip this many.
    #[serde(default)]
    pub offset: u32,
}

fn default_limit() -> u32 {
    50
}

impl Page {
    /// The paging of an Airflow batch body (`page_limit`, default 100;
    /// `page_offset`, default 0).
    pub fn of_body(page_limit: Option<u32>, page_offset: Option<u32>) -> Page {
        Page {
            limit: page_limit.unwrap_or(100),
            offset: page_offset.unwrap_or(0),
        }
    }

    /// `(limit, offset)` checked and widened.
    pub fn bounds(self) -> ApiResult<(i64, i64)> {
        if self.limit > MAX_LIMIT {
            return Err(ApiError::unprocessable(format!(
                "limit {} is above the maximum of {MAX_LIMIT}",
                self.limit
            )));
        }
        Ok((i64::from(self.limit), i64::from(self.offset)))
    }

    /// The items of `all` on this page, with how many there are in all.
    pub fn of<T>(self, all: Vec<T>) -> ApiResult<(Vec<T>, i64)> {
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        Ok((self.slice(all)?, total))
    }

    /// The items of `all` on this page.
    pub fn slice<T>(self, all: Vec<T>) -> ApiResult<Vec<T>> {
        let (limit, offset) = self.bounds()?;
        Ok(all
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }
}

/// Parses `order_by` (`field` or `-field` for descending) against the fields
/// a list can be sorted by.
pub fn order_by<T: Copy>(
    value: Option<&str>,
    allowed: &[(&str, T)],
) -> ApiResult<Option<(T, bool)>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let (name, desc) = match value.strip_prefix('-') {
        Some(rest) => (rest, true),
        None => (value, false),
    };
    allowed
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, key)| Some((*key, desc)))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            ApiError::unprocessable(format!(
                "order_by `{value}`: the list can be sorted by {} (prefix `-` for descending)",
                names.join(", ")
            ))
        })
}

/// The one sort key of a repeated `order_by` (a second one is refused:
/// `what` names the list).
pub fn one_order_by<'a>(values: &'a [String], what: &str) -> ApiResult<Option<&'a str>> {
    if values.len() > 1 {
        return Err(ApiError::unprocessable(format!(
            "order_by: weir sorts {what} by one key; give one"
        )));
    }
    Ok(values.first().map(String::as_str))
}

/// The fields an `update_mask` names (comma-separated or repeated), each
/// one of `allowed`; none means all.
pub fn update_mask<'a>(values: &'a [String], allowed: &[&str]) -> ApiResult<Vec<&'a str>> {
    let fields: Vec<&str> = values
        .iter()
        .flat_map(|m| m.split(','))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if let Some(bad) = fields.iter().find(|f| !allowed.contains(*f)) {
        return Err(ApiError::bad_request(format!(
            "update_mask: `{bad}` cannot be changed ({})",
            allowed.join(", ")
        )));
    }
    Ok(fields)
}

/// Parses each value of a list parameter.
pub fn parse_all<T: std::str::FromStr<Err = String>>(
    name: &str,
    values: &[String],
) -> ApiResult<Vec<T>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|e: String| ApiError::unprocessable(format!("{name}: {e}")))
        })
        .collect()
}

/// `~` means "every": `None`; anything else is itself.
pub fn every(id: &str) -> Option<String> {
    (id != "~").then(|| id.to_owned())
}

/// `[_gte, _lte, _gt, _lt]` bounds of each date column as a filter's
/// inclusive and strict ranges.
pub fn date_bounds<T: Copy, const N: usize>(
    by_date: [(T, [Option<chrono::DateTime<chrono::Utc>>; 4]); N],
) -> (
    Vec<weir_core::store::TimeRange<T>>,
    Vec<weir_core::store::TimeRange<T>>,
) {
    use weir_core::store::TimeRange;
    by_date
        .into_iter()
        .map(|(column, [gte, lte, gt, lt])| {
            (
                TimeRange {
                    column,
                    from: gte,
                    to: lte,
                },
                TimeRange {
                    column,
                    from: gt,
                    to: lt,
                },
            )
        })
        .unzip()
}

/// Duration bounds in seconds (`[_gte, _gt, _lte, _lt]`), each a finite
/// number of 0 or more.
pub fn durations(
    [gte, gt, lte, lt]: [Option<f64>; 4],
) -> ApiResult<weir_core::store::DurationRange> {
    for (name, bound) in [
        ("duration_gte", gte),
        ("duration_gt", gt),
        ("duration_lte", lte),
        ("duration_lt", lt),
    ] {
        if let Some(b) = bound
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(ApiError::unprocessable(format!(
                "{name} {b}: give seconds, 0 or more"
            )));
        }
    }
    Ok(weir_core::store::DurationRange { gte, gt, lte, lt })
}
