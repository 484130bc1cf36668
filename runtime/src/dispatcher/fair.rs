//! Fair scheduling: which claimed message takes the next free delivery
//! slot. Pure, so the rule is tested apart from the loop.
//!
//! The rule, with `N` slots of which `R` are reserved (`R` is 0 while only
//! one event type is routable):
//!
//! - a free slot goes to the waiting message whose event type has the fewest
//!   deliveries running; among those, the first in claim order (highest
//!   priority, then turns across types, then oldest);
//! - once `N - R` slots are busy, the remaining `R` go only to types with
//!   no delivery running.
//!
//! So whatever one type does (a flood of messages, handlers that run to the
//! time limit, a loop of follow-ups), a type that has due messages and
//! nothing running finds a slot at once, and slots freed later go to the
//! types running the fewest. Priority orders messages within a type and the
//! claim; across types, fairness comes first.

use std::collections::HashMap;

/// How the dispatcher's slots are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    /// Deliveries running at once.
    pub(crate) concurrency: usize,
    /// Slots only a type with no delivery running may take.
    pub(crate) reserved: usize,
}

/// The position in `waiting` (event types, in claim order) of the message
/// to start next, or `None` if none may start now. `running` counts the
/// deliveries running per type, `busy` all of them; `fewest` is
/// [`fewest_running`] of the types in `waiting`, so the scan stops at the
/// first message of a type that cannot be beaten (with one type waiting,
/// at the first message) rather than reading the whole batch.
pub(crate) fn pick<'a>(
    waiting: impl IntoIterator<Item = &'a str>,
    running: &HashMap<String, usize>,
    busy: usize,
    slots: Slots,
    fewest: usize,
) -> Option<usize> {
    if busy >= slots.concurrency {
        return None;
    }
    let shared_free = busy < slots.concurrency.saturating_sub(slots.reserved);
    if !shared_free && fewest > 0 {
        // Only the reserved slots are free, and every waiting type runs.
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    let mut previous: Option<&str> = None;
    for (index, event_type) in waiting.into_iter().enumerate() {
        // A message of the type just looked at can do no better than it
        // did (the first of a type wins): with one busy type, the whole
        // batch is skipped without a look-up each.
        if previous.replace(event_type) == Some(event_type) {
            continue;
        }
        let running = running.get(event_type).copied().unwrap_or(0);
        if !shared_free && running > 0 {
            continue;
        }
        if best.is_none_or(|(fewest, _)| running < fewest) {
            best = Some((running, index));
            if running <= fewest {
                break;
            }
        }
    }
    best.map(|(_, index)| index)
}

/// The fewest deliveries running of any of `event_types` (0 for none).
pub(crate) fn fewest_running<'a>(
    event_types: impl IntoIterator<Item = &'a str>,
    running: &HashMap<String, usize>,
) -> usize {
    event_types
        .into_iter()
        .map(|t| running.get(t).copied().unwrap_or(0))
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`pick`], told the fewest running as the dispatcher tells it.
    fn pick<'a>(
        waiting: impl IntoIterator<Item = &'a str> + Clone,
        running: &HashMap<String, usize>,
        busy: usize,
        slots: Slots,
    ) -> Option<usize> {
        let fewest = fewest_running(waiting.clone(), running);
        super::pick(waiting, running, busy, slots, fewest)
    }

    fn counts(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    const SLOTS: Slots = Slots {
        concurrency: 4,
        reserved: 1,
    };

    #[test]
    fn the_type_running_the_fewest_goes_first_then_claim_order() {
        let running = counts(&[("a", 2), ("b", 1)]);
        // 3 of 4 busy: only the reserved slot, and "b" already runs one.
        assert_eq!(pick(["a", "b", "a"], &running, 3, SLOTS), None);
        assert_eq!(pick(["a", "b", "a"], &running, 2, SLOTS), Some(1));
        assert_eq!(pick(["a", "a"], &running, 2, SLOTS), Some(0));
        assert_eq!(pick(["a", "b"], &HashMap::new(), 0, SLOTS), Some(0));
    }

    #[test]
    fn a_run_of_one_type_is_judged_by_its_first_message() {
        let running = counts(&[("a", 1)]);
        assert_eq!(pick(["a", "a", "a", "b", "b"], &running, 1, SLOTS), Some(3));
        assert_eq!(pick(["a", "a", "a"], &running, 1, SLOTS), Some(0));
        // Not consecutive: each run is looked at, the first wins a tie.
        assert_eq!(pick(["a", "b", "a", "b"], &counts(&[("a", 1), ("b", 1)]), 2, SLOTS), Some(0));
        assert_eq!(pick(["a", "a", "c"], &counts(&[("a", 1)]), 3, SLOTS), Some(2));
    }

    #[test]
    fn reserved_slots_go_only_to_types_with_nothing_running() {
        let running = counts(&[("a", 3)]);
        // 3 of 4 busy: only the reserved slot is left.
        assert_eq!(pick(["a", "a"], &running, 3, SLOTS), None);
        assert_eq!(pick(["a", "b"], &running, 3, SLOTS), Some(1));
        // Every slot busy: nobody.
        assert_eq!(pick(["b"], &running, 4, SLOTS), None);
    }

    #[test]
    fn without_a_reserve_one_type_may_use_every_slot() {
        let slots = Slots {
            concurrency: 2,
            reserved: 0,
        };
        let running = counts(&[("a", 1)]);
        assert_eq!(pick(["a"], &running, 1, slots), Some(0));
        assert_eq!(pick(["a"], &running, 2, slots), None);
        assert_eq!(pick([], &running, 0, slots), None);
    }
}
