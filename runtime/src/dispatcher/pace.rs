//! How many messages one claim asks for: as many as the delivery slots get
//! through in [`CLAIM_AHEAD`] at the pace deliveries have been taking,
//! between `concurrency` and `dispatcher.batch_size`. Pure, so the rule is
//! tested apart from the loop.
//!
//! Fast handlers get whole batches: fewer and larger transactions, which is
//! where the store's throughput comes from (docs/BENCHMARKS.md). Slow ones
//! get a few messages at a time, so a claimed message waits for its slot
//! about that long whatever its handler takes: its lease is not spent
//! waiting, and a message of higher priority enqueued meanwhile is claimed
//! within about that time instead of behind a whole batch.
//!
//! The pace is one for all event types: while fast and slow types are
//! delivered together, claims are large and may hold many of the slow
//! type's messages (the dispatcher hands back those whose lease ran short).

use std::time::Duration;

/// The delivery work one claim asks for, at the current pace.
pub(crate) const CLAIM_AHEAD: Duration = Duration::from_millis(20);

/// Each delivery's share of the running mean: the pace follows a change
/// of handler within a few dozen deliveries.
const WEIGHT: f64 = 16.0;

/// The running mean of how long deliveries take.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pace {
    /// Seconds; `None` until a delivery has finished.
    mean: Option<f64>,
}

impl Pace {
    /// A delivery finished after `took`.
    pub(crate) fn observe(&mut self, took: Duration) {
        let took = took.as_secs_f64();
        self.mean = Some(match self.mean {
            Some(mean) => mean + (took - mean) / WEIGHT,
            None => took,
        });
    }

    /// Messages to claim with `concurrency` slots: what they get through
    /// in [`CLAIM_AHEAD`], at least one per slot and at most `batch_size`.
    /// Before any delivery has finished, one per slot: the pace is learnt
    /// from the first deliveries before a batch is held.
    pub(crate) fn claim_size(&self, concurrency: usize, batch_size: usize) -> usize {
        let most = batch_size.max(1);
        let least = concurrency.clamp(1, most);
        let Some(mean) = self.mean else {
            return least;
        };
        let slots = concurrency.max(1) as f64;
        let wanted = (slots * CLAIM_AHEAD.as_secs_f64() / mean.max(f64::MIN_POSITIVE)).ceil();
        // Float to integer casts saturate: a pace too fast to count asks
        // for `most`.
        (wanted as usize).clamp(least, most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(tooks: &[Duration]) -> Pace {
        let mut pace = Pace::default();
        for took in tooks {
            pace.observe(*took);
        }
        pace
    }

    #[test]
    fn one_per_slot_before_any_delivery_has_finished() {
        assert_eq!(Pace::default().claim_size(2, 256), 2);
    }

    #[test]
    fn fast_handlers_get_whole_batches() {
        let pace = after(&[Duration::from_micros(20); 50]);
        assert_eq!(pace.claim_size(2, 256), 256);
    }

    #[test]
    fn slow_handlers_get_what_the_slots_get_through_in_the_claim_ahead() {
        // 2 slots at 4 ms each: 10 deliveries in 20 ms.
        let pace = after(&[Duration::from_millis(4); 50]);
        assert_eq!(pace.claim_size(2, 256), 10);
    }

    #[test]
    fn never_fewer_than_one_per_slot_nor_more_than_a_batch() {
        let slow = after(&[Duration::from_secs(3)]);
        assert_eq!(slow.claim_size(4, 256), 4);
        assert_eq!(slow.claim_size(8, 3), 3, "a batch smaller than the slots");
        assert_eq!(slow.claim_size(0, 0), 1);
        let instant = after(&[Duration::ZERO]);
        assert_eq!(instant.claim_size(2, 256), 256);
    }

    #[test]
    fn the_pace_follows_a_change_of_handler() {
        let mut pace = after(&[Duration::from_micros(20); 50]);
        for _ in 0..64 {
            pace.observe(Duration::from_millis(100));
        }
        assert_eq!(pace.claim_size(2, 256), 2);
    }
}
