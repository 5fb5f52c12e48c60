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
}

from_row!(WorkerRecord { name, hostname, pid, process_token, started_at, heartbeat_at, state via String, stopped_at });
