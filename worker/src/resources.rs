//! What tries reach besides themselves: the catalog, the databases tasks
//! name by connection id, the data folder and the retention rules. One
//! value, shared by sensors and data tasks, with one connection lookup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use weir_core::scheduler::Clock;
use weir_core::store::{Backend, Store};

/// A database a task names by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its URL (may hold a password: never log it).
    pub url: String,
    /// What kind of database it is.
    pub backend: Backend,
}

/// A connection that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// No URL is configured for the id.
    #[error(
        "connection `{id}` is not configured: set WEIR_CONN_{upper} or [connections.{id}] in weir.toml",
        upper = id.to_uppercase()
    )]
    NotConfigured {
        /// The id the task names.
        id: String,
    },
    /// The URL names a database weir cannot reach.
    #[error("connection `{id}`: only sqlite:// and postgres:// databases are supported")]
    Unsupported {
        /// The id the task names.
        id: String,
    },
}

/// What tries reach besides themselves.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The state store: the catalog, dataset versions, earlier pokes.
    pub store: Arc<dyn Store>,
    /// Connection URLs by id (lower case).
    pub connections: Arc<HashMap<String, String>>,
    /// Where datasets are stored.
    pub data_dir: PathBuf,
    /// How long dataset versions are kept.
    pub retention: Arc<weir_core::config::RetentionRules>,
    /// What time it is (the scheduler's clock, so tests can move it).
    pub clock: Arc<dyn Clock>,
}

impl Resources {
    /// The connection a task names by `id` (any case).
    pub fn connection(&self, id: &str) -> Result<Connection, ConnectionError> {
        let url = self
            .connections
            .get(&id.to_lowercase())
            .ok_or_else(|| ConnectionError::NotConfigured { id: id.to_owned() })?;
        let backend =
            Backend::of(url).map_err(|_| ConnectionError::Unsupported { id: id.to_owned() })?;
        Ok(Connection {
            url: url.clone(),
            backend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_found_in_any_case_or_named_in_the_error() {
        let db = weir_core::testing::sqlite().await;
        let resources = Resources {
            store: db.store.clone(),
            connections: Arc::new(HashMap::from([
                ("shop".to_owned(), "postgres://u:secret@db/shop".to_owned()),
                ("files".to_owned(), "mysql://u:secret@db/x".to_owned()),
            ])),
            data_dir: PathBuf::from("data"),
            retention: Arc::default(),
            clock: Arc::new(weir_core::scheduler::SystemClock),
        };
        assert_eq!(
            resources.connection("SHOP").map(|c| c.backend),
            Ok(Backend::Postgres)
        );
        let missing = resources
            .connection("warehouse")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            missing.as_deref(),
            Some(
                "connection `warehouse` is not configured: set WEIR_CONN_WAREHOUSE or [connections.warehouse] in weir.toml"
            )
        );
        let other = resources.connection("files").err().map(|e| e.to_string());
        assert!(
            other.as_deref().is_some_and(|e| !e.contains("secret")),
            "{other:?}"
        );
        db.cleanup().await;
    }
}
