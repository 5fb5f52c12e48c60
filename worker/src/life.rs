//! Worker lives: this process's identity as a worker, and whether the process
//! of another life on this host still runs. Linux only (reads `/proc`); where
//! `/proc` cannot tell, liveness is unknown and the heartbeat decides.

use std::path::Path;

use weir_core::workers::{NewWorker, WorkerRecord};

/// The host name this process reports (`localhost` if it has none).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A new worker life for this process: a name unique to this start
/// (`<role>@<host>:<random>`), its pid and what tells this process apart
/// from a later one with the same pid.
pub fn this_process(
    role: &str,
    slots: usize,
    queues: Option<Vec<String>>,
    remote: bool,
) -> NewWorker {
    let hostname = hostname();
    let pid = std::process::id();
    NewWorker {
        name: weir_core::scheduler::workers::worker_name(role, &hostname),
        hostname,
        pid: i64::from(pid),
        process_token: process_token(Path::new("/proc"), pid).unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        queues,
        slots: i64::try_from(slots).unwrap_or(i64::MAX),
        remote,
    }
}

/// Whether the process of a worker life still runs, as far as this process
/// can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process runs: leave it alone.
    Running,
    /// Its process is gone (ended, or its pid now belongs to another process).
    Gone,
    /// This process cannot see it (another host, boot or pid namespace).
    Unknown,
}

/// Whether `other`'s process still runs, judged from `me` (this process).
pub fn liveness(other: &WorkerRecord, me: &NewWorker) -> Liveness {
    liveness_in(Path::new("/proc"), other, me)
}

fn liveness_in(proc: &Path, other: &WorkerRecord, me: &NewWorker) -> Liveness {
    if other.hostname != me.hostname {
        return Liveness::Unknown;
    }
    match (
        pid_space(&other.process_token),
        pid_space(&me.process_token),
    ) {
        (Some(theirs), Some(mine)) if theirs == mine => {}
        _ => return Liveness::Unknown,
    }
    let Ok(pid) = u32::try_from(other.pid) else {
        return Liveness::Gone;
    };
    match process_token(proc, pid) {
        Some(now) if now == other.process_token => Liveness::Running,
        _ => Liveness::Gone,
    }
}

/// `<boot id>/<pid namespace>/<start time>` of a running process: the pid
/// space it lives in and when it started there (clock ticks since boot),
/// which no later process with the same pid shares. `None` if there is no
/// such process, it has exited (a zombie), or `/proc` cannot tell.
fn process_token(proc: &Path, pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id")).ok()?;
    let namespace = std::fs::read_link(proc.join("self/ns/pid")).ok()?;
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let start = start_time(&stat)?;
    Some(format!(
        "{}/{}/{start}",
        boot.trim(),
        namespace.to_string_lossy()
    ))
}

/// The start time (field 22) of a `/proc/<pid>/stat` line, `None` for a
/// process that has exited (state `Z` or `X`). The command name (field 2) is
/// in parentheses and may hold spaces and parentheses itself, so fields are
/// counted after its last `)`.
fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The part of a process token that names the pid space.
fn pid_space(token: &str) -> Option<&str> {
    token
        .rsplit_once('/')
        .map(|(space, _)| space)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(of: &NewWorker) -> WorkerRecord {
        let now = chrono::Utc::now();
        WorkerRecord {
            name: of.name.clone(),
            hostname: of.hostname.clone(),
            pid: of.pid,
            process_token: of.process_token.clone(),
            started_at: now,
            heartbeat_at: now,
            state: weir_core::workers::WorkerState::Active,
            stopped_at: None,
            version: of.version.clone(),
            queues: of.queues.clone(),
            slots: of.slots,
            remote: of.remote,
            draining_at: None,
        }
    }

    #[test]
    fn every_start_gets_its_own_name() {
        let (a, b) = (
            this_process("standalone", 1, None, false),
            this_process("standalone", 1, None, false),
        );
        assert_ne!(a.name, b.name);
        assert!(
            a.name.starts_with(&format!("standalone@{}:", a.hostname)),
            "{}",
            a.name
        );
    }

    #[test]
    fn this_process_runs() {
        let me = this_process("test", 1, None, false);
        assert!(!me.process_token.is_empty(), "this test runs on Linux");
        let other = this_process("other", 1, None, false);
        assert_eq!(liveness(&record(&other), &me), Liveness::Running);
    }

    #[test]
    fn an_ended_process_is_gone() {
        let me = this_process("test", 1, None, false);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut other = record(&me);
        other.pid = i64::from(pid);
        other.process_token = process_token(Path::new("/proc"), pid).unwrap();
        assert_eq!(liveness(&other, &me), Liveness::Running);
        child.kill().unwrap();
        // An exited process nobody has waited for yet is gone too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while liveness(&other, &me) != Liveness::Gone {
            assert!(std::time::Instant::now() < deadline, "still running");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert_eq!(liveness(&other, &me), Liveness::Gone);
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let me = this_process("test", 1, None, false);
        let mut earlier = record(&me);
        let space = pid_space(&me.process_token).unwrap();
        earlier.process_token = format!("{space}/1");
        assert_eq!(liveness(&earlier, &me), Liveness::Gone);
    }

    #[test]
    fn what_this_process_cannot_see_is_unknown() {
        let me = this_process("test", 1, None, false);
        let mut elsewhere = record(&me);
        elsewhere.hostname = "another-host".into();
        assert_eq!(liveness(&elsewhere, &me), Liveness::Unknown);
        let mut other_boot = record(&me);
        other_boot.process_token = "another-boot/pid:[1]/5".into();
        assert_eq!(liveness(&other_boot, &me), Liveness::Unknown);
        let mut no_proc = record(&me);
        no_proc.process_token = String::new();
        assert_eq!(liveness(&no_proc, &me), Liveness::Unknown);
    }

    #[test]
    fn start_time_counts_fields_after_the_command_name() {
        let stat =
            "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time(&stat.replace(") S", ") Z")), None, "a zombie");
        assert_eq!(start_time("garbage"), None);
    }
}
