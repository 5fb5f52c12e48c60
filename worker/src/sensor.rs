//! Sensors: one poke checks the condition; not met yet means "poke again in
//! `poke_interval`" (the task waits in `up_for_reschedule` without holding a
//! worker slot) until `timeout` has passed since the first poke.

use std::path::Path;

use chrono::Utc;
use sqlx::{Connection as _, Row};
use weir_core::dag::{Duration, SensorCondition};
use weir_core::scheduler::Ended;
use weir_core::state::TaskState;
use weir_core::store::Backend;

use crate::context::TryContext;
use crate::logs::LogWriter;
use crate::resources::{Connection, Resources};

/// How long a sensor waits when its task sets no `timeout` (Airflow's default: 7 days).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// What one poke found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poke {
    /// The condition is met: the task succeeds.
    Met,
    /// Not yet: poke again at this time, without holding a slot.
    NotYet(chrono::DateTime<Utc>),
    /// The condition was not met within the sensor's timeout.
    TimedOut(Duration),
    /// The condition cannot be checked (bad glob, template, query, connection).
    Broken(String),
}

impl From<Poke> for Ended {
    fn from(poke: Poke) -> Ended {
        match poke {
            Poke::Met => Ended::success(),
            Poke::NotYet(at) => Ended::reschedule(at),
            Poke::TimedOut(limit) => Ended::failed(format!(
                "the sensor timed out: its condition was not met within {limit}"
            )),
            Poke::Broken(e) => Ended::failed(e),
        }
    }
}

/// One poke.
pub async fn poke(
    ctx: &TryContext,
    condition: &SensorCondition,
    poke_interval: Duration,
    timeout: Option<Duration>,
    render: &(dyn Fn(&str, &str) -> Result<String, String> + Sync),
    senv: &Resources,
    log: &mut LogWriter,
) -> Poke {
    let met = match check(ctx, condition, render, senv).await {
        Ok(met) => met,
        Err(e) => return Poke::Broken(e),
    };
    if met {
        let _ = log.line("weir: the sensor's condition is met").await;
        return Poke::Met;
    }
    let now = senv.clock.now();
    let first = first_poke(ctx, &*senv.store).await.unwrap_or(now);
    let limit = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let waited = now - first;
    if waited.num_seconds() >= i64::try_from(limit.as_secs()).unwrap_or(i64::MAX) {
        return Poke::TimedOut(limit);
    }
    let next =
        now + chrono::Duration::seconds(i64::try_from(poke_interval.as_secs()).unwrap_or(60));
    let _ = log
        .line(&format!(
            "weir: not yet; next poke at {}",
            next.to_rfc3339()
        ))
        .await;
    Poke::NotYet(next)
}

async fn check(
    ctx: &TryContext,
    condition: &SensorCondition,
    render: &(dyn Fn(&str, &str) -> Result<String, String> + Sync),
    senv: &Resources,
) -> Result<bool, String> {
    match condition {
        SensorCondition::File(pattern) => {
            let rendered = render("file", pattern)?;
            let folder = crate::shell::dag_folder(Path::new(&ctx.dag.fileloc));
            let full = folder.join(rendered).display().to_string();
            tokio::task::spawn_blocking(move || match glob::glob(&full) {
                Ok(mut paths) => Ok(paths.any(|p| p.is_ok())),
                Err(e) => Err(format!("file: invalid glob `{full}`: {e}")),
            })
            .await
            .map_err(|e| format!("file: {e}"))?
        }
        SensorCondition::Dataset(ds) => {
            let since = ctx.run.logical_date.unwrap_or(ctx.run.run_after);
            let latest = senv
                .store
                .latest_dataset_version(&ds.to_string())
                .await
                .map_err(|e| e.to_string())?;
            Ok(latest.is_some_and(|v| v.created_at > since))
        }
        SensorCondition::Sql { sql, connection } => {
            let query = render("sql", sql)?;
            let conn = senv.connection(connection).map_err(|e| e.to_string())?;
            truthy_first_cell(&conn, &query)
                .await
                .map_err(|e| format!("sql on `{connection}`: {e}"))
        }
    }
}

/// Runs `query` and tells whether its first cell is truthy (true, a non-zero
/// number, or text other than empty, `0`, `false`, `f`, `no`).
async fn truthy_first_cell(conn: &Connection, query: &str) -> Result<bool, String> {
    fn text_truthy(s: &str) -> bool {
        !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "f" | "no"
        )
    }
    // The same steps on either kind of connection.
    macro_rules! first_cell_truthy {
        ($connection:ty) => {{
            let mut conn = <$connection>::connect(&conn.url)
                .await
                .map_err(|e| e.to_string())?;
            let row = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.is_some_and(|r| {
                r.try_get::<bool, _>(0)
                    .or_else(|_| r.try_get::<i64, _>(0).map(|n| n != 0))
                    .or_else(|_| r.try_get::<i32, _>(0).map(|n| n != 0))
                    .or_else(|_| r.try_get::<String, _>(0).map(|s| text_truthy(&s)))
                    .unwrap_or(false)
            }))
        }};
    }
    match conn.backend {
        Backend::Sqlite => first_cell_truthy!(sqlx::SqliteConnection),
        Backend::Postgres => first_cell_truthy!(sqlx::PgConnection),
    }
}

/// When the current run of pokes began: the start of the earliest try in the
/// unbroken line of rescheduled tries before this one.
async fn first_poke(
    ctx: &TryContext,
    store: &dyn crate::catalog::Catalog,
) -> Option<chrono::DateTime<Utc>> {
    let tries = store.list_tries(&ctx.claim.ti_id).await.ok()?;
    let mut first = tries
        .iter()
        .find(|t| t.try_number == ctx.claim.try_number)?
        .start_date;
    for t in tries
        .iter()
        .rev()
        .filter(|t| t.try_number < ctx.claim.try_number)
    {
        if t.state != TaskState::UpForReschedule {
            break;
        }
        first = t.start_date;
    }
    Some(first)
}
