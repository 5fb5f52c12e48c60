//! Data intervals of time-scheduled DAGs (Airflow's semantics): a run for
//! `[start, end)` is due once `end` has passed; its logical date is `start`.

use chrono::{DateTime, Utc};

use crate::dag::{CronExpr, Dag, Schedule};

/// The first interval start at or after `start_date` (or the epoch of the
/// schedule when there is none).
fn first_start(cron: &CronExpr, dag: &Dag) -> Option<DateTime<Utc>> {
    let from = dag.start_date?;
    cron.next_after(from - chrono::Duration::seconds(1), dag.timezone)
}

/// The interval `[start, end)` that `at` falls in, for a cron-scheduled DAG.
pub fn containing(dag: &Dag, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let Schedule::Cron(cron) = &dag.schedule else {
        return None;
    };
    let start = cron.last_at_or_before(at, dag.timezone)?;
    let end = cron.next_after(start, dag.timezone)?;
    Some((start, end))
}

/// The intervals due at `now` that have no run yet, oldest first, at most `room`.
/// `last` is the logical date of the latest scheduled run.
pub fn due(
    dag: &Dag,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    room: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    if room == 0 {
        return Vec::new();
    }
    match &dag.schedule {
        Schedule::Once => match (dag.start_date, last) {
            (Some(start), None) if start <= now => vec![(start, start)],
            _ => Vec::new(),
        },
        Schedule::Cron(cron) => cron_due(dag, cron, last, now, room),
        Schedule::Manual | Schedule::Datasets(_) => Vec::new(),
    }
}

fn cron_due(
    dag: &Dag,
    cron: &CronExpr,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    room: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let tz = dag.timezone;
    let allowed = |start: DateTime<Utc>| dag.end_date.is_none_or(|e| start <= e);
    // The newest interval that has ended.
    let Some(latest_end) = cron.last_at_or_before(now, tz) else {
        return Vec::new();
    };
    let Some(latest_start) = cron.last_at_or_before(latest_end - chrono::Duration::seconds(1), tz)
    else {
        return Vec::new();
    };
    let floor = first_start(cron, dag);
    let after_last = |start: DateTime<Utc>| last.is_none_or(|l| start > l);
    let after_floor = |start: DateTime<Utc>| floor.is_none_or(|f| start >= f);
    if !dag.catchup {
        return if after_last(latest_start) && after_floor(latest_start) && allowed(latest_start) {
            vec![(latest_start, latest_end)]
        } else {
            Vec::new()
        };
    }
    // Catch up from the interval after the last run (or the first one) to the newest.
    let mut start = match (last, floor) {
        (Some(l), _) => match cron.next_after(l, tz) {
            Some(s) => s,
            None => return Vec::new(),
        },
        (None, Some(f)) => f,
        (None, None) => latest_start,
    };
    let mut out = Vec::new();
    while start <= latest_start && out.len() < room && allowed(start) {
        let Some(end) = cron.next_after(start, tz) else {
            break;
        };
        out.push((start, end));
        start = end;
    }
    out
}

/// Every interval whose start (logical date) lies in `[from, to]`, both
/// included, oldest first (for backfills). `None` for DAGs without a time schedule.
pub fn between(
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    match &dag.schedule {
        Schedule::Cron(cron) => {
            let mut out = Vec::new();
            let mut start = cron.next_after(from - chrono::Duration::seconds(1), dag.timezone)?;
            while start <= to && out.len() < 100_000 {
                let end = cron.next_after(start, dag.timezone)?;
                out.push((start, end));
                start = end;
            }
            Some(out)
        }
        Schedule::Once => Some(
            dag.start_date
                .filter(|s| *s >= from && *s <= to)
                .map(|s| vec![(s, s)])
                .unwrap_or_default(),
        ),
        Schedule::Manual | Schedule::Datasets(_) => None,
    }
}

/// When the next interval after `now` ends (the next time a scheduled run can
/// be due); `None` when no time-based run can come.
pub fn next_end(dag: &Dag, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &dag.schedule {
        Schedule::Cron(cron) => cron.next_after(now, dag.timezone),
        Schedule::Once => dag.start_date.filter(|s| *s > now),
        Schedule::Manual | Schedule::Datasets(_) => Some(DateTime::<Utc>::MAX_UTC),
    }
}
