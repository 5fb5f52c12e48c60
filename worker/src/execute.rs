//! Executing one claimed try: render its templates, run it, log it, and say
//! how it ended.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use weir_core::dag::TaskKind;
use weir_core::scheduler::{Ended, Outcome};

use crate::context::TryContext;
use crate::logs::LogWriter;
use crate::shell::{self, ShellEnd, ShellSpec};

/// Runs the try described by `ctx`, writing its log. Processes it starts
/// carry `WEIR_WORKER=<worker>` (see [`shell::kill_orphans`]).
pub async fn execute(
    ctx: &TryContext,
    env: &minijinja::Environment<'static>,
    log: &mut LogWriter,
    stop: &CancellationToken,
    shared: &Shared,
) -> Ended {
    let (worker, resources) = (shared.worker.as_str(), &shared.resources);
    let Some(task) = ctx.dag.tasks.get(ctx.claim.task_id.as_str()) else {
        return Ended::failed(format!(
            "task `{}` is not in the run's DAG version",
            ctx.claim.task_id
        ));
    };
    let _ = log
        .line(&format!(
            "weir: try {} of {}.{} (run {}) on worker {worker}",
            ctx.claim.try_number, ctx.claim.dag_id, ctx.claim.task_id, ctx.claim.run_id
        ))
        .await;
    let values = ctx.values();
    let render = |what: &str, src: &str| -> Result<String, String> {
        weir_core::template::render(env, src, &values).map_err(|e| format!("{what}: {e}"))
    };
    let result = match &task.kind {
        TaskKind::Shell { command } => {
            let argv = match shell::argv(command, |s| render("command", s)) {
                Ok(a) => a,
                Err(e) => return report(log, Ended::failed(e)).await,
            };
            let mut vars = ctx.env();
            vars.push((shell::WORKER_MARKER.to_owned(), worker.to_owned()));
            for (k, v) in &task.env {
                match render(&format!("env {k}"), v) {
                    Ok(v) => vars.push((k.clone(), v)),
                    Err(e) => return report(log, Ended::failed(e)).await,
                }
            }
            let spec = ShellSpec {
                argv,
                env: vars,
                cwd: shell::dag_folder(Path::new(&ctx.dag.fileloc)),
                timeout: task.timeout.map(|t| t.to_std()),
            };
            let _ = log
                .line(&format!("weir: running {}", spec.argv.join(" ")))
                .await;
            let mut pid = None;
            let end = shell::run(&spec, log, stop, |p| pid = Some(i64::from(p))).await;
            Ended {
                pid,
                ..shell_result(end)
            }
        }
        TaskKind::Sensor {
            condition,
            poke_interval,
        } => {
            let render_ref = &render;
            let render_dyn = |what: &str, src: &str| render_ref(what, src);
            crate::sensor::poke(
                ctx,
                condition,
                *poke_interval,
                task.timeout,
                &render_dyn,
                resources,
                log,
            )
            .await
            .into()
        }
        _ => {
            if let Err(e) = resources.check_data_folder().await {
                return report(log, Ended::failed(e)).await;
            }
            let render_ref = &render;
            let render_dyn = |what: &str, src: &str| render_ref(what, src);
            let work = crate::data::run(ctx, task, resources, log, &render_dyn);
            let outcome = match task.timeout {
                Some(t) => tokio::select! {
                    r = work => r.map_err(|e| e.to_string()),
                    _ = tokio::time::sleep(t.to_std()) => Err(format!("timed out after {}s", t.as_secs())),
                    _ = stop.cancelled() => Err("stopped: the worker shut down or the task instance was cleared or marked".into()),
                },
                None => tokio::select! {
                    r = work => r.map_err(|e| e.to_string()),
                    _ = stop.cancelled() => Err("stopped: the worker shut down or the task instance was cleared or marked".into()),
                },
            };
            match outcome {
                Ok(()) => Ended::success(),
                Err(e) => Ended::failed(e),
            }
        }
    };
    report(log, result).await
}

fn shell_result(end: ShellEnd) -> Ended {
    match end {
        ShellEnd::Exited(0) => Ended {
            outcome: Outcome::Success,
            exit_code: Some(0),
            error: None,
            pid: None,
        },
        ShellEnd::Exited(code) => Ended {
            outcome: Outcome::Failed,
            exit_code: Some(i64::from(code)),
            error: Some(format!("the command exited with code {code}")),
            pid: None,
        },
        ShellEnd::Signalled(sig) => {
            Ended::failed(format!("the command was killed by signal {sig}"))
        }
        ShellEnd::TimedOut(t) => Ended::failed(format!(
            "timed out after {}s; the process group was killed",
            t.as_secs()
        )),
        ShellEnd::Stopped => Ended::failed(
            "stopped: the worker shut down or the task instance was cleared or marked",
        ),
        ShellEnd::SpawnFailed(e) => Ended::failed(e),
    }
}

async fn report(log: &mut LogWriter, r: Ended) -> Ended {
    let line = match (&r.outcome, &r.error) {
        (Outcome::Success, _) => "weir: the try succeeded".to_owned(),
        (_, Some(e)) => format!("weir: the try failed: {e}"),
        (Outcome::Reschedule(_), None) => "weir: the poke ended; the sensor waits".to_owned(),
        (o, None) => format!("weir: the try ended: {o:?}"),
    };
    let _ = log.line(&line).await;
    // The try's log is whole before the try is reported.
    if let Err(e) = log.flush().await {
        tracing::warn!(log = %log.path().display(), "writing the log failed: {e}");
    }
    r
}

/// Shared, read-only things every try of a worker uses.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Where logs go.
    pub logs_dir: std::path::PathBuf,
    /// Secrets and their masking.
    pub secrets: Arc<crate::secrets::Secrets>,
    /// This worker's name (the orphan marker of its processes).
    pub worker: String,
    /// What sensors and data tasks reach: the catalog, connections, the data folder.
    pub resources: crate::resources::Resources,
}
