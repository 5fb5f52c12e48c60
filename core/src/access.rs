//! Who may do what: roles, and the user, API-token and backfill records the
//! API keeps. Passwords and token secrets are hashed before they reach here.

use crate::store::from_row;
use chrono::{DateTime, Utc};

/// What a user or token may do. People have `viewer` < `operator` < `admin`;
/// `worker` tokens may only claim and report tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also trigger, clear, mark and pause.
    Operator,
    /// Also manage users, tokens and pools.
    Admin,
    /// Only claim and report tasks.
    Worker,
}

crate::named_enum!(Role, "role", {
    Viewer => "viewer",
    Operator => "operator",
    Admin => "admin",
    Worker => "worker",
});

impl Role {
    /// Whether this role may do what `needed` may (workers only what workers may).
    pub fn allows(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Viewer => Some(0),
            Role::Operator => Some(1),
            Role::Admin => Some(2),
            Role::Worker => None,
        };
        match (rank(self), rank(needed)) {
            (Some(have), Some(need)) => have >= need,
            (None, None) => true,
            _ => false,
        }
    }
}

/// What a backfill does with dates that already have a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reprocess {
    /// Leave them.
    None,
    /// Clear the failed tasks of failed runs.
    Failed,
    /// Clear every task of finished runs.
    Completed,
}

crate::named_enum!(Reprocess, "reprocess behavior", {
    None => "none",
    Failed => "failed",
    Completed => "completed",
});

/// A change to a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillChange {
    /// It creates no more runs until unpaused.
    Pause,
    /// It creates runs again.
    Unpause,
    /// It is stopped for good (paused and finished).
    Cancel,
    /// Every date has its run: it is finished.
    Complete,
}

/// Which backfills to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillFilter {
    /// Only this DAG's.
    pub dag_id: Option<String>,
    /// Only those not finished.
    pub unfinished_only: bool,
    /// At most this many.
    pub limit: i64,
    /// Skip this many.
    pub offset: i64,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Login name.
    pub username: String,
    /// The argon2 hash (PHC string) of the password.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

from_row!(UserRecord { username, password_hash, role via String, created_at, last_login_at });

/// An API token as stored (its secret only as a SHA-256 hash).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Public id (part of the token).
    pub id: String,
    /// What it is for.
    pub description: Option<String>,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Who created it.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Refused after this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// Refused since this time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
}

from_row!(TokenRecord { id, description, role via String, secret_hash, created_by, created_at, expires_at, revoked_at, last_used_at });

impl TokenRecord {
    /// Whether the token is accepted at `now`.
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A backfill to record.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    /// DAG id.
    pub dag_id: String,
    /// First logical date, included.
    pub from_date: DateTime<Utc>,
    /// Last logical date, included.
    pub to_date: DateTime<Utc>,
    /// Conf of every run (JSON object).
    pub dag_run_conf: String,
    /// What to do with dates that have a run.
    pub reprocess_behavior: Reprocess,
    /// At most this many of the DAG's runs active.
    pub max_active_runs: i64,
    /// Who asked.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A backfill as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRecord {
    /// Key.
    pub id: i64,
    /// DAG id.
    pub dag_id: String,
    /// First logical date, included.
    pub from_date: DateTime<Utc>,
    /// Last logical date, included.
    pub to_date: DateTime<Utc>,
    /// Conf of every run (JSON object).
    pub dag_run_conf: String,
    /// What to do with dates that have a run.
    pub reprocess_behavior: Reprocess,
    /// At most this many of the DAG's runs active.
    pub max_active_runs: i64,
    /// A paused backfill creates no more runs.
    pub is_paused: bool,
    /// Who asked.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When its last run ended (or it was cancelled).
    pub completed_at: Option<DateTime<Utc>>,
}

from_row!(BackfillRecord { id, dag_id, from_date, to_date, dag_run_conf, reprocess_behavior via String, max_active_runs, is_paused, created_by, created_at, updated_at, completed_at });
