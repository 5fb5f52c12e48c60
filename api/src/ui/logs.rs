//! The log viewer: the tail of a try's log first (a 50 MB log stays light),
//! earlier parts on demand, a live follow of a running try over Server-Sent
//! Events, a selector for earlier tries, and the download of the whole file.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use weir_core::store::{Store, TryRecord};

use super::{Me, PageError, PageResult, ansi};
use crate::AppState;
use crate::try_log::TryLog;

/// How much of a log a page or a step shows at once.
pub const PIECE: u64 = 256 * 1024;
/// How often a followed log is read.
const TICK: Duration = Duration::from_millis(500);

/// Which try and which part.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// The try (default: the newest).
    #[serde(rename = "try")]
    try_number: Option<i64>,
    /// Show what comes before this byte offset.
    before: Option<u64>,
    /// Follow from this byte offset.
    from: Option<u64>,
    /// The mapped instance (default -1: the task's own).
    map_index: Option<i64>,
}

impl LogQuery {
    fn map_index(&self) -> i64 {
        self.map_index.unwrap_or(-1)
    }
}

type TaskPath = Path<(String, String, String)>;

/// A try of a task instance, the instance's other tries, and its log.
struct ChosenTry {
    tries: Vec<TryRecord>,
    chosen: TryRecord,
    log: TryLog,
}

/// Try `try_number` (default: the newest) of the task instance `key` at `map_index`.
async fn find_try(
    state: &AppState,
    (dag_id, run_id, task_id): &(String, String, String),
    try_number: Option<i64>,
    map_index: i64,
) -> Result<ChosenTry, PageError> {
    let store = state.scheduler.store();
    let ti = store
        .get_mapped_instance(dag_id, run_id, task_id, map_index)
        .await?;
    let tries = store.list_tries(&ti.id).await?;
    let chosen = match try_number {
        Some(n) => tries.iter().find(|t| t.try_number == n),
        None => tries.last(),
    }
    .cloned()
    .ok_or_else(|| {
        PageError::not_found(match try_number {
            Some(n) => format!("task `{task_id}` of run `{run_id}` has no try {n}"),
            None => format!("task `{task_id}` of run `{run_id}` has not run yet"),
        })
    })?;
    Ok(ChosenTry {
        log: TryLog::find(&state.logs_dir, &chosen.log_path, &ti.id, chosen.try_number).await,
        tries,
        chosen,
    })
}

/// Where a piece of a log may begin and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Move the start forward to a line start (unless it is 0): a tail or an
    /// earlier piece.
    AtLines,
    /// Start exactly where asked and end after the last whole line: the next
    /// piece of a running try's log.
    WholeLines,
    /// Start exactly where asked and read to the end.
    Exact,
}

/// Reads `[start, end)` of a log as cut by `cut`; answers the text and the
/// byte range it covers. A missing file reads as empty.
async fn read_range(
    store: &dyn Store,
    log: &TryLog,
    start: u64,
    end: Option<u64>,
    cut: Cut,
) -> Result<(String, u64, u64), PageError> {
    let len = log.len(store).await.map_err(|e| PageError::internal(&e))?;
    let end = end.unwrap_or(len).min(len);
    let start = start.min(end);
    let mut buf = log
        .read(store, start, end - start)
        .await
        .map_err(|e| PageError::internal(&e))?;
    let mut from = start;
    match cut {
        Cut::AtLines if start > 0 => {
            if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                buf.drain(..=i);
                from = start + i as u64 + 1;
            }
        }
        Cut::WholeLines => match buf.iter().rposition(|b| *b == b'\n') {
            Some(i) => buf.truncate(i + 1),
            None => buf.clear(),
        },
        _ => {}
    }
    let to = from + buf.len() as u64;
    Ok((String::from_utf8_lossy(&buf).into_owned(), from, to))
}

/// The command a try ran, from the `weir: running …` line its log starts with
/// and the `weir: | …` lines that continue a script of several lines.
pub async fn command_of(state: &AppState, t: &TryRecord) -> Option<String> {
    let log = TryLog::find(&state.logs_dir, &t.log_path, &t.ti_id, t.try_number).await;
    let (text, _, _) = read_range(
        &**state.scheduler.store(),
        &log,
        0,
        Some(64 * 1024),
        Cut::Exact,
    )
    .await
    .ok()?;
    let mut lines = text.lines();
    let mut command = lines
        .by_ref()
        .find_map(|l| l.split_once("weir: running ").map(|(_, c)| c.to_owned()))?;
    for l in lines.map_while(|l| l.split_once("weir: | ").map(|(_, c)| c)) {
        command.push('\n');
        command.push_str(l);
    }
    Some(command)
}

#[derive(Serialize)]
struct TryTab {
    try_number: i64,
    state: String,
}

/// `…/tasks/{task_id}/log?try=N`: the tail of the log.
pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Path(key): TaskPath,
    Query(q): Query<LogQuery>,
) -> PageResult {
    let ChosenTry {
        tries,
        chosen: t,
        log,
    } = find_try(&state, &key, q.try_number, q.map_index()).await?;
    let store = &**state.scheduler.store();
    let end = match q.before {
        Some(b) => b,
        None => log.len(store).await.unwrap_or(0),
    };
    let (text, start, end) = read_range(
        store,
        &log,
        end.saturating_sub(PIECE),
        Some(end),
        Cut::AtLines,
    )
    .await?;
    let running = t.end_date.is_none();
    let (dag_id, run_id, task_id) = &key;
    let base = format!(
        "/dags/{}/runs/{}/tasks/{}",
        super::seg(dag_id),
        super::seg(run_id),
        super::seg(task_id)
    );
    // Every link of the page stays on the same mapped instance.
    let mapped = match q.map_index() {
        i if i >= 0 => format!("&map_index={i}"),
        _ => String::new(),
    };
    super::page(
        "log.html",
        &me,
        super::ctx! {
            dag_id => dag_id, run_id => run_id, task_id => task_id, base => &base,
            try_number => t.try_number, state => t.state.to_string(), running => running,
            tries => tries.iter().map(|t| TryTab { try_number: t.try_number, state: t.state.to_string() }).collect::<Vec<_>>(),
            html => ansi::to_html(&text), start => start, end => end,
            follow => (running && q.before.is_none()).then(|| format!("{base}/log/follow?try={}&from={end}{mapped}", t.try_number)),
            mapped => &mapped, map_index => (q.map_index() >= 0).then(|| q.map_index()),
        },
    )
}

/// A piece of a log, as HTML.
#[derive(Serialize)]
struct Piece {
    html: String,
    start: u64,
}

/// `…/log/earlier?try=N&before=OFFSET`: the piece before `before`, as JSON
/// `{html, start}` (start 0: the beginning was reached).
pub async fn earlier(
    State(state): State<AppState>,
    _: Me,
    Path(key): TaskPath,
    Query(q): Query<LogQuery>,
) -> PageResult<Response> {
    let log = find_try(&state, &key, q.try_number, q.map_index()).await?;
    let before = q.before.unwrap_or(0);
    let (text, start, _) = read_range(
        &**state.scheduler.store(),
        &log.log,
        before.saturating_sub(PIECE),
        Some(before),
        Cut::AtLines,
    )
    .await?;
    Ok(axum::Json(Piece {
        html: ansi::to_html(&text),
        start,
    })
    .into_response())
}

struct Follow {
    state: AppState,
    log: TryLog,
    /// The followed try's task instance and number.
    ti_id: String,
    try_number: i64,
    offset: u64,
    done: bool,
}

/// `…/log/follow?try=N&from=OFFSET`: `append` events with the HTML of each
/// new piece of the log (their id is the offset read up to, so a browser
/// that reconnects goes on where it was), then `end` with the try's state
/// when it has ended and all is read.
pub async fn follow(
    State(state): State<AppState>,
    _: Me,
    headers: axum::http::HeaderMap,
    Path(key): TaskPath,
    Query(q): Query<LogQuery>,
) -> PageResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let log = find_try(&state, &key, q.try_number, q.map_index()).await?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = Follow {
        log: log.log,
        state,
        ti_id: log.chosen.ti_id,
        try_number: log.chosen.try_number,
        offset: resumed.or(q.from).unwrap_or(0),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        let closing = f.state.closing.clone();
        loop {
            let tries = f.state.scheduler.store().list_tries(&f.ti_id).await;
            let now = tries.ok().and_then(|all| {
                all.into_iter()
                    .find(|t| t.try_number == f.try_number)
                    .map(|t| (t.end_date.is_some(), t.state.to_string()))
            });
            let (ended, state) = now.unwrap_or((true, "ended".into()));
            let cut = if ended { Cut::Exact } else { Cut::WholeLines };
            let (text, _, to) =
                read_range(&**f.state.scheduler.store(), &f.log, f.offset, None, cut)
                    .await
                    .unwrap_or_default();
            f.offset = to.max(f.offset);
            if !text.is_empty() {
                let event = Event::default()
                    .event("append")
                    .id(f.offset.to_string())
                    .data(ansi::to_html(&text));
                return Some((Ok(event), f));
            }
            if ended {
                f.done = true;
                // The try's last state (an event without data would not reach the page).
                return Some((Ok(Event::default().event("end").data(state)), f));
            }
            tokio::select! {
                () = closing.cancelled() => return None,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `…/log/download?try=N`: the whole log file.
pub async fn download(
    State(state): State<AppState>,
    _: Me,
    Path(key): TaskPath,
    Query(q): Query<LogQuery>,
) -> PageResult<Response> {
    let log = find_try(&state, &key, q.try_number, q.map_index()).await?;
    let name = format!(
        "{}__{}__{}__{}.log",
        key.0, key.1, key.2, log.chosen.try_number
    )
    .replace(
        |c: char| !c.is_ascii_alphanumeric() && !"-_.".contains(c),
        "_",
    );
    let disposition = format!("attachment; filename=\"{name}\"");
    let body = match &log.log {
        TryLog::File(path) => match tokio::fs::File::open(path).await {
            Ok(f) => Body::from_stream(tokio_util::io::ReaderStream::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Body::empty(),
            Err(e) => return Err(PageError::internal(&e)),
        },
        pushed => {
            let store = &**state.scheduler.store();
            Body::from(
                pushed
                    .read(store, 0, u64::MAX)
                    .await
                    .map_err(|e| PageError::internal(&e))?,
            )
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
