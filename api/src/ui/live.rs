//! Live updates of the grid: one Server-Sent Events stream per page, open
//! only while a run it shows is active. The server reads the states of all
//! the page's active runs in one query a second and sends what changed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use weir_core::state::RunState;
use weir_core::store::{GridPage, GridRuns};

use super::Me;
use super::dag::GRID_RUNS;
use crate::AppState;

/// How often the stream reads the states.
const TICK: Duration = Duration::from_secs(1);
/// A stream ends after this long; the page's script opens a new one.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// `?runs=1,2,3`: the keys of the runs to follow.
#[derive(Debug, Deserialize)]
pub struct Follow {
    #[serde(default)]
    runs: String,
}

/// One change the page applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Change {
    /// The run's key.
    run: i64,
    /// The task, or `None` for the run's own state.
    task: Option<String>,
    /// The new state.
    state: String,
    /// The try number (cells).
    try_number: i64,
}

/// The last state of each followed run (task `None`) and task instance.
type Seen = HashMap<(i64, Option<String>), Change>;

fn snapshot(dag_id: &str, page: &GridPage) -> Seen {
    let mut seen = Seen::new();
    for r in page.runs.iter().filter(|r| r.dag_id == dag_id) {
        let change = Change {
            run: r.id,
            task: None,
            state: r.state.to_string(),
            try_number: 0,
        };
        seen.insert((r.id, None), change);
    }
    for c in &page.cells {
        if seen.contains_key(&(c.run_pk, None)) {
            let change = Change {
                run: c.run_pk,
                task: Some(c.task_id.clone()),
                state: c.state.to_string(),
                try_number: c.try_number,
            };
            seen.insert((c.run_pk, Some(c.task_id.clone())), change);
        }
    }
    seen
}

fn changes(before: &Seen, now: &Seen) -> Vec<Change> {
    let mut out: Vec<Change> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(_, v)| v.clone())
        .collect();
    out.sort_by(|a, b| (a.run, &a.task).cmp(&(b.run, &b.task)));
    out
}

fn all_finished(seen: &Seen) -> bool {
    seen.values()
        .filter(|c| c.task.is_none())
        .all(|c| c.state.parse::<RunState>().is_ok_and(RunState::is_finished))
}

struct Loop {
    state: AppState,
    dag_id: String,
    keys: Vec<i64>,
    seen: Option<Seen>,
    started: tokio::time::Instant,
    done: bool,
}

/// `GET /dags/{dag_id}/events?runs=…`: `change` events with a JSON list of
/// [`Change`]s, then `end` once every followed run has ended.
pub async fn grid_events(
    State(state): State<AppState>,
    _: Me,
    Path(dag_id): Path<String>,
    Query(f): Query<Follow>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let keys: Vec<i64> = f
        .runs
        .split(',')
        .filter_map(|k| k.trim().parse().ok())
        .take(usize::try_from(GRID_RUNS).unwrap_or(25))
        .collect();
    let start = Loop {
        state,
        dag_id,
        keys,
        seen: None,
        started: tokio::time::Instant::now(),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut l| async move {
        if l.done {
            return None;
        }
        let closing = l.state.closing.clone();
        loop {
            if l.seen.is_some() {
                tokio::select! {
                    () = closing.cancelled() => return None,
                    () = tokio::time::sleep(TICK) => {}
                }
            }
            if l.started.elapsed() > MAX_AGE {
                return None;
            }
            let page = match l
                .state
                .scheduler
                .store()
                .grid(&GridRuns::Keys(l.keys.clone()))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("grid events: {e}");
                    continue;
                }
            };
            let now = snapshot(&l.dag_id, &page);
            let before = l.seen.replace(now.clone()).unwrap_or_default();
            let list = changes(&before, &now);
            if all_finished(&now) {
                l.done = true;
                let data = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
                return Some((Ok(Event::default().event("end").data(data)), l));
            }
            if !list.is_empty() {
                let data = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
                return Some((Ok(Event::default().event("change").data(data)), l));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(run, task, "state" or "state:try")` items.
    fn seen(items: &[(i64, Option<&str>, &str)]) -> Seen {
        items
            .iter()
            .map(|(r, t, s)| {
                let (state, try_number) = s.split_once(':').unwrap_or((s, "0"));
                let change = Change {
                    run: *r,
                    task: t.map(str::to_owned),
                    state: state.to_owned(),
                    try_number: try_number.parse().unwrap_or(0),
                };
                ((*r, t.map(str::to_owned)), change)
            })
            .collect()
    }

    #[test]
    fn only_what_changed_is_sent() {
        let before = seen(&[(1, None, "running"), (1, Some("a"), "running:1")]);
        let now = seen(&[(1, None, "running"), (1, Some("a"), "success:1")]);
        assert_eq!(
            changes(&before, &now),
            vec![Change {
                run: 1,
                task: Some("a".into()),
                state: "success".into(),
                try_number: 1
            }]
        );
        assert!(!all_finished(&now));
        assert!(all_finished(&seen(&[(1, None, "failed")])));
    }
}
