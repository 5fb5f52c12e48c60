//! What tries reach besides themselves: the catalog, the databases tasks
//! name by connection id, the data folder and the retention rules. One
//! value, shared by sensors and data tasks, with one connection lookup.

use std::collections::HashMap;
use std::sync::Arc;

use weir_core::scheduler::Clock;

use crate::data::home::Home;
use weir_core::store::Backend;

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
        "connection `{id}` is not configured: set WEIR_CONN_{upper}, [connections.{id}] in weir.toml, or `weir connections add {id}`",
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
    /// The catalog: dataset versions, quality records, earlier pokes.
    pub store: Arc<dyn crate::catalog::Catalog>,
    /// Connection URLs by id (lower case).
    pub connections: Arc<HashMap<String, String>>,
    /// Where datasets are stored.
    pub home: Home,
    /// How long dataset versions are kept.
    pub retention: Arc<weir_core::config::RetentionRules>,
    /// What time it is (the scheduler's clock, so tests can move it).
    pub clock: Arc<dyn Clock>,
    /// The catalog id the data folder's marker file must hold for data tasks
    /// to run (`None`: not checked).
    pub catalog_id: Option<Arc<str>>,
}

/// The marker file in a data folder: the id of the catalog it belongs to.
pub const CATALOG_MARKER: &str = ".weir-catalog";

/// Marks the data's home as this site's (a `.weir-catalog` file holding the
/// catalog id, written unless one is there), so remote workers that share
/// it may run data tasks; warns when it belongs to another site.
pub async fn mark_data_folder(scheduler: &weir_core::scheduler::Scheduler, home: &Home) {
    let id = match scheduler.catalog_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!("could not read the catalog id: {e}");
            return;
        }
    };
    match home.write_marker(CATALOG_MARKER, &format!("{id}\n")).await {
        Ok(held) if held.trim() == id => {}
        Ok(held) => tracing::warn!(
            "the data folder {} is marked as another site's ({}; this one is {id}): remote workers will refuse its data tasks",
            home.describe(),
            held.trim()
        ),
        Err(e) => tracing::warn!("could not mark the data folder {}: {e}", home.describe()),
    }
}

impl Resources {
    /// Refuses data tasks when the data folder belongs to another catalog, or
    /// to none: on a remote worker it must be the shared folder (or bucket)
    /// the servers use.
    pub async fn check_data_folder(&self) -> Result<(), String> {
        let Some(expected) = &self.catalog_id else {
            return Ok(());
        };
        let shared = if self.home.is_object() {
            "give the worker the servers' data_dir and [storage] settings"
        } else {
            "mount it here, e.g. over NFS, and point data_dir at it, or keep the data in object storage"
        };
        let held = match self.home.read_marker(CATALOG_MARKER).await {
            Ok(Some(text)) => Ok(text),
            Ok(None) => Err("there is none".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match held {
            Ok(text) if text.trim() == &**expected => Ok(()),
            Ok(text) => Err(format!(
                "the data folder {} belongs to another weir site (its {CATALOG_MARKER} holds {}, this site's catalog is {expected}); \
                 data tasks run only where the data folder is the one the catalog records",
                self.home.describe(),
                text.trim()
            )),
            Err(why) => Err(format!(
                "the data folder {} has no readable {CATALOG_MARKER} marker ({why}); data tasks need the site's shared data folder ({shared})",
                self.home.describe(),
            )),
        }
    }
}

impl Resources {
    /// These resources with stored connections added: one the environment
    /// or `weir.toml` gives keeps that URL.
    pub fn with_stored(
        &self,
        stored: &weir_core::scheduler::connections::ConnectionUrls,
    ) -> Resources {
        let mut all = (*self.connections).clone();
        for (id, url) in stored {
            all.entry(id.to_ascii_lowercase())
                .or_insert_with(|| url.clone());
        }
        Resources {
            connections: Arc::new(all),
            ..self.clone()
        }
    }

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
            store: Arc::new(crate::catalog::LocalCatalog(db.store.clone())),
            connections: Arc::new(HashMap::from([
                ("shop".to_owned(), "postgres://u:secret@db/shop".to_owned()),
                ("files".to_owned(), "mysql://u:secret@db/x".to_owned()),
            ])),
            home: Home::Local(std::path::PathBuf::from("data")),
            retention: Arc::default(),
            clock: Arc::new(weir_core::scheduler::SystemClock),
            catalog_id: None,
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
                "connection `warehouse` is not configured: set WEIR_CONN_WAREHOUSE, [connections.warehouse] in weir.toml, or `weir connections add warehouse`"
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
