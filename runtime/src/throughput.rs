//! Deliveries per minute over the last minutes, by event type: what the web
//! console draws as small charts (`GET /v1/throughput`).
//!
//! [`crate::metrics::Metrics`] feeds it where it counts outcomes, so the ring
//! and the Prometheus counters agree: "handled" is an ack
//! (`mailroom_events_acked_total`), "failed" a failed delivery, retried or
//! dead-lettered (`mailroom_events_retried_total` +
//! `mailroom_events_dead_lettered_total`). Like those counters it covers what
//! this process did since it started. Counting at the source rather than
//! sampling the counters puts every outcome in the minute it happened in,
//! whenever (or whether) anyone looks.
//!
//! The ring holds [`MINUTES`] buckets and nothing else: memory is bounded by
//! the number of event types active in the last quarter of an hour.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::clock::Millis;

/// How many minutes the ring remembers, the current one included.
pub const MINUTES: usize = 15;

const MINUTE_MS: Millis = 60_000;

/// What happened to one delivery, as the charts count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acked.
    Handled,
    /// Retried or dead-lettered.
    Failed,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    handled: u64,
    failed: u64,
}

/// One minute's counts by event type.
#[derive(Debug)]
struct Minute {
    /// Minutes since the Unix epoch.
    index: i64,
    by_event_type: BTreeMap<String, Counts>,
}

/// Per-minute outcome counts for the last [`MINUTES`] minutes.
#[derive(Debug, Default)]
pub struct Throughput {
    /// Oldest first; only minutes in which something happened.
    minutes: VecDeque<Minute>,
}

/// The last [`MINUTES`] minutes, as served by `GET /v1/throughput`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThroughputReport {
    /// The start of the first (oldest) minute, in ms since the Unix epoch.
    pub from_ms: Millis,
    /// How many minutes each series covers (the last one is the current,
    /// partial minute).
    pub minutes: usize,
    /// Per event type that had a delivery in the window.
    pub by_event_type: BTreeMap<String, Series>,
}

/// One event type's counts, one number per minute, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// Deliveries acked.
    pub handled: Vec<u64>,
    /// Deliveries that failed (retried or dead-lettered).
    pub failed: Vec<u64>,
}

impl Throughput {
    /// Counts `n` deliveries of `event_type` that ended in `outcome` at `now`.
    pub fn record(&mut self, now: Millis, event_type: &str, outcome: Outcome, n: u64) {
        let index = now.div_euclid(MINUTE_MS);
        // A clock that stepped back counts into the newest minute rather
        // than rewriting history.
        if self.minutes.back().is_none_or(|m| m.index < index) {
            self.minutes.push_back(Minute {
                index,
                by_event_type: BTreeMap::new(),
            });
        }
        self.forget_before(index);
        let Some(minute) = self.minutes.back_mut() else {
            return;
        };
        let counts = minute
            .by_event_type
            .entry(event_type.to_owned())
            .or_default();
        match outcome {
            Outcome::Handled => counts.handled = counts.handled.saturating_add(n),
            Outcome::Failed => counts.failed = counts.failed.saturating_add(n),
        }
    }

    /// The [`MINUTES`] minutes ending with the one holding `now`.
    pub fn report(&self, now: Millis) -> ThroughputReport {
        let current = now.div_euclid(MINUTE_MS);
        let first = current - (MINUTES as i64 - 1);
        let mut by_event_type: BTreeMap<String, Series> = BTreeMap::new();
        for minute in self
            .minutes
            .iter()
            .filter(|m| (first..=current).contains(&m.index))
        {
            let slot = usize::try_from(minute.index - first).unwrap_or(0);
            for (event_type, counts) in &minute.by_event_type {
                let series = by_event_type
                    .entry(event_type.clone())
                    .or_insert_with(|| Series {
                        handled: vec![0; MINUTES],
                        failed: vec![0; MINUTES],
                    });
                series.handled[slot] += counts.handled;
                series.failed[slot] += counts.failed;
            }
        }
        ThroughputReport {
            from_ms: first * MINUTE_MS,
            minutes: MINUTES,
            by_event_type,
        }
    }

    fn forget_before(&mut self, current: i64) {
        let first = current - (MINUTES as i64 - 1);
        while self.minutes.front().is_some_and(|m| m.index < first) {
            self.minutes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_040_000; // a minute boundary

    #[test]
    fn counts_land_in_their_minute() {
        let mut t = Throughput::default();
        t.record(T0, "a", Outcome::Handled, 2);
        t.record(T0 + 59_999, "a", Outcome::Failed, 1);
        t.record(T0 + 60_000, "a", Outcome::Handled, 5);
        t.record(T0 + 61_000, "b", Outcome::Failed, 3);
        let report = t.report(T0 + 90_000);
        assert_eq!(report.minutes, MINUTES);
        assert_eq!(report.from_ms, T0 + 60_000 - (MINUTES as i64 - 1) * 60_000);
        let a = &report.by_event_type["a"];
        assert_eq!(a.handled[MINUTES - 2..], [2, 5]);
        assert_eq!(a.failed[MINUTES - 2..], [1, 0]);
        assert_eq!(a.handled.iter().sum::<u64>(), 7);
        let b = &report.by_event_type["b"];
        assert_eq!(b.failed[MINUTES - 1], 3);
        assert_eq!(b.handled.iter().sum::<u64>(), 0);
    }

    #[test]
    fn old_minutes_leave_the_window_and_the_ring() {
        let mut t = Throughput::default();
        t.record(T0, "old", Outcome::Handled, 1);
        let later = T0 + MINUTES as i64 * 60_000;
        assert!(t.report(later).by_event_type.is_empty());
        assert_eq!(t.report(later - 1).by_event_type["old"].handled[0], 1);
        t.record(later, "new", Outcome::Handled, 1);
        assert_eq!(t.minutes.len(), 1);
        assert_eq!(t.report(later).by_event_type["new"].handled[MINUTES - 1], 1);
    }

    #[test]
    fn a_clock_stepping_back_counts_in_the_newest_minute() {
        let mut t = Throughput::default();
        t.record(T0 + 120_000, "a", Outcome::Handled, 1);
        t.record(T0, "a", Outcome::Handled, 1);
        assert_eq!(t.minutes.len(), 1);
        assert_eq!(
            t.report(T0 + 120_000).by_event_type["a"].handled[MINUTES - 1],
            2
        );
    }
}
