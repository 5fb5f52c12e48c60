//! Running a command as a task: `sh -c` for a string, exec for a list, in a
//! process group of its own so a timeout or a stop kills the whole tree.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use crate::logs::LogWriter;

/// What to run.
#[derive(Debug, Clone)]
pub struct ShellSpec {
    /// Program and arguments (`["sh", "-c", command]` for a string).
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The working folder (the DAG file's folder).
    pub cwd: std::path::PathBuf,
    /// Kill the process group after this long.
    pub timeout: Option<Duration>,
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEnd {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signalled(i32),
    /// It ran past its timeout and was killed.
    TimedOut(Duration),
    /// It was stopped (worker shutting down, or the try was cleared or marked).
    Stopped,
    /// It could not start.
    SpawnFailed(String),
}

/// A finished process: how it ended and the last non-empty line it wrote
/// to stdout (what `output: last_line` publishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// How it ended.
    pub end: ShellEnd,
    /// Its last non-empty stdout line.
    pub last_stdout: Option<String>,
}

/// How long a stopped process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// Runs `spec`, streaming its output into `log`; `on_start` gets the pid.
pub async fn run(
    spec: &ShellSpec,
    log: &mut LogWriter,
    stop: &CancellationToken,
    on_start: impl FnOnce(u32),
) -> Ran {
    let mut last_stdout = None;
    let end = run_process(spec, log, stop, on_start, &mut last_stdout).await;
    Ran { end, last_stdout }
}

async fn run_process(
    spec: &ShellSpec,
    log: &mut LogWriter,
    stop: &CancellationToken,
    on_start: impl FnOnce(u32),
    last_stdout: &mut Option<String>,
) -> ShellEnd {
    let Some((program, args)) = spec.argv.split_first() else {
        return ShellEnd::SpawnFailed("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ShellEnd::SpawnFailed(format!("cannot start `{program}`: {e}")),
    };
    let Some(pid) = child.id() else {
        return ShellEnd::SpawnFailed("the process ended before it started".into());
    };
    on_start(pid);
    let mut output = Output {
        out: child.stdout.take().map(Stream::new),
        err: child.stderr.take().map(Stream::new),
    };
    let mut take = |(stdout, line): (bool, String)| {
        if stdout && !line.trim().is_empty() {
            *last_stdout = Some(line.clone());
        }
        line
    };
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let ended = loop {
        tokio::select! {
            line = output.next(), if output.is_open() => {
                if let Some(l) = line {
                    let _ = log.line(&take(l)).await;
                }
            }
            status = child.wait() => break match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => ShellEnd::Exited(code),
                    (None, Some(sig)) => ShellEnd::Signalled(sig),
                    (None, None) => ShellEnd::Exited(-1),
                },
                Err(e) => ShellEnd::SpawnFailed(format!("waiting for the process failed: {e}")),
            },
            _ = &mut deadline => {
                kill_group(pid, &mut child).await;
                break ShellEnd::TimedOut(spec.timeout.unwrap_or_default());
            }
            _ = stop.cancelled() => {
                kill_group(pid, &mut child).await;
                break ShellEnd::Stopped;
            }
        }
    };
    // Output still in the pipes after the process ended (the group may hold
    // them open: stop when nothing comes for a moment).
    if matches!(ended, ShellEnd::Exited(_) | ShellEnd::Signalled(_)) {
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_millis(200), output.next()).await
        {
            let _ = log.line(&take(l)).await;
        }
    }
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    ended
}

/// A process's stdout and stderr, read a line at a time in the task that
/// waits for the process (no reader tasks of their own).
struct Output {
    out: Option<Stream<ChildStdout>>,
    err: Option<Stream<ChildStderr>>,
}

/// One output stream and the part of a line read so far.
struct Stream<R> {
    reader: BufReader<R>,
    partial: Vec<u8>,
}

impl<R: tokio::io::AsyncRead> Stream<R> {
    fn new(r: R) -> Self {
        Stream {
            reader: BufReader::new(r),
            partial: Vec::new(),
        }
    }
}

impl Output {
    fn is_open(&self) -> bool {
        self.out.is_some() || self.err.is_some()
    }

    /// The next line of either stream, `true` for stdout; `None` once both
    /// ended. Cancel-safe: a line read in part is finished by the next call.
    async fn next(&mut self) -> Option<(bool, String)> {
        loop {
            let (stdout, line) = tokio::select! {
                l = next_line(&mut self.out), if self.out.is_some() => (true, l),
                l = next_line(&mut self.err), if self.err.is_some() => (false, l),
                else => return None,
            };
            match line {
                Some(l) => return Some((stdout, l)),
                None if stdout => self.out = None,
                None => self.err = None,
            }
        }
    }
}

/// The next line of a stream still open, bytes that are not UTF-8 replaced
/// (a process's output is not always text); `None` at its end.
async fn next_line<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut Option<Stream<R>>,
) -> Option<String> {
    let Some(s) = stream else {
        return std::future::pending().await;
    };
    match s.reader.read_until(b'\n', &mut s.partial).await {
        Ok(0) if s.partial.is_empty() => None,
        Ok(_) => {
            let bytes = std::mem::take(&mut s.partial);
            let text = String::from_utf8_lossy(&bytes);
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        Err(_) => None,
    }
}

/// SIGTERM to the whole group, then SIGKILL after a grace period.
async fn kill_group(pid: u32, child: &mut tokio::process::Child) {
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// The environment variable that marks every process a worker starts (and,
/// by inheritance, their children), so a restarted worker can find and stop
/// what its previous life left running.
pub const WORKER_MARKER: &str = "WEIR_WORKER";

/// Kills every process carrying `WEIR_WORKER=<worker>` (the orphans of a
/// worker that died) and returns how many. Linux only (reads `/proc`);
/// blocking: call from `spawn_blocking`.
pub fn kill_orphans(worker: &str) -> usize {
    let marker = format!("{WORKER_MARKER}={worker}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
            && nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// The argv of a command: `sh -c <string>`, or the list itself.
pub fn argv(
    command: &weir_core::dag::CommandSpec,
    render: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    match command {
        weir_core::dag::CommandSpec::Shell(s) => Ok(vec!["sh".into(), "-c".into(), render(s)?]),
        weir_core::dag::CommandSpec::Exec(args) => args.iter().map(|a| render(a)).collect(),
    }
}

/// The folder a DAG's relative paths resolve against.
pub fn dag_folder(fileloc: &Path) -> std::path::PathBuf {
    match fileloc.parent() {
        // A remote worker may not have the DAG folder at this path.
        Some(p) if !p.as_os_str().is_empty() && p.is_dir() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn output_that_is_not_utf8_is_logged_and_the_process_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::new(dir.path(), "t.log", Default::default());
        // Far more than a pipe holds comes after the bad bytes: a reader that
        // gave up on them would leave the process to die writing.
        let script = r"printf 'caf\351\n'; printf 'err\377\n' >&2; i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done";
        let spec = ShellSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            cwd: dir.path().to_path_buf(),
            timeout: Some(Duration::from_secs(60)),
        };
        let ran = run(&spec, &mut log, &CancellationToken::new(), |_| {}).await;
        log.flush().await.unwrap();
        assert_eq!(ran.end, ShellEnd::Exited(0));
        assert_eq!(ran.last_stdout.as_deref(), Some("line19999"));
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.contains("] caf\u{fffd}\n"), "{}", &text[..200]);
        assert!(text.contains("] err\u{fffd}\n"), "{}", &text[..200]);
        assert_eq!(text.lines().filter(|l| l.contains("] line")).count(), 20000);
    }
}
