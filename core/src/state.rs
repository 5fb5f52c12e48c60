//! Run and task-instance states (Airflow's names) and the one place that
//! knows which moves between them are legal.

/// Implements `ALL`, `as_str`, `Display`, `FromStr`, `TryFrom<String>` and
/// serde (as the name) for
/// a field-less enum from one table of variants and their stored names.
#[macro_export]
#[doc(hidden)]
macro_rules! named_enum {
    ($ty:ident, $what:literal, serde_derived, { $($variant:ident => $name:literal),+ $(,)? }) => {
        $crate::named_enum!(@names $ty, $what, { $($variant => $name),+ });
    };
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        $crate::named_enum!(@names $ty, $what, { $($variant => $name),+ });

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
    (@names $ty:ident, $what:literal, { $($variant:ident => $name:literal),+ }) => {
        impl $ty {
            /// Every value.
            pub const ALL: [$ty; [$($ty::$variant),+].len()] = [$($ty::$variant),+];

            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $ty::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " `{}`"), s))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
    };
}

/// The state of a task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Not yet considered (Airflow's null).
    None,
    /// Its upstream tasks allow it to run; waiting for a slot.
    Scheduled,
    /// Has a slot; waiting for a worker to claim it.
    Queued,
    /// A worker runs a try.
    Running,
    /// The last try succeeded.
    Success,
    /// The last try failed and no retry is left (or marked failed).
    Failed,
    /// A try failed; another starts at `next_try_at`.
    UpForRetry,
    /// A sensor waits for its next poke without holding a slot.
    UpForReschedule,
    /// An upstream task failed, so this one cannot run.
    UpstreamFailed,
    /// Its trigger rule can no longer fire.
    Skipped,
    /// The task is not in the DAG version any more.
    Removed,
}

impl TaskState {
    /// Final states: nothing happens to the task instance unless a person clears it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::UpstreamFailed
                | TaskState::Skipped
                | TaskState::Removed
        )
    }

    /// Work in flight: neither waiting for its upstream (`none`) nor final.
    /// Such task instances are also in the `task_queue` table (migration 0007
    /// names the same states).
    pub fn is_in_flight(self) -> bool {
        !self.is_finished() && self != TaskState::None
    }

    /// States that count as a failure for the run's outcome.
    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::UpstreamFailed)
    }

    /// Whether moving from `self` to `to` is legal.
    ///
    /// The scheduler moves tasks forward (`none → scheduled → queued → running
    /// → success | failed | up_for_retry`, `none → upstream_failed | skipped`,
    /// `up_for_retry → scheduled`); people clear any state but `running` back
    /// to `none` and mark any state success or failed.
    pub fn can_move_to(self, to: TaskState) -> bool {
        use TaskState::*;
        if self == to {
            return false;
        }
        match (self, to) {
            // Marking by hand: any state but removed.
            (Removed, Success | Failed) => false,
            (_, Success | Failed) => true,
            // Clearing by hand.
            (Running, None) => false,
            (_, None) => true,
            (None, Scheduled | UpstreamFailed | Skipped | Removed) => true,
            (Scheduled, Queued | UpstreamFailed | Skipped | Removed) => true,
            (Queued, Running | Scheduled | Removed) => true,
            (Running, UpForRetry | UpForReschedule) => true,
            // A mapped task's expansion over an empty list.
            (Running, Skipped) => true,
            (UpForRetry | UpForReschedule, Scheduled | Removed) => true,
            _ => false,
        }
    }
}

impl TaskState {
    /// One state for a mapped task's instances, as people read it: the
    /// most active state any of them is in (running before queued before
    /// waiting), else a failure, else success or skipped. Removed
    /// instances do not count; none left gives `None`.
    pub fn summary(states: impl IntoIterator<Item = TaskState>) -> Option<TaskState> {
        use TaskState::*;
        const ORDER: [TaskState; 10] = [
            Running,
            Queued,
            Scheduled,
            UpForRetry,
            UpForReschedule,
            None,
            Failed,
            UpstreamFailed,
            Success,
            Skipped,
        ];
        states
            .into_iter()
            .filter_map(|s| ORDER.iter().position(|o| *o == s))
            .min()
            .map(|i| ORDER[i])
    }
}

named_enum!(TaskState, "task state", {
    None => "none",
    Scheduled => "scheduled",
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failed => "failed",
    UpForRetry => "up_for_retry",
    UpForReschedule => "up_for_reschedule",
    UpstreamFailed => "upstream_failed",
    Skipped => "skipped",
    Removed => "removed",
});

/// The state of a DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Created; waiting for `max_active_runs` to allow it.
    Queued,
    /// Its tasks are being scheduled.
    Running,
    /// Every task ended and none failed.
    Success,
    /// Every task ended and one failed (or the run was marked failed or timed out).
    Failed,
}

impl RunState {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }

    /// Whether moving from `self` to `to` is legal: forward, reopened by a
    /// clear, or marked by hand.
    pub fn can_move_to(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Queued, Running | Failed | Success)
                | (Running, Success | Failed)
                | (Success, Running | Failed)
                | (Failed, Running | Success)
        )
    }
}

named_enum!(RunState, "run state", {
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failed => "failed",
});

/// Why a run exists; part of its run id (Airflow's pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunType {
    /// Triggered by a person or a script.
    Manual,
    /// Created by the schedule.
    Scheduled,
    /// Created by a backfill.
    Backfill,
    /// Created because its input datasets changed.
    DatasetTriggered,
}

impl RunType {
    /// A run id for this type and logical date: `scheduled__2026-01-01T02:00:00+00:00`.
    pub fn run_id(self, at: chrono::DateTime<chrono::Utc>) -> String {
        format!(
            "{}__{}",
            self.as_str(),
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        )
    }
}

named_enum!(RunType, "run type", {
    Manual => "manual",
    Scheduled => "scheduled",
    Backfill => "backfill",
    DatasetTriggered => "dataset_triggered",
});

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn forward_moves_are_legal_and_backward_ones_are_not() {
        for (a, b) in [
            (None, Scheduled),
            (Scheduled, Queued),
            (Queued, Running),
            (Running, Success),
            (Running, Failed),
            (Running, UpForRetry),
            (UpForRetry, Scheduled),
            (None, UpstreamFailed),
            (None, Skipped),
        ] {
            assert!(a.can_move_to(b), "{a} -> {b}");
        }
        for (a, b) in [
            (Success, Running),
            (None, Running),
            (None, Queued),
            (Scheduled, Running),
            (Running, None),
            (Failed, Scheduled),
            (Success, Success),
            (UpstreamFailed, Queued),
        ] {
            assert!(!a.can_move_to(b), "{a} -> {b} must be refused");
        }
    }

    #[test]
    fn people_can_clear_and_mark() {
        for s in [
            Success,
            Failed,
            UpstreamFailed,
            Skipped,
            UpForRetry,
            Scheduled,
            Queued,
        ] {
            assert!(s.can_move_to(None), "clear {s}");
        }
        assert!(
            Failed.can_move_to(Success)
                && Success.can_move_to(Failed)
                && Running.can_move_to(Failed)
        );
        assert!(RunState::Failed.can_move_to(RunState::Running));
        assert!(!RunState::Success.can_move_to(RunState::Queued));
    }

    #[test]
    fn names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
        }
        assert!("bogus".parse::<TaskState>().is_err());
    }
}
