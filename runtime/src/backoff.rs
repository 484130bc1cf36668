//! Backing off a loop that keeps failing, and logging it without flooding:
//! the first failure in full, then a summary of the repeats at most every
//! [`SUMMARY_EVERY`], then one line when it works again.
//!
//! [`Retry`] is a small pure struct: the delay doubles from a base up to a
//! cap, and every decision takes the current time as an argument, so the
//! tests drive it without sleeping. The dispatcher's claim, commit and
//! reclaim loops, and the loader's store writes, each keep one.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Repeats of one failure are summarised in one line at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// The first retry after a store failure waits this long.
pub const STORE_RETRY_BASE: Duration = Duration::from_millis(250);

/// Retries after store failures never wait longer than this: once the store
/// recovers, work resumes within it.
pub const STORE_RETRY_CAP: Duration = Duration::from_secs(10);

/// What to log about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The first failure of a run of failures: log it in full.
    First,
    /// `times` more failures happened over `over` since the last line.
    Repeated {
        /// How many failures the line stands for.
        times: u64,
        /// Since the previous line.
        over: Duration,
    },
    /// Counted; summarised later.
    Quiet,
}

/// A capped exponential backoff with summarised logging.
#[derive(Debug, Clone)]
pub struct Retry {
    what: &'static str,
    base: Duration,
    cap: Duration,
    /// Failures in a row.
    failures: u32,
    /// When the current run of failures began.
    since: Option<Instant>,
    /// When the last line was logged, and failures since then.
    reported_at: Option<Instant>,
    unreported: u64,
}

impl Retry {
    /// A backoff for the loop doing `what` (as log lines name it: "claim",
    /// "commit outcomes"): `base` after the first failure, doubling up to
    /// `cap`.
    pub fn new(what: &'static str, base: Duration, cap: Duration) -> Self {
        Self {
            what,
            base,
            cap: cap.max(base),
            failures: 0,
            since: None,
            reported_at: None,
            unreported: 0,
        }
    }

    /// A backoff for a loop of store calls.
    pub fn store(what: &'static str) -> Self {
        Self::new(what, STORE_RETRY_BASE, STORE_RETRY_CAP)
    }

    /// Whether the latest attempt failed.
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// Records a failure at `now`: how long to wait before the next
    /// attempt, and what to log.
    pub fn note_failure(&mut self, now: Instant) -> (Duration, Report) {
        self.failures = self.failures.saturating_add(1);
        let delay = self
            .base
            .saturating_mul(1 << (self.failures - 1).min(20))
            .min(self.cap);
        let report = match self.reported_at {
            None => {
                self.since = Some(now);
                self.reported_at = Some(now);
                Report::First
            }
            Some(at) if now.saturating_duration_since(at) >= SUMMARY_EVERY => {
                let times = self.unreported + 1;
                self.unreported = 0;
                self.reported_at = Some(now);
                Report::Repeated {
                    times,
                    over: now.saturating_duration_since(at),
                }
            }
            Some(_) => {
                self.unreported += 1;
                Report::Quiet
            }
        };
        (delay, report)
    }

    /// Records a success at `now`. Returns, when it ends a run of
    /// failures, how many there were and for how long.
    pub fn note_success(&mut self, now: Instant) -> Option<(u32, Duration)> {
        let ended = (self.failures > 0).then(|| {
            (
                self.failures,
                self.since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
            )
        });
        self.failures = 0;
        self.since = None;
        self.reported_at = None;
        self.unreported = 0;
        ended
    }

    /// Records a failure now, logs it as [`Retry::note_failure`] says (at
    /// ERROR), and returns how long to wait.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        let (delay, report) = self.note_failure(Instant::now());
        let what = self.what;
        match report {
            Report::First => tracing::error!("{what} failed: {error}; retrying in {delay:?}"),
            Report::Repeated { times, over } => tracing::error!(
                "{what} is still failing: {error} (failed {times} more times in the last {}s); retrying in {delay:?}",
                over.as_secs()
            ),
            Report::Quiet => {}
        }
        delay
    }

    /// Records a success now, and logs the end of a run of failures.
    pub fn succeeded(&mut self) {
        if let Some((failures, over)) = self.note_success(Instant::now()) {
            tracing::info!(
                "{} works again (after {failures} failures over {}s)",
                self.what,
                over.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry::new("claim", Duration::from_millis(100), Duration::from_secs(2))
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut r = retry();
        let now = Instant::now();
        let delays: Vec<u128> = (0..8).map(|_| r.note_failure(now).0.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert!(r.is_failing());
        r.note_success(now);
        assert_eq!(r.note_failure(now).0, Duration::from_millis(100), "reset by a success");
    }

    #[test]
    fn a_thousand_failures_never_overflow() {
        let mut r = retry();
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(r.note_failure(now).0 <= Duration::from_secs(2));
        }
    }

    #[test]
    fn the_first_failure_is_logged_then_repeats_are_summarised() {
        let mut r = retry();
        let t0 = Instant::now();
        assert_eq!(r.note_failure(t0).1, Report::First);
        for i in 1..=10 {
            assert_eq!(r.note_failure(t0 + Duration::from_secs(i)).1, Report::Quiet);
        }
        assert_eq!(
            r.note_failure(t0 + SUMMARY_EVERY).1,
            Report::Repeated {
                times: 11,
                over: SUMMARY_EVERY
            }
        );
        assert_eq!(r.note_failure(t0 + SUMMARY_EVERY).1, Report::Quiet);
        assert_eq!(
            r.note_success(t0 + SUMMARY_EVERY * 2),
            Some((13, SUMMARY_EVERY * 2))
        );
        assert_eq!(r.note_success(t0 + SUMMARY_EVERY * 2), None);
        assert_eq!(r.note_failure(t0 + SUMMARY_EVERY * 3).1, Report::First);
    }
}
