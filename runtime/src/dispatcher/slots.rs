//! Delivery slots per event type: which types a claim may ask for, and
//! whether a claimed message may start, given each type's `concurrency`
//! (`[event_types."T"] concurrency`: the most deliveries of the type at once
//! in this host). Pure decisions over counts the dispatcher keeps.

use std::collections::HashMap;

use crate::state_machine::Policies;

/// The per-type delivery limits of one host.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeSlots {
    limits: HashMap<String, usize>,
}

impl TypeSlots {
    /// The `concurrency` of every type that has one.
    pub(crate) fn from_policies(policies: &Policies) -> Self {
        Self {
            limits: policies
                .limits
                .iter()
                .filter_map(|(t, l)| l.concurrency.map(|n| (t.clone(), n)))
                .collect(),
        }
    }

    /// The routable `types` a claim may ask for: those with a slot left once
    /// the messages this host already holds of them (`held`: running or
    /// claimed and waiting) are counted. A type at its limit is not claimed,
    /// so its queue waits in the store, not in this host's hands.
    pub(crate) fn claimable(&self, types: &[String], held: &HashMap<String, usize>) -> Vec<String> {
        types
            .iter()
            .filter(|t| self.has_room(t, held))
            .cloned()
            .collect()
    }

    /// Whether one more delivery of `event_type` may start while `running`
    /// of each type are running.
    pub(crate) fn may_start(&self, event_type: &str, running: &HashMap<String, usize>) -> bool {
        self.has_room(event_type, running)
    }

    fn has_room(&self, event_type: &str, counts: &HashMap<String, usize>) -> bool {
        self.limits
            .get(event_type)
            .is_none_or(|limit| counts.get(event_type).copied().unwrap_or(0) < *limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::QueueLimits;

    fn slots() -> TypeSlots {
        let mut policies = Policies::default();
        for (t, concurrency) in [("slow", Some(2)), ("ttl-only", None)] {
            policies.limits.insert(
                t.into(),
                QueueLimits {
                    concurrency,
                    ..QueueLimits::default()
                },
            );
        }
        TypeSlots::from_policies(&policies)
    }

    fn counts(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    #[test]
    fn a_type_starts_up_to_its_limit() {
        let s = slots();
        assert!(s.may_start("slow", &counts(&[])));
        assert!(s.may_start("slow", &counts(&[("slow", 1)])));
        assert!(!s.may_start("slow", &counts(&[("slow", 2)])));
        assert!(!s.may_start("slow", &counts(&[("slow", 3)])), "past it too");
    }

    #[test]
    fn types_without_a_limit_always_start() {
        let s = slots();
        assert!(s.may_start("other", &counts(&[("other", 10_000)])));
        assert!(s.may_start("ttl-only", &counts(&[("ttl-only", 10_000)])));
    }

    #[test]
    fn a_type_at_its_limit_is_not_claimed_and_others_are() {
        let s = slots();
        let types = vec!["fast".to_owned(), "slow".to_owned()];
        assert_eq!(s.claimable(&types, &counts(&[("slow", 1)])), types);
        assert_eq!(
            s.claimable(&types, &counts(&[("slow", 2), ("fast", 500)])),
            vec!["fast".to_owned()]
        );
    }
}
