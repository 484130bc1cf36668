//! CPU time of the calling thread. On a shared machine a phase's wall time
//! grows with everything else the machine runs, while its CPU time grows
//! much less: the figure to compare when a change is a few percent.

use std::time::Duration;

/// The calling thread's CPU time so far, where the OS reports it (Linux's
/// `/proc/thread-self/schedstat`).
pub fn now() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The calling thread's CPU time since `start` (from [`now`]).
pub fn since(start: Option<Duration>) -> Option<Duration> {
    Some(now()?.saturating_sub(start?))
}
