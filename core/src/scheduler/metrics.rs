//! What the scheduler measures as it works, for the `/metrics` endpoint:
//! how long queued task instances wait for a worker, and how long tries run.

use chrono::{DateTime, Utc};
use prometheus_client::metrics::histogram::Histogram;

use crate::store::Claim;

/// Histograms shared by every clone of a scheduler.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Seconds from queued to claimed, per try.
    pub scheduling_latency: Histogram,
    /// Seconds a try ran, per try.
    pub task_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            scheduling_latency: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            task_duration: Histogram::new([
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
            ]),
        }
    }
}

impl Metrics {
    /// Records the wait of each claimed try.
    pub(crate) fn claimed<'a>(&self, claims: impl IntoIterator<Item = &'a Claim>) {
        for c in claims {
            if let Some(queued) = c.queued_at {
                self.scheduling_latency
                    .observe(seconds(c.started_at - queued));
            }
        }
    }

    /// Records how long a try ran.
    pub(crate) fn ended(&self, claim: &Claim, at: DateTime<Utc>) {
        self.task_duration.observe(seconds(at - claim.started_at));
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    (d.num_microseconds().unwrap_or(0) as f64 / 1e6).max(0.0)
}
