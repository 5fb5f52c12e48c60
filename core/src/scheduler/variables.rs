//! Variables: set and deleted by people (audited, values never recorded),
//! read by tries through a cache that a change made in this process
//! refreshes at once and a change made elsewhere reaches within
//! [`VARIABLES_FRESH`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{AuditAction, AuditEntry, SaveMode, VariableFilter, VariableRecord};

use super::{Error, Result, Scheduler};

/// How long tries may see variables as they were read.
pub const VARIABLES_FRESH: Duration = Duration::from_secs(1);

/// The longest key.
pub const MAX_KEY: usize = 250;

/// Variables by key, as tries read them.
pub type Variables = BTreeMap<String, String>;

/// The cache of [`Scheduler::variables`].
#[derive(Debug, Default)]
pub(super) struct Cached(Option<(Instant, Arc<Variables>)>);

/// Whether a key names something secret (its value is shown as `***` and
/// masked in logs): it contains one of the words Airflow treats so.
pub fn is_sensitive(key: &str) -> bool {
    const WORDS: [&str; 9] = [
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "secret",
    ];
    let key = key.to_ascii_lowercase();
    WORDS.iter().any(|w| key.contains(w))
}

/// What a secret value is shown as.
pub const MASK: &str = "***";

/// A variable's value as people see it: [`MASK`] for a key that names
/// something secret (API answers, lists, pages).
pub fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_sensitive(key) { MASK } else { value }
}

/// Checks a variable key: 1 to 250 letters, digits, `_`, `-` or `.`.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "variable key `{key}`: use 1 to {MAX_KEY} letters, digits, `_`, `-` or `.`"
        )))
    }
}

impl Scheduler {
    /// Every variable, by key (read again when older than [`VARIABLES_FRESH`]).
    pub async fn variables(&self) -> Result<Arc<Variables>> {
        if let Ok(c) = self.inner.variables.lock()
            && let Some((at, v)) = &c.0
            && at.elapsed() < VARIABLES_FRESH
        {
            return Ok(v.clone());
        }
        let read = Instant::now();
        let all: Variables = self
            .inner
            .store
            .list_variables(&VariableFilter::default())
            .await?
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect();
        let all = Arc::new(all);
        if let Ok(mut c) = self.inner.variables.lock() {
            c.0 = Some((read, all.clone()));
        }
        Ok(all)
    }

    /// The variables `filter` lets through, with their descriptions, by key.
    pub async fn list_variables(&self, filter: &VariableFilter) -> Result<Vec<VariableRecord>> {
        Ok(self.inner.store.list_variables(filter).await?)
    }

    /// One variable; [`crate::store::Error::NotFound`] if it is not set.
    pub async fn get_variable(&self, key: &str) -> Result<VariableRecord> {
        self.inner
            .store
            .get_variable(key)
            .await?
            .ok_or_else(|| crate::store::Error::NotFound(format!("variable `{key}`")).into())
    }

    /// Sets variable `key` as `mode` allows (audited without its value).
    pub async fn set_variable(
        &self,
        actor: &str,
        key: &str,
        value: &str,
        description: Option<&str>,
        mode: SaveMode,
    ) -> Result<()> {
        check_key(key)?;
        let audit = self.variable_audit(actor, AuditAction::SetVariable, key);
        self.inner
            .store
            .save_variable(key, value, description, mode, &audit)
            .await?;
        self.forget_variables();
        Ok(())
    }

    /// Deletes variable `key` (audited).
    pub async fn delete_variable(&self, actor: &str, key: &str) -> Result<()> {
        let audit = self.variable_audit(actor, AuditAction::DeleteVariable, key);
        self.inner.store.delete_variable(key, &audit).await?;
        self.forget_variables();
        Ok(())
    }

    fn variable_audit(&self, actor: &str, action: AuditAction, key: &str) -> AuditEntry {
        AuditEntry::about(actor, action, serde_json::json!({ "key": key }), self.now())
    }

    fn forget_variables(&self) {
        if let Ok(mut c) = self.inner.variables.lock() {
            c.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_secret_words_found() {
        assert!(check_key("s3_bucket.prod-1").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("has space").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY + 1)).is_err());
        assert!(is_sensitive("warehouse_PASSWORD"));
        assert!(is_sensitive("slack_api_key"));
        assert!(!is_sensitive("s3_bucket"));
        assert_eq!(shown("db_password", "hunter2"), MASK);
        assert_eq!(shown("bucket", "raw"), "raw");
    }
}
