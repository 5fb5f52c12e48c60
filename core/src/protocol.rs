//! The remote-worker protocol: what `weir worker` and the API server say to
//! each other under `/api/worker/v1/`. Both sides use these types, so they
//! cannot drift; the API's OpenAPI document shows them.
//!
//! A claim is a lease: the try number and a lease id fence every later
//! message about the try (heartbeat, log piece, report), so a worker whose
//! lease lapsed, or whose try was cleared or marked, is refused and must kill
//! the task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{Claim, HeldTry, RunRecord};

/// The protocol version this build speaks. A worker speaking another is
/// refused at registration.
pub const PROTOCOL: u32 = 1;

/// The longest a claim waits for work before answering with none.
pub const MAX_CLAIM_WAIT_SECONDS: f64 = 30.0;

/// Largest log piece a worker pushes at once, in bytes.
pub const MAX_LOG_PIECE: usize = 256 * 1024;

/// A worker life registering.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Its name, unique to this start of the process.
    pub name: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id there.
    pub pid: i64,
    /// What tells that process apart from a later one with the same pid.
    pub process_token: String,
    /// weir's version on the worker.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// How many tries it runs at once.
    pub slots: u32,
}

/// What the server tells a worker that registered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The worker's name, as registered.
    pub name: String,
    /// How long a lease lasts without a heartbeat.
    pub lease_seconds: f64,
    /// How often to heartbeat.
    pub heartbeat_seconds: f64,
    /// The id of the catalog the data folder must belong to (the marker file
    /// `.weir-catalog` in the data folder holds it); data tasks are refused on
    /// a worker whose data folder holds another.
    pub catalog_id: String,
    /// weir's version on the server.
    pub server_version: String,
}

/// A worker asks for work.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The worker's name.
    pub worker: String,
    /// The queues it serves now.
    pub queues: Vec<String>,
    /// How many tries it can start.
    pub free_slots: u32,
    /// How long to wait for work before answering with none (at most 30 s;
    /// default 20 s).
    #[serde(default)]
    pub wait_seconds: Option<f64>,
}

/// The run a try belongs to, as its templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunContext {
    /// The run id.
    pub run_id: String,
    /// Its logical date.
    pub logical_date: Option<DateTime<Utc>>,
    /// Start of its data interval.
    pub data_interval_start: Option<DateTime<Utc>>,
    /// End of its data interval.
    pub data_interval_end: Option<DateTime<Utc>>,
    /// When it was due.
    pub run_after: DateTime<Utc>,
    /// Its conf (a JSON object).
    pub conf: String,
}

impl From<&RunRecord> for RunContext {
    fn from(r: &RunRecord) -> Self {
        RunContext {
            run_id: r.run_id.clone(),
            logical_date: r.logical_date,
            data_interval_start: r.data_interval_start,
            data_interval_end: r.data_interval_end,
            run_after: r.run_after,
            conf: r.conf.clone(),
        }
    }
}

/// A claimed try: what to run and the lease it runs under (the claim's
/// fields, flattened), with its run's template values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedTry {
    /// The claim: task instance, try number, DAG version (`GET
    /// versions/{id}`), log path, queue and lease.
    #[serde(flatten)]
    pub claim: Claim,
    /// The run, for templates.
    pub run: RunContext,
    /// Variables, for templates (`var.value.<key>`, `var.json.<key>`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub variables: crate::scheduler::variables::Variables,
    /// The URLs of the stored connections its task names, by id (lower
    /// case); the worker's own environment and `weir.toml` win over them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub connections: crate::scheduler::connections::ConnectionUrls,
    /// The outputs of upstream tasks its templates read (`tasks.<id>.output`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub outputs: crate::outputs::TaskOutputs,
}

impl ClaimedTry {
    /// The lease this try runs under.
    pub fn lease(&self) -> Lease {
        Lease::of(&self.claim)
    }
}

/// Tries handed to a worker (none when the wait ended without work).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Claimed {
    /// The claimed tries.
    pub tries: Vec<ClaimedTry>,
    /// The worker drains: it must claim nothing more.
    pub drain: bool,
}

/// Which try, under which lease, a message is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// The task instance.
    pub ti_id: String,
    /// The try number.
    pub try_number: i64,
    /// The lease id of the claim.
    pub lease_id: String,
}

impl Lease {
    /// The lease of a claim.
    pub fn of(c: &Claim) -> Self {
        Lease {
            dag_id: c.dag_id.clone(),
            run_id: c.run_id.clone(),
            task_id: c.task_id.clone(),
            ti_id: c.ti_id.clone(),
            try_number: c.try_number,
            lease_id: c.lease_id.clone(),
        }
    }

    /// The try as the store addresses it.
    pub fn held(&self) -> HeldTry {
        HeldTry {
            ti_id: self.ti_id.clone(),
            try_number: self.try_number,
            lease_id: self.lease_id.clone(),
        }
    }
}

/// A worker's heartbeat: it is alive and runs these tries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The worker's name.
    pub worker: String,
    /// Every try it runs now.
    pub tries: Vec<Lease>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// The renewed leases last until then.
    pub lease_until: DateTime<Utc>,
    /// Tries the worker must kill now: their lease lapsed, or they were
    /// cleared or marked; nothing more about them is accepted.
    pub kill: Vec<Lease>,
    /// Stop claiming and finish what runs (an operator asked).
    pub drain: bool,
    /// `false` if the worker was found lost meanwhile: it must register again.
    pub registered: bool,
}

/// A piece of a try's log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogPiece {
    /// The try and its lease.
    pub lease: Lease,
    /// Where the piece starts in the try's log, in bytes.
    pub offset: u64,
    /// The text (at most 256 KiB).
    pub data: String,
}

/// The answer to a log piece.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogAck {
    /// The log's size now: where the next piece starts.
    pub next_offset: u64,
}

/// How a try ended, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed.
    Failed,
    /// A sensor waits: poke again at `reschedule_at`.
    Reschedule,
    /// A mapped task's own try found its items: `output` is the list.
    Expanded,
}

/// A worker reports a try that ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryReport {
    /// The worker that ran it.
    pub worker: String,
    /// The try and its lease.
    pub lease: Lease,
    /// How it ended.
    pub outcome: Outcome,
    /// For `reschedule`: when to poke again.
    #[serde(default)]
    pub reschedule_at: Option<DateTime<Utc>>,
    /// The exit code, when it ran a process.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The process id, when it ran a process.
    #[serde(default)]
    pub pid: Option<i64>,
    /// The value the try published (its output), at most 64 KiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Claim the next try for the slot this one frees, from these queues
    /// (absent: claim nothing).
    #[serde(default)]
    pub claim_next: Option<Vec<String>>,
}

impl TryReport {
    /// A report of `ended` for the try under `lease`.
    pub fn of(
        worker: &str,
        lease: Lease,
        ended: &crate::scheduler::Ended,
        claim_next: Option<Vec<String>>,
    ) -> Self {
        use crate::scheduler::Outcome as O;
        let (outcome, reschedule_at) = match ended.outcome {
            O::Success => (Outcome::Success, None),
            O::Failed => (Outcome::Failed, None),
            O::Reschedule(at) => (Outcome::Reschedule, Some(at)),
            O::Expanded(_) => (Outcome::Expanded, None),
        };
        TryReport {
            worker: worker.to_owned(),
            lease,
            outcome,
            reschedule_at,
            exit_code: ended.exit_code,
            error: ended.error.clone(),
            pid: ended.pid,
            output: ended
                .output
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            claim_next,
        }
    }

    /// The report as the scheduler takes it.
    pub fn ended(&self) -> Result<crate::scheduler::Ended, String> {
        use crate::scheduler::Outcome as O;
        let outcome = match (self.outcome, self.reschedule_at) {
            (Outcome::Success, _) => O::Success,
            (Outcome::Failed, _) => O::Failed,
            (Outcome::Reschedule, Some(at)) => O::Reschedule(at),
            (Outcome::Reschedule, None) => {
                return Err("a `reschedule` report needs `reschedule_at`".into());
            }
            (Outcome::Expanded, _) => match &self.output {
                Some(serde_json::Value::Array(items)) => O::Expanded(items.len()),
                _ => return Err("an `expanded` report needs the items as `output`, a list".into()),
            },
        };
        let output = match &self.output {
            Some(v) => Some(crate::outputs::encode(v).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(crate::scheduler::Ended {
            outcome,
            exit_code: self.exit_code,
            error: self.error.clone(),
            pid: self.pid,
            output,
        })
    }
}

/// The answer to a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportReply {
    /// `false` if this report was recorded before (it was sent again).
    pub recorded: bool,
    /// The next try for the freed slot, when asked for and there is one.
    pub next: Option<ClaimedTry>,
}

/// A DAG version, for a worker to run its tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionReply {
    /// The version id.
    pub version_id: i64,
    /// The DAG file it came from (shell tasks run in its folder when the
    /// worker has it).
    pub fileloc: String,
    /// The definition: the DAG file as JSON, contract files inlined.
    pub definition: String,
}

/// What a data task or sensor on a remote worker asks of weir's catalog,
/// under its try's lease (a try whose lease lapsed records nothing).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogRequest {
    /// The try asking, and its lease.
    pub lease: Lease,
    /// What it asks.
    #[schema(value_type = Object)]
    pub call: CatalogCall,
}

/// One catalog call; the answer is the store method's result as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum CatalogCall {
    /// The version of `dataset` a run wrote.
    DatasetVersionOfRun {
        /// `zone.name`.
        dataset: String,
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
    },
    /// The newest version of `dataset`.
    LatestDatasetVersion {
        /// `zone.name`.
        dataset: String,
    },
    /// Every version of `dataset` (or of every dataset).
    DatasetVersions {
        /// `zone.name`.
        dataset: Option<String>,
    },
    /// Records a dataset version.
    RecordDatasetVersion {
        /// The version.
        version: crate::store::NewDatasetVersion,
    },
    /// Records a validate try's outcome.
    RecordValidation {
        /// The outcome.
        validation: Box<crate::store::NewValidation>,
    },
    /// Records that retention deleted a version.
    MarkVersionDeleted {
        /// The version's key.
        id: i64,
    },
    /// Whether a run has ended.
    RunFinished {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
    },
    /// The tries of the task instance under the lease.
    Tries,
}
