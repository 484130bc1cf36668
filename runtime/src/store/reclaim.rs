//! Reclaiming leases whose holder will not finish: what a pass did, and the
//! decision whether a recorded host is gone. Runs when a host starts and
//! every reclaim interval; a crash therefore costs one attempt, never the
//! message.

use std::collections::BTreeMap;
use std::time::Duration;

use super::owner::LeaseOwner;
use crate::clock::{Millis, duration_ms};

/// What one reclaim pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Messages put back in the queue.
    pub requeued: usize,
    /// Messages dead-lettered because their attempts were spent.
    pub dead: usize,
    /// Those dead-lettered messages, counted by event type.
    pub dead_by_event_type: BTreeMap<String, usize>,
    /// Owners found gone and forgotten.
    pub dead_owners: usize,
}

/// Whether a recorded host is gone: its process on this machine no longer
/// exists, or it has not sent a heartbeat for `silence` (a host on another
/// machine, or one that hangs). `silence` of zero never declares a host
/// dead by its heartbeat alone.
pub(crate) fn host_is_gone(
    hostname: &str,
    pid: u32,
    process_start: Option<u64>,
    heartbeat_at: Millis,
    now: Millis,
    silence: Duration,
) -> bool {
    if LeaseOwner::is_known_dead(hostname, pid, process_start) {
        return true;
    }
    !silence.is_zero() && now.saturating_sub(heartbeat_at) > duration_ms(silence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_host_is_gone_after_the_silence_and_not_before() {
        let me = LeaseOwner::current();
        let silence = Duration::from_secs(30);
        let alive = |heartbeat_at, now| {
            !host_is_gone(
                "elsewhere.example",
                me.pid,
                Some(1),
                heartbeat_at,
                now,
                silence,
            )
        };
        assert!(alive(1_000, 1_000));
        assert!(alive(1_000, 31_000), "exactly the silence: still alive");
        assert!(!alive(1_000, 31_001));
        assert!(
            !host_is_gone(
                "elsewhere.example",
                me.pid,
                Some(1),
                0,
                i64::MAX,
                Duration::ZERO
            ),
            "no silence limit: heartbeats never declare a host dead"
        );
    }
}
