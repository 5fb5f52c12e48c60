//! Secrets (`WEIR_SECRET_<NAME>`) and masking them in logs.

use std::collections::HashMap;

/// The secrets a worker can hand to templates, and the values to mask.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: HashMap<String, String>,
}

impl Secrets {
    /// Reads every `WEIR_SECRET_<NAME>` variable of `env`.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = env
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("WEIR_SECRET_")
                    .map(|n| (n.to_ascii_lowercase(), v))
            })
            .collect();
        Secrets { values }
    }

    /// The secret `name` (case-insensitive), if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `line` with every secret value replaced by `***`.
    pub fn mask(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for v in self.values.values() {
            if !v.is_empty() && out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values() {
        let s = Secrets::from_env([
            (
                "WEIR_SECRET_SLACK_URL".to_owned(),
                "https://hooks/x1".to_owned(),
            ),
            ("HOME".to_owned(), "/root".to_owned()),
        ]);
        assert_eq!(s.get("slack_url"), Some("https://hooks/x1"));
        assert_eq!(s.get("home"), None);
        assert_eq!(
            s.mask("posting to https://hooks/x1 now"),
            "posting to *** now"
        );
    }
}
