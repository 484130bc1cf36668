//! How many messages one claim asks for, of each event type: as many as
//! the delivery slots get through in [`CLAIM_AHEAD`] at the pace that
//! type's deliveries have been taking, held ready ahead of the slots, or
//! as many as there are free slots if more; at most `dispatcher.batch_size`
//! in all. Pure, so the rule is tested apart from the loop.
//!
//! Fast handlers get whole batches: fewer and larger transactions, which is
//! where the store's throughput comes from (docs/BENCHMARKS.md). A type
//! whose deliveries take longer than that is claimed only for free slots,
//! so a claimed message waits for its slot about that long whatever its
//! handler takes: its lease is not spent waiting, and a message of higher
//! priority enqueued meanwhile is claimed within about that time instead of
//! behind a whole batch. Each type has its own pace, and a claim caps each
//! type at its own share: a slow type delivered beside a fast one still
//! gets a few messages per claim while the fast one gets a batch.

use std::collections::HashMap;
use std::time::Duration;

use crate::store::TypeCaps;

/// The delivery work held claimed ahead of the slots, at the current pace.
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

    /// Messages to hold claimed ahead of `concurrency` slots: what they get
    /// through in [`CLAIM_AHEAD`], at most `batch_size`. None before any
    /// delivery has finished (the pace is learnt from the first deliveries
    /// before a batch is held), nor when one delivery takes longer.
    pub(crate) fn ahead(&self, concurrency: usize, batch_size: usize) -> usize {
        let Some(mean) = self.mean else {
            return 0;
        };
        let slots = concurrency.max(1) as f64;
        let wanted = (slots * CLAIM_AHEAD.as_secs_f64() / mean.max(f64::MIN_POSITIVE)).floor();
        // Float to integer casts saturate: a pace too fast to count asks
        // for a whole batch.
        (wanted as usize).min(batch_size.max(1))
    }
}

/// The pace of each event type delivered so far.
#[derive(Debug, Default)]
pub(crate) struct Paces {
    by_type: HashMap<String, Pace>,
}

/// What one claim asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The types with fewer claimed messages waiting than their room.
    pub(crate) event_types: Vec<String>,
    /// The most messages in all.
    pub(crate) limit: usize,
    /// The most of each type whose room is below `limit`.
    pub(crate) caps: TypeCaps,
}

/// How a host's slots stand when it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    /// `dispatcher.concurrency`.
    pub(crate) concurrency: usize,
    /// Slots with no delivery running.
    pub(crate) free: usize,
    /// `dispatcher.batch_size`.
    pub(crate) batch_size: usize,
}

impl Paces {
    /// A delivery of `event_type` finished after `took`.
    pub(crate) fn observe(&mut self, event_type: &str, took: Duration) {
        if let Some(pace) = self.by_type.get_mut(event_type) {
            pace.observe(took);
        } else {
            let mut pace = Pace::default();
            pace.observe(took);
            self.by_type.insert(event_type.to_owned(), pace);
        }
    }

    /// Forgets the types not in `event_types` (unrouted since).
    pub(crate) fn keep_only(&mut self, event_types: &[String]) {
        if self.by_type.len() > event_types.len() {
            self.by_type.retain(|t, _| event_types.contains(t));
        }
    }

    /// The claim for `event_types` (those a claim may take) while `waiting`
    /// messages of each are claimed and waiting for a slot. A type's room
    /// is what it holds ahead at its pace ([`Pace::ahead`]), or the free
    /// slots if more; a type with fewer waiting than its room is claimed,
    /// up to its room. In all, what the claimed types hold ahead plus the
    /// free slots, at most a batch. `None` when every type has enough
    /// waiting.
    pub(crate) fn plan(
        &self,
        event_types: Vec<String>,
        waiting: &HashMap<&str, usize>,
        slots: Slots,
    ) -> Option<Plan> {
        let batch = slots.batch_size.max(1);
        let short: Vec<(String, usize, usize)> = event_types
            .into_iter()
            .filter_map(|t| {
                let ahead = self
                    .by_type
                    .get(&t)
                    .copied()
                    .unwrap_or_default()
                    .ahead(slots.concurrency, batch);
                let room = ahead.max(slots.free).min(batch);
                (waiting.get(t.as_str()).copied().unwrap_or(0) < room).then_some((t, ahead, room))
            })
            .collect();
        if short.is_empty() {
            return None;
        }
        let limit = short
            .iter()
            .fold(slots.free, |sum, (_, ahead, _)| sum.saturating_add(*ahead))
            .clamp(1, batch);
        let caps = short
            .iter()
            .filter(|(_, _, room)| *room < limit)
            .map(|(t, _, room)| (t.clone(), *room))
            .collect();
        Some(Plan {
            event_types: short.into_iter().map(|(t, _, _)| t).collect(),
            limit,
            caps,
        })
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
    fn nothing_ahead_before_any_delivery_has_finished() {
        assert_eq!(Pace::default().ahead(2, 256), 0);
    }

    #[test]
    fn fast_handlers_hold_a_whole_batch_ahead() {
        assert_eq!(after(&[Duration::from_micros(20); 50]).ahead(2, 256), 256);
        assert_eq!(after(&[Duration::ZERO]).ahead(2, 256), 256);
    }

    #[test]
    fn slower_handlers_hold_what_the_slots_get_through_in_the_claim_ahead() {
        // 2 slots at 4 ms each: 10 deliveries in 20 ms.
        assert_eq!(after(&[Duration::from_millis(4); 50]).ahead(2, 256), 10);
        // Longer than that: nothing ahead.
        assert_eq!(after(&[Duration::from_millis(50); 50]).ahead(2, 256), 0);
    }

    #[test]
    fn the_pace_follows_a_change_of_handler() {
        let mut pace = after(&[Duration::from_micros(20); 50]);
        for _ in 0..64 {
            pace.observe(Duration::from_millis(100));
        }
        assert_eq!(pace.ahead(2, 256), 0);
    }

    fn types(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| (*t).to_owned()).collect()
    }

    fn paces(of: &[(&str, Duration)]) -> Paces {
        let mut paces = Paces::default();
        for (t, took) in of {
            for _ in 0..50 {
                paces.observe(t, *took);
            }
        }
        paces
    }

    fn slots(free: usize) -> Slots {
        Slots {
            concurrency: 2,
            free,
            batch_size: 256,
        }
    }

    #[test]
    fn a_fast_type_gets_a_batch_and_a_slow_one_beside_it_a_free_slot() {
        let paces = paces(&[
            ("fast", Duration::from_micros(20)),
            ("slow", Duration::from_secs(1)),
        ]);
        let plan = paces
            .plan(types(&["fast", "slow"]), &HashMap::new(), slots(1))
            .expect("both are short");
        assert_eq!(plan.event_types, types(&["fast", "slow"]));
        assert_eq!(plan.limit, 256);
        assert_eq!(plan.caps, TypeCaps::from([("slow".to_owned(), 1)]));
        // No free slot: the slow type waits in the store.
        let plan = paces
            .plan(types(&["fast", "slow"]), &HashMap::new(), slots(0))
            .expect("fast is short");
        assert_eq!(plan.event_types, types(&["fast"]));
    }

    #[test]
    fn types_with_enough_waiting_are_left_out() {
        let paces = paces(&[
            ("fast", Duration::from_micros(20)),
            ("slow", Duration::from_secs(1)),
        ]);
        let waiting = HashMap::from([("slow", 1), ("fast", 255)]);
        let plan = paces
            .plan(types(&["fast", "slow"]), &waiting, slots(1))
            .expect("fast is short");
        assert_eq!(plan.event_types, types(&["fast"]));
        assert_eq!((plan.limit, plan.caps.len()), (256, 0));
        let waiting = HashMap::from([("slow", 1), ("fast", 256)]);
        assert_eq!(paces.plan(types(&["fast", "slow"]), &waiting, slots(1)), None);
    }

    #[test]
    fn slow_and_new_types_share_the_free_slots() {
        let paces = paces(&[("a", Duration::from_secs(1)), ("b", Duration::from_millis(4))]);
        let plan = paces
            .plan(types(&["a", "b", "new"]), &HashMap::new(), slots(2))
            .expect("all are short");
        // b holds 10 ahead; a and new (no pace yet) only the free slots.
        assert_eq!(plan.limit, 12);
        assert_eq!(
            plan.caps,
            TypeCaps::from([("a".to_owned(), 2), ("b".to_owned(), 10), ("new".to_owned(), 2)])
        );
        let plan = paces
            .plan(types(&["a", "new"]), &HashMap::new(), slots(1))
            .expect("both are short");
        assert_eq!((plan.limit, plan.caps.len()), (1, 0), "one message for one free slot");
    }

    #[test]
    fn unrouted_types_are_forgotten() {
        let mut paces = paces(&[("a", Duration::from_secs(1)), ("b", Duration::from_secs(1))]);
        paces.keep_only(&types(&["b"]));
        assert_eq!(paces.by_type.keys().collect::<Vec<_>>(), vec!["b"]);
    }
}
