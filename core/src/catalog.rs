//! Views of the data catalog shared by the command line and the API: each
//! dataset's newest version, and a dataset's lineage up and down.

use std::collections::BTreeMap;

use crate::store::DatasetVersionRecord;

/// Whether `downstream` was made from `upstream` without a contract checking
/// it in between: raw or quarantined data read by anything but validate
/// (whose outputs are the clean and quarantine zones).
pub fn unchecked_edge(upstream: &str, downstream: &str) -> bool {
    use crate::dag::{DatasetName, Zone};
    let zone = |name: &str| name.parse::<DatasetName>().ok().map(|d| d.zone());
    matches!(zone(upstream), Some(Zone::Raw | Zone::Quarantine))
        && !matches!(zone(downstream), Some(Zone::Clean | Zone::Quarantine))
}

/// A dataset with its newest live version.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary<'a> {
    /// The newest version not deleted by retention.
    pub latest: &'a DatasetVersionRecord,
    /// How many versions are kept.
    pub versions: usize,
}

/// Every dataset of `all` with its newest live version, by name.
pub fn summaries(all: &[DatasetVersionRecord]) -> BTreeMap<&str, DatasetSummary<'_>> {
    let mut out: BTreeMap<&str, DatasetSummary<'_>> = BTreeMap::new();
    for v in all.iter().filter(|v| v.deleted_at.is_none()) {
        let e = out.entry(v.dataset.as_str()).or_insert(DatasetSummary {
            latest: v,
            versions: 0,
        });
        e.versions += 1;
        if v.version > e.latest.version {
            e.latest = v;
        }
    }
    out
}

/// A dataset's versions, and where its data comes from and goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Lineage<'a> {
    /// Every version, oldest first (deleted ones too).
    pub versions: Vec<&'a DatasetVersionRecord>,
    /// The newest live version (or the newest, if all were deleted).
    pub latest: &'a DatasetVersionRecord,
    /// The versions the newest one was made from.
    pub upstream: Vec<&'a DatasetVersionRecord>,
    /// Datasets made from any of its versions, with their newest such version.
    pub downstream: BTreeMap<&'a str, i64>,
}

/// The lineage of `dataset`, or `None` if it has no version.
pub fn lineage<'a>(all: &'a [DatasetVersionRecord], dataset: &str) -> Option<Lineage<'a>> {
    let versions: Vec<&DatasetVersionRecord> =
        all.iter().filter(|v| v.dataset == dataset).collect();
    let latest = *versions
        .iter()
        .rev()
        .find(|v| v.deleted_at.is_none())
        .or(versions.last())?;
    let by_id: BTreeMap<i64, &DatasetVersionRecord> = all.iter().map(|v| (v.id, v)).collect();
    let upstream = latest
        .input_ids()
        .iter()
        .filter_map(|id| by_id.get(id).copied())
        .collect();
    let ids: Vec<i64> = versions.iter().map(|v| v.id).collect();
    let mut downstream: BTreeMap<&str, i64> = BTreeMap::new();
    for v in all {
        if v.input_ids().iter().any(|i| ids.contains(i)) {
            let e = downstream.entry(v.dataset.as_str()).or_insert(0);
            *e = (*e).max(v.version);
        }
    }
    Some(Lineage {
        versions,
        latest,
        upstream,
        downstream,
    })
}

/// Which rows of a version to read for a person to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowQuery {
    /// Only quarantined rows with this reason (an entry of `_weir_errors`).
    pub reason: Option<String>,
    /// At most this many rows.
    pub limit: usize,
    /// Skip this many matching rows.
    pub offset: usize,
}

/// A page of a version's rows, every value as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowPage {
    /// Column names.
    pub columns: Vec<String>,
    /// The rows; `None` is a null.
    pub rows: Vec<Vec<Option<String>>>,
    /// How many rows match the query in all.
    pub matching: u64,
    /// Each quarantine reason and how many rows of the version have it,
    /// most frequent first (empty for a version without `_weir_errors`).
    pub reasons: Vec<(String, u64)>,
}

/// What is shown instead of a value of a `pii` column to roles below admin.
pub const MASK: &str = "***";

impl RowPage {
    /// The page with the values of `pii` columns replaced by [`MASK`]
    /// (nulls stay null: that a value is missing says nothing about it).
    pub fn masked(mut self, pii: &[String]) -> RowPage {
        let hidden: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| pii.contains(c))
            .map(|(i, _)| i)
            .collect();
        for row in &mut self.rows {
            for &i in &hidden {
                if let Some(cell) = row.get_mut(i)
                    && cell.is_some()
                {
                    *cell = Some(MASK.to_owned());
                }
            }
        }
        self
    }
}

/// The start of a cell of a check's sample: `name=` at the start or after
/// `: `, `, ` or `; `.
#[allow(clippy::expect_used)] // a constant pattern, checked by the tests below
static SAMPLE_CELL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?:^|: |, |; )([A-Za-z_][A-Za-z0-9_]*)=").expect("a valid pattern")
});

/// `text` (a check's observed sample, `3 row(s): id=1, email=a@b; …`) with
/// the value of every `pii` column replaced by [`MASK`]: a value runs to
/// the next `, name=` or `; name=`, or the end.
pub fn mask_sample(text: &str, pii: &[String]) -> String {
    if pii.is_empty() {
        return text.to_owned();
    }
    // Each cell's value ends where the next cell (with its separator) starts.
    let cells: Vec<(usize, usize, bool)> = SAMPLE_CELL
        .captures_iter(text)
        .filter_map(|c| {
            let (all, name) = (c.get(0)?, c.get(1)?);
            Some((
                all.start(),
                all.end(),
                pii.iter().any(|p| p == name.as_str()),
            ))
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (i, &(_, value_start, hidden)) in cells.iter().enumerate() {
        let value_end = cells.get(i + 1).map_or(text.len(), |c| c.0);
        out.push_str(&text[at..value_start]);
        out.push_str(if hidden {
            MASK
        } else {
            &text[value_start..value_end]
        });
        at = value_end;
    }
    out.push_str(&text[at..]);
    out
}

/// Reading a version's rows failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Reads pages of a dataset version's rows. `core` does no data IO: the
/// data plane implements this and the binary hands it to the API server.
#[async_trait::async_trait]
pub trait RowReader: Send + Sync + std::fmt::Debug {
    /// A page of `version`'s rows.
    async fn rows(
        &self,
        version: &DatasetVersionRecord,
        query: &RowQuery,
    ) -> Result<RowPage, ReadError>;
}

#[cfg(test)]
mod masking_tests {
    use super::*;

    #[test]
    fn pii_values_in_a_sample_are_masked_and_nothing_else() {
        let pii = vec!["email".to_owned(), "name".to_owned()];
        assert_eq!(
            mask_sample(
                "2 row(s): id=1, email=a@b.c, name=Ann, Lee, x_email=kept; id=2, name=Bo",
                &pii
            ),
            "2 row(s): id=1, email=***, name=***, x_email=kept; id=2, name=***"
        );
        assert_eq!(mask_sample("0 rows", &pii), "0 rows");
        assert_eq!(mask_sample("id=1, email=a", &[]), "id=1, email=a");
    }

    #[test]
    fn pii_columns_of_a_page_are_masked_and_nulls_stay_null() {
        let page = RowPage {
            columns: vec!["id".into(), "email".into()],
            rows: vec![
                vec![Some("1".into()), Some("a@b.c".into())],
                vec![Some("2".into()), None],
            ],
            ..RowPage::default()
        };
        let masked = page.masked(&["email".to_owned()]);
        assert_eq!(masked.rows[0], vec![Some("1".into()), Some(MASK.into())]);
        assert_eq!(masked.rows[1], vec![Some("2".into()), None]);
    }
}
