//! Secrets (`WEIR_SECRET_<NAME>`) and masking them (and sensitive
//! variables) in logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weir_core::scheduler::variables::{Variables, is_sensitive};

/// The secrets a worker can hand to templates, and the values to mask.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: HashMap<String, String>,
    /// Other values to mask (those of sensitive variables).
    masked: Vec<String>,
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
        Secrets {
            values,
            masked: Vec::new(),
        }
    }

    /// These secrets, also masking the values of the variables whose keys
    /// name something secret (see [`is_sensitive`]).
    pub fn with_variables(self: &Arc<Self>, variables: &Variables) -> Arc<Secrets> {
        let mut masked: Vec<String> = variables
            .iter()
            .filter(|(k, v)| is_sensitive(k) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
        if masked.is_empty() {
            return self.clone();
        }
        masked.extend(self.masked.iter().cloned());
        Arc::new(Secrets {
            values: self.values.clone(),
            masked,
        })
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
        for v in self.values.values().chain(&self.masked) {
            if !v.is_empty() && out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

/// [`Secrets::with_variables`] for the variables a scheduler hands out,
/// worked out again only when they change (a new set from its cache), not
/// for every try.
#[derive(Debug, Default)]
pub struct MaskCache(Mutex<Option<(Arc<Variables>, Arc<Secrets>)>>);

impl MaskCache {
    /// `base` masking the secret values of `variables` too.
    pub fn secrets(&self, base: &Arc<Secrets>, variables: &Arc<Variables>) -> Arc<Secrets> {
        if let Ok(cached) = self.0.lock()
            && let Some((seen, secrets)) = &*cached
            && Arc::ptr_eq(seen, variables)
        {
            return secrets.clone();
        }
        let secrets = base.with_variables(variables);
        if let Ok(mut cached) = self.0.lock() {
            *cached = Some((variables.clone(), secrets.clone()));
        }
        secrets
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
        let vars = Variables::from([
            ("db_password".to_owned(), "hunter2".to_owned()),
            ("bucket".to_owned(), "raw".to_owned()),
        ]);
        let with = Arc::new(s).with_variables(&vars);
        assert_eq!(
            with.mask("login hunter2 to raw via https://hooks/x1"),
            "login *** to raw via ***"
        );
    }

    #[test]
    fn masks_are_worked_out_once_per_set_of_variables() {
        let base = Arc::new(Secrets::default());
        let cache = MaskCache::default();
        let vars = Arc::new(Variables::from([("api_key".to_owned(), "k1".to_owned())]));
        let first = cache.secrets(&base, &vars);
        assert!(
            Arc::ptr_eq(&first, &cache.secrets(&base, &vars)),
            "the same set: kept"
        );
        let newer = Arc::new(Variables::from([("api_key".to_owned(), "k2".to_owned())]));
        let second = cache.secrets(&base, &newer);
        assert_eq!(
            second.mask("k1 k2"),
            "k1 ***",
            "a new set: worked out again"
        );
    }
}
