//! What an enqueue answers, and which capacities it must respect.

use crate::message::{MessageId, NewMessage};
use crate::state_machine::Policies;

/// The result of enqueueing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Enqueued {
    /// The message's id: new, or the existing message's when `duplicate`.
    pub id: MessageId,
    /// A message with the same key was already stored; nothing new was.
    pub duplicate: bool,
}

/// The event types among `messages` whose queue has a `max_queued`, each
/// with it, sorted (so locks on them are always taken in one order).
pub(crate) fn capped_types<'a>(
    messages: impl IntoIterator<Item = &'a NewMessage>,
    policies: &Policies,
) -> Vec<(String, u64)> {
    if policies.limits.is_empty() {
        return Vec::new();
    }
    let mut capped: Vec<(String, u64)> = messages
        .into_iter()
        .filter_map(|m| {
            policies
                .limits(&m.event_type)
                .max_queued
                .map(|max| (m.event_type.clone(), max))
        })
        .collect();
    capped.sort();
    capped.dedup();
    capped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::QueueLimits;

    #[test]
    fn only_capped_types_are_checked_once_each_in_order() {
        let mut policies = Policies::default();
        for (t, max_queued) in [("b", Some(5)), ("a", Some(2)), ("ttl", None)] {
            policies.limits.insert(
                t.into(),
                QueueLimits {
                    max_queued,
                    ..QueueLimits::default()
                },
            );
        }
        let batch: Vec<NewMessage> = ["b", "free", "a", "b", "ttl"]
            .iter()
            .map(|t| NewMessage::new(*t, b"{}".to_vec()))
            .collect();
        assert_eq!(
            capped_types(&batch, &policies),
            vec![("a".to_owned(), 2), ("b".to_owned(), 5)]
        );
    }
}
