//! Worker lives: every start of a process that runs tries is a new worker,
//! with a name unique to that life, so that another process can tell a live
//! worker from the remains of one that died.

use crate::store::from_row;
use chrono::{DateTime, Utc};

/// Where a worker life stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Running (as far as anyone knows).
    Active,
    /// Stopped and said so: it left no running tries.
    Stopped,
    /// Found gone by another process: its processes were killed and its
    /// running tries failed through their retry rules.
    Lost,
}

crate::named_enum!(WorkerState, "worker state", {
    Active => "active",
    Stopped => "stopped",
    Lost => "lost",
});

/// A worker life as it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorker {
    /// Unique to this life: `<role>@<host>:<random>`.
    pub name: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id on that host.
    pub pid: i64,
    /// What tells this process apart from a later one that reuses its pid
    /// (the kernel's boot, pid namespace and start time of the process).
    pub process_token: String,
    /// weir's version on the worker.
    pub version: String,
    /// The queues it serves (`None`: every queue).
    pub queues: Option<Vec<String>>,
    /// How many tries it runs at once.
    pub slots: i64,
    /// It talks to weir over HTTP (`weir worker`), not to the database.
    pub remote: bool,
}

/// A worker life as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// Unique to that life.
    pub name: String,
    /// Its host.
    pub hostname: String,
    /// Its process id on that host.
    pub pid: i64,
    /// See [`NewWorker::process_token`].
    pub process_token: String,
    /// When it registered.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Active, stopped or lost.
    pub state: WorkerState,
    /// When it stopped or was found lost.
    pub stopped_at: Option<DateTime<Utc>>,
    /// weir's version on the worker.
    pub version: String,
    /// The queues it serves (`None`: every queue).
    pub queues: Option<Vec<String>>,
    /// How many tries it runs at once.
    pub slots: i64,
    /// It talks to weir over HTTP.
    pub remote: bool,
    /// When it began to drain: it claims nothing more and finishes what runs.
    pub draining_at: Option<DateTime<Utc>>,
}

impl WorkerRecord {
    /// It must claim nothing more: asked to drain, or no longer active.
    pub fn takes_no_work(&self) -> bool {
        self.state != WorkerState::Active || self.draining_at.is_some()
    }

    /// Whether it serves `queue`.
    pub fn serves(&self, queue: &str) -> bool {
        self.queues
            .as_ref()
            .is_none_or(|q| q.iter().any(|q| q == queue))
    }
}

from_row!(WorkerRecord { name, hostname, pid, process_token, started_at, heartbeat_at, state via String, stopped_at, version, queues via QueueList, slots, remote, draining_at });

/// The `queues` column: a JSON list, or NULL for every queue.
#[derive(Debug)]
pub(crate) struct QueueList(Option<String>);

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for QueueList
where
    Option<String>: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(QueueList(<Option<String> as sqlx::Decode<DB>>::decode(
            value,
        )?))
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for QueueList
where
    Option<String>: sqlx::Type<DB>,
    String: sqlx::Type<DB>,
{
    fn type_info() -> <DB as sqlx::Database>::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &<DB as sqlx::Database>::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl TryFrom<QueueList> for Option<Vec<String>> {
    type Error = serde_json::Error;
    fn try_from(raw: QueueList) -> Result<Self, Self::Error> {
        raw.0.map(|text| serde_json::from_str(&text)).transpose()
    }
}
