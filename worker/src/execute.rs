//! Executing one claimed try: render its templates, run it, log it, and say
//! how it ended.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use weir_core::dag::TaskKind;
use weir_core::scheduler::{Ended, Outcome};

use crate::context::TryContext;
use crate::lineage::{self, Trail};
use crate::logs::LogWriter;
use crate::shell::{self, ShellEnd, ShellSpec};

/// Runs the try described by `ctx`, writing its log. Processes it starts
/// carry `WEIR_WORKER=<worker>` (see [`shell::kill_orphans`]). With lineage
/// on, an OpenLineage event is sent when it starts and when it ends.
pub async fn execute(
    ctx: &TryContext,
    env: &minijinja::Environment<'static>,
    log: &mut LogWriter,
    stop: &CancellationToken,
    shared: &Shared,
) -> Ended {
    let lineage = &shared.lineage;
    let task = ctx.dag.tasks.get(ctx.claim.task_id.as_str());
    let (Some(task), true) = (task, lineage.is_on()) else {
        return run_try(ctx, env, log, stop, shared, &Trail::default()).await;
    };
    let home = &shared.resources.home;
    let ns = lineage.namespace();
    lineage.send(lineage::start_event(
        ns,
        ctx,
        task,
        home,
        chrono::Utc::now(),
    ));
    let trail = Trail::default();
    let ended = run_try(ctx, env, log, stop, shared, &trail).await;
    let seen = trail.seen();
    if let Some(e) = lineage::end_event(ns, ctx, task, home, &ended, &seen, chrono::Utc::now()) {
        lineage.send(e);
    }
    ended
}

async fn run_try(
    ctx: &TryContext,
    env: &minijinja::Environment<'static>,
    log: &mut LogWriter,
    stop: &CancellationToken,
    shared: &Shared,
    trail: &Trail,
) -> Ended {
    let worker = shared.worker.as_str();
    let merged;
    let resources = if ctx.connections.is_empty() {
        &shared.resources
    } else {
        merged = shared.resources.with_stored(&ctx.connections);
        &merged
    };
    let Some(task) = ctx.dag.tasks.get(ctx.claim.task_id.as_str()) else {
        return Ended::failed(format!(
            "task `{}` is not in the run's DAG version",
            ctx.claim.task_id
        ));
    };
    let mapped = if ctx.claim.map_index < 0 {
        String::new()
    } else {
        format!("[{}]", ctx.claim.map_index)
    };
    let _ = log
        .line(&format!(
            "weir: try {} of {}.{}{mapped} (run {}) on worker {worker}",
            ctx.claim.try_number, ctx.claim.dag_id, ctx.claim.task_id, ctx.claim.run_id
        ))
        .await;
    let values = ctx.values();
    let silent: Vec<&str> = task
        .reads_outputs
        .iter()
        .map(|t| t.as_str())
        .filter(|t| !ctx.outputs.contains_key(*t))
        .collect();
    let render = |what: &str, src: &str| -> Result<String, String> {
        weir_core::template::render(env, src, &values).map_err(|e| {
            if silent.is_empty() || !e.message.contains("undefined") {
                format!("{what}: {e}")
            } else {
                format!(
                    "{what}: {e} (no output in this run from: {})",
                    silent.join(", ")
                )
            }
        })
    };
    // A mapped task's own try finds its items; its instances do the work.
    if let Some(expand) = &task.expand
        && ctx.claim.map_index < 0
    {
        let ended = match crate::mapping::expand(expand, env, &values, &silent) {
            Ok((ended, count)) => {
                let _ = log
                    .line(&format!("weir: expanding over {count} items"))
                    .await;
                ended
            }
            Err(e) => Ended::failed(e),
        };
        return report(log, ended).await;
    }
    let result = match &task.kind {
        TaskKind::Shell { command, last_line } => {
            let argv = match shell::argv(command, |s| render("command", s)) {
                Ok(a) => a,
                Err(e) => return report(log, Ended::failed(e)).await,
            };
            // Named after this process and the try (a try number is never
            // used twice): no earlier file can be there.
            let output_file = output_file(&ctx.claim);
            let mut vars = ctx.env();
            vars.push((shell::WORKER_MARKER.to_owned(), worker.to_owned()));
            vars.push(("WEIR_OUTPUT".to_owned(), output_file.display().to_string()));
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
            // A script of several lines is logged a line at a time, each
            // marked, so every log line has its time stamp.
            let shown = spec.argv.join(" ");
            let mut lines = shown.trim_end().lines();
            let _ = log
                .line(&format!(
                    "weir: running {}",
                    lines.next().unwrap_or_default()
                ))
                .await;
            for l in lines {
                let _ = log.line(&format!("weir: | {l}")).await;
            }
            let mut pid = None;
            let ran = shell::run(&spec, log, stop, |p| pid = Some(i64::from(p))).await;
            let written = read_output_file(&output_file).await;
            let ended = Ended {
                pid,
                ..shell_result(ran.end)
            };
            if ended.outcome != Outcome::Success {
                ended
            } else {
                let published = match written {
                    Ok(Some(text)) => weir_core::outputs::check(&text)
                        .map(Some)
                        .map_err(|e| format!("$WEIR_OUTPUT ({}): {e}", output_file.display())),
                    Ok(None) if *last_line => ran
                        .last_stdout
                        .map(|l| weir_core::outputs::encode(&serde_json::Value::String(l)))
                        .transpose()
                        .map_err(|e| format!("output: last_line: {e}")),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                match published {
                    Ok(output) => Ended { output, ..ended },
                    Err(e) => Ended {
                        pid,
                        ..Ended::failed(e)
                    },
                }
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
            let work = crate::data::run(ctx, task, resources, trail, log, &render_dyn);
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
            match outcome.and_then(|v| weir_core::outputs::encode(&v).map_err(|e| e.to_string())) {
                Ok(output) => Ended {
                    output: Some(output),
                    ..Ended::success()
                },
                Err(e) => Ended::failed(e),
            }
        }
    };
    // Mapped tasks downstream expand over this output: one they cannot
    // expand over fails this try, which made it.
    let result = match crate::mapping::check_feeds(ctx, task, env, &result) {
        Ok(()) => result,
        Err(e) => Ended {
            pid: result.pid,
            exit_code: result.exit_code,
            ..Ended::failed(e)
        },
    };
    report(log, result).await
}

/// The file a shell try may write its output to (`$WEIR_OUTPUT`): one per
/// try and per process, in the temporary folder.
fn output_file(claim: &weir_core::store::Claim) -> std::path::PathBuf {
    let safe: String = claim
        .ti_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!(
        "weir-output-{}-{safe}-{}.json",
        std::process::id(),
        claim.try_number
    ))
}

/// The text a try wrote to its output file, then removes the file; `None`
/// when it wrote nothing. A file past the size limit is not read in full.
/// One trip to the blocking pool.
async fn read_output_file(path: &Path) -> Result<Option<String>, String> {
    let at = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || take_output_file(&at))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    read.map_err(|e| format!("$WEIR_OUTPUT ({}): {e}", path.display()))
}

/// [`read_output_file`]'s blocking part.
fn take_output_file(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let read = if size > weir_core::outputs::MAX_BYTES {
        Err(weir_core::outputs::OutputError::TooLarge(size).to_string())
    } else {
        std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| "the output is not UTF-8 text".to_owned())
            })
    };
    let _ = std::fs::remove_file(path);
    match read {
        Ok(text) if text.trim().is_empty() => Ok(None),
        other => other.map(Some),
    }
}

fn shell_result(end: ShellEnd) -> Ended {
    match end {
        ShellEnd::Exited(0) => Ended {
            exit_code: Some(0),
            ..Ended::success()
        },
        ShellEnd::Exited(code) => Ended {
            exit_code: Some(i64::from(code)),
            ..Ended::failed(format!("the command exited with code {code}"))
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
    if let Some(o) = &r.output {
        let _ = log
            .line(&format!("weir: published an output ({} bytes)", o.len()))
            .await;
    }
    let line = match (&r.outcome, &r.error) {
        (Outcome::Success, _) => "weir: the try succeeded".to_owned(),
        (_, Some(e)) => format!("weir: the try failed: {e}"),
        (Outcome::Reschedule(_), None) => "weir: the poke ended; the sensor waits".to_owned(),
        (Outcome::Expanded(n), _) => format!("weir: the task expanded into {n} mapped instances"),
        (o, None) => format!("weir: the try ended: {o:?}"),
    };
    let _ = log.line(&line).await;
    // The try's log is whole before the try is reported; a try whose log
    // could not be written does not pass for a success nobody can read.
    match log.flush().await {
        Ok(()) => r,
        Err(e) => {
            let why = format!("cannot write the log {}: {e}", log.path().display());
            tracing::warn!("{why}");
            match r.outcome {
                Outcome::Success => Ended {
                    pid: r.pid,
                    exit_code: r.exit_code,
                    ..Ended::failed(why)
                },
                _ => r,
            }
        }
    }
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
    /// Where OpenLineage events go.
    pub lineage: crate::lineage::Emitter,
}
