//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `word`, if any is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_typos() {
        assert_eq!(
            super::closest("retires", ["retries", "timeout"]),
            Some("retries")
        );
        assert_eq!(super::closest("xyz", ["retries", "timeout"]), None);
    }
}
