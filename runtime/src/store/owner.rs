//! Who holds a lease: the identity of a host process, and whether a process
//! that holds leases is still alive.
//!
//! Several hosts may share one store file. A host never takes a live host's
//! leases, but when the owner of a lease is a process on this machine that
//! no longer exists, its leases are reclaimed at once rather than when they
//! expire. SQLite's WAL mode needs shared memory, so every process using one
//! file is on the same machine, which makes a pid check sufficient; the
//! process start time guards against a reused pid.

use std::fs;

/// The identity of one process that claims messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    /// Unique per mailbox instance: 64 random bits in 16 hex digits, short
    /// because every row it claims carries it.
    pub id: String,
    /// The machine's host name.
    pub hostname: String,
    /// The process id.
    pub pid: u32,
    /// The process's start time (clock ticks since boot), where the OS tells it.
    pub process_start: Option<u64>,
}

/// 64 random bits as 16 hex digits: lease owners and lease tokens. Both are
/// written into every row in flight, so they are kept shorter than a UUID's
/// text (20 bytes a row, docs/BENCHMARKS.md); two match by chance once in
/// 2^64.
pub(crate) fn short_random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl LeaseOwner {
    /// The identity of the current process, with a fresh id.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            id: short_random_id(),
            hostname: hostname(),
            pid,
            process_start: process_start(pid),
        }
    }

    /// Whether the process behind a recorded owner is known to be gone. Only
    /// owners on this machine can be checked; any other owner is assumed
    /// alive (its leases still expire).
    pub(crate) fn is_known_dead(hostname_: &str, pid: u32, recorded_start: Option<u64>) -> bool {
        if hostname_ != hostname() || !cfg!(target_os = "linux") {
            return false;
        }
        match process_start(pid) {
            None => true,
            Some(start) => recorded_start.is_some_and(|recorded| recorded != start),
        }
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Field 22 of `/proc/<pid>/stat`: the process start time in clock ticks.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_alive_and_a_gone_one_is_dead() {
        let me = LeaseOwner::current();
        assert!(me.process_start.is_some());
        assert!(!LeaseOwner::is_known_dead(
            &me.hostname,
            me.pid,
            me.process_start
        ));
        // A reused pid: same pid, different start time.
        assert!(LeaseOwner::is_known_dead(
            &me.hostname,
            me.pid,
            me.process_start.map(|s| s + 1)
        ));
        // A child that has exited and been reaped.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(LeaseOwner::is_known_dead(&me.hostname, pid, Some(1)));
        // Another machine's process is never assumed dead.
        assert!(!LeaseOwner::is_known_dead(
            "elsewhere.example",
            pid,
            Some(1)
        ));
    }
}
