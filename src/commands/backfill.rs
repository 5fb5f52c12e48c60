//! `weir backfill`: runs for every scheduled interval in a date range.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use weir_core::config::Config;
use weir_core::state::RunState;

/// Creates the runs of a range and follows them until they end (unless
/// `no_wait`), keeping at most `max_active_runs` of them active when given.
pub async fn run(
    config: &Config,
    dag_id: &str,
    from: &str,
    to: &str,
    max_active_runs: Option<usize>,
    rerun_failed: bool,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    super::dags::sync(&sched, config).await?;
    let tz = sched.latest_dag(dag_id).await?.1.timezone;
    let from = parse_bound(from, tz, false).context("--from")?;
    let to = parse_bound(to, tz, true).context("--to")?;
    let mut first = true;
    loop {
        let limit = match max_active_runs {
            Some(n) => {
                let (runs, _) = sched
                    .store()
                    .list_runs(&weir_core::store::RunFilter {
                        dag_id: Some(dag_id.to_owned()),
                        states: vec![RunState::Queued, RunState::Running],
                        ..Default::default()
                    })
                    .await?;
                n.saturating_sub(runs.len())
            }
            None => usize::MAX,
        };
        let report = sched
            .backfill(
                dag_id,
                from,
                to,
                rerun_failed && first,
                limit,
                &super::actor(),
            )
            .await?;
        if first {
            println!(
                "backfill {dag_id} from {} to {}: {} interval(s), {} new run(s), {} re-run",
                from.to_rfc3339(),
                to.to_rfc3339(),
                report.intervals,
                report.created,
                report.rerun
            );
        }
        first = false;
        let count = |s: RunState| report.runs.iter().filter(|r| r.state == s).count();
        let (done, failed) = (
            count(RunState::Success) + count(RunState::Failed),
            count(RunState::Failed),
        );
        println!(
            "{done}/{} done ({} running, {} queued, {failed} failed)",
            report.intervals,
            count(RunState::Running),
            count(RunState::Queued) + report.intervals - report.runs.len()
        );
        if no_wait {
            return Ok(ExitCode::SUCCESS);
        }
        if done == report.intervals {
            return Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A date (`2026-01-01`: midnight in the DAG's time zone, or the end of that
/// day for `--to`) or an RFC 3339 time.
fn parse_bound(
    text: &str,
    tz: chrono_tz::Tz,
    end_of_day: bool,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let naive = if end_of_day {
            d.and_hms_opt(23, 59, 59).context("invalid time")?
        } else {
            d.and_time(chrono::NaiveTime::MIN)
        };
        let local = tz
            .from_local_datetime(&naive)
            .earliest()
            .context("the time does not exist in the DAG's time zone")?;
        return Ok(local.with_timezone(&chrono::Utc));
    }
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("`{text}` is not YYYY-MM-DD or RFC 3339"))?
        .with_timezone(&chrono::Utc))
}
