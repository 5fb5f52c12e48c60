//! OpenLineage (`[openlineage]`): a `RunEvent` when a try starts and when it
//! ends, with the datasets it read and wrote. Events are queued without
//! waiting and delivered by one task in the order they were made, so
//! delivery never slows, blocks or fails a try: when the queue is full or
//! the service is down, events are dropped with a warning.

mod event;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_core::config::{LineageTransport, OpenLineageConfig};
use weir_core::store::{DatasetVersionRecord, NewQuality};

pub use event::{end_event, start_event};
use transport::Transport;

/// Events waiting for delivery before new ones are dropped.
const QUEUE: usize = 10_000;

/// The lineage settings could not be put to use.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// The settings are incomplete.
    #[error("{0}")]
    Config(&'static str),
    /// The event file cannot be opened.
    #[error("[openlineage] path {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error("[openlineage] url: {0}")]
    Http(String),
}

/// Where a try's lineage events go: cheap to clone; off unless configured,
/// and then no event is even made.
#[derive(Debug, Clone, Default)]
pub struct Emitter {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<serde_json::Value>,
    namespace: String,
    dropped: AtomicU64,
}

/// The task delivering events; [`Delivery::finish`] sends what is queued.
#[derive(Debug)]
pub struct Delivery {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Emitter {
    /// Starts delivering to the configured transport; an emitter that does
    /// nothing (and no delivery) when lineage is off.
    pub fn start(config: &OpenLineageConfig) -> Result<(Emitter, Option<Delivery>), LineageError> {
        if config.transport == LineageTransport::None {
            return Ok((Emitter::default(), None));
        }
        if let Some(problem) = config.problem() {
            return Err(LineageError::Config(problem));
        }
        let transport = Transport::open(config)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(deliver(transport, rx, stop.clone()));
        let emitter = Emitter {
            inner: Some(Arc::new(Inner {
                tx,
                namespace: config.namespace.clone(),
                dropped: AtomicU64::new(0),
            })),
        };
        Ok((emitter, Some(Delivery { stop, handle })))
    }

    /// Whether events are made at all.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The namespace of weir's jobs.
    pub fn namespace(&self) -> &str {
        self.inner.as_ref().map_or("weir", |i| i.namespace.as_str())
    }

    /// Queues `event` without waiting; drops it (with a warning now and
    /// then) when the queue is full.
    pub fn send(&self, event: serde_json::Value) {
        let Some(inner) = &self.inner else { return };
        if inner.tx.try_send(event).is_err() {
            let n = inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1_000) {
                tracing::warn!(
                    dropped = n,
                    "OpenLineage: the event queue is full or closed; {n} event(s) dropped so far"
                );
            }
        }
    }
}

impl Delivery {
    /// Delivers what is queued, for at most `within`, then stops.
    pub async fn finish(self, within: Duration) {
        self.stop.cancel();
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(within, self.handle).await.is_err() {
            abort.abort();
            tracing::warn!(
                "OpenLineage: events still queued after {}s were not delivered",
                within.as_secs()
            );
        }
    }
}

/// Sends events in order; after `stop`, sends what is queued, once each.
async fn deliver(
    mut transport: Transport,
    mut rx: mpsc::Receiver<serde_json::Value>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            e = rx.recv() => e,
            () = stop.cancelled() => break,
        };
        let Some(event) = event else { return };
        transport.send(&event, &stop).await;
    }
    rx.close();
    while let Some(event) = rx.recv().await {
        transport.send(&event, &stop).await;
    }
}

/// What a try's data work read and wrote, kept as it goes for its end event.
#[derive(Debug, Default)]
pub struct Trail(std::sync::Mutex<Seen>);

/// The contents of a [`Trail`].
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Dataset versions read.
    pub read: Vec<DatasetVersionRecord>,
    /// Dataset versions written.
    pub wrote: Vec<DatasetVersionRecord>,
    /// Validation outcomes, each about a dataset read.
    pub quality: Vec<NewQuality>,
    /// Sources outside weir's zones (files, queries).
    pub sources: Vec<External>,
    /// Targets outside weir's zones (tables, files).
    pub targets: Vec<External>,
    /// The SQL the try ran, as rendered, with its dialect (`datafusion`
    /// for a transform, the connection's for an extract's query).
    pub query: Option<(String, String)>,
}

/// A dataset outside weir's zones, named as OpenLineage names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// `file`, `postgres://host:5432`, `sqlite://…`.
    pub namespace: String,
    /// A path, or `database.schema.table`.
    pub name: String,
    /// Its columns as (name, type), when known.
    pub fields: Vec<(String, String)>,
}

impl Trail {
    fn with(&self, f: impl FnOnce(&mut Seen)) {
        if let Ok(mut seen) = self.0.lock() {
            f(&mut seen);
        }
    }

    /// A version was read (once per version, however often).
    pub fn read(&self, v: &DatasetVersionRecord) {
        self.with(|s| {
            if !s.read.iter().any(|r| r.id == v.id) {
                s.read.push(v.clone());
            }
        });
    }

    /// A version was written.
    pub fn wrote(&self, v: &DatasetVersionRecord) {
        self.with(|s| s.wrote.push(v.clone()));
    }

    /// A validation's outcome.
    pub fn quality(&self, q: &NewQuality) {
        self.with(|s| s.quality.push(q.clone()));
    }

    /// A source outside the zones.
    pub fn source(&self, e: External) {
        self.with(|s| s.sources.push(e));
    }

    /// A target outside the zones.
    pub fn target(&self, e: External) {
        self.with(|s| s.targets.push(e));
    }

    /// The SQL the try ran.
    pub fn query(&self, sql: &str, dialect: &str) {
        self.with(|s| s.query = Some((sql.to_owned(), dialect.to_owned())));
    }

    /// What was seen so far.
    pub fn seen(&self) -> Seen {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// How OpenLineage names a database connection: its namespace
/// (`postgres://host:port`, `sqlite:///path`) and its database (`main` for
/// SQLite).
pub fn connection_dataset(url: &str) -> Option<(String, String)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    match parsed.scheme() {
        "postgres" | "postgresql" => {
            let host = parsed.host_str().unwrap_or("localhost");
            let port = parsed.port().unwrap_or(5432);
            let db = parsed.path().trim_start_matches('/');
            let db = if db.is_empty() { "postgres" } else { db };
            Some((format!("postgres://{host}:{port}"), db.to_owned()))
        }
        "sqlite" => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default();
            let abs = std::path::absolute(path).ok()?;
            Some((format!("sqlite://{}", abs.display()), "main".to_owned()))
        }
        _ => None,
    }
}

/// How OpenLineage names `table` on a connection: `database.schema.table`
/// on PostgreSQL (schema `public` unless given), the table on SQLite.
pub fn table_dataset(url: &str, table: &str) -> Option<(String, String)> {
    let (ns, db) = connection_dataset(url)?;
    let name = if ns.starts_with("sqlite") {
        table.to_owned()
    } else if table.contains('.') {
        format!("{db}.{table}")
    } else {
        format!("{db}.public.{table}")
    };
    Some((ns, name))
}

/// How OpenLineage names a local file or folder: namespace `file`, its
/// absolute path.
pub fn file_dataset(path: &std::path::Path) -> External {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    External {
        namespace: "file".into(),
        name: abs.display().to_string(),
        fields: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_named_as_openlineage_names_them() {
        assert_eq!(
            table_dataset("postgres://u:p@db.example:6543/wh", "orders"),
            Some((
                "postgres://db.example:6543".into(),
                "wh.public.orders".into()
            ))
        );
        assert_eq!(
            table_dataset("postgresql://u@db/wh", "mart.orders"),
            Some(("postgres://db:5432".into(), "wh.mart.orders".into()))
        );
        let (ns, name) = table_dataset("sqlite:///tmp/w.db?mode=rwc", "orders").unwrap_or_default();
        assert_eq!(
            (ns.as_str(), name.as_str()),
            ("sqlite:///tmp/w.db", "orders")
        );
        assert_eq!(table_dataset("mysql://h/db", "t"), None);
    }
}
