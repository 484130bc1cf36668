//! How deliveries end, and the decision each outcome leads to. Both
//! backends settle through [`decide`], so they apply one state machine.

use std::collections::HashMap;

use super::claim::{Claimed, Parent};
use super::StoreError;
use crate::clock::Millis;
use crate::message::NewMessage;
use crate::state_machine::{self, Failure, Policies, Transition};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The handler succeeded: remove the message and enqueue its follow-ups,
    /// atomically. Follow-ups without a correlation id inherit the message's.
    Ack {
        /// Events the handler emitted.
        follow_ups: Vec<NewMessage>,
    },
    /// The handler failed; [`crate::state_machine::after_failure`] decides
    /// whether the message is requeued or dead.
    Fail(Failure),
}

/// What settling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Removed; its follow-ups were enqueued.
    Acked,
    /// Back in the queue, due at `available_at`.
    Requeued {
        /// When the next attempt may start.
        available_at: Millis,
    },
    /// Dead-lettered.
    Dead,
}

impl Settled {
    /// What a failure's transition does, once applied.
    pub(crate) fn of(transition: &Transition) -> Self {
        match transition {
            Transition::Requeue { available_at, .. } => Self::Requeued {
                available_at: *available_at,
            },
            Transition::Dead { .. } => Self::Dead,
        }
    }
}

/// One result per settled entry (a lost lease or an invalid follow-up in
/// its slot), and the messages claimed after them in the same step.
pub type SettledAndClaimed = (Vec<Result<Settled, StoreError>>, Vec<Claimed>);

/// The places left in each capped queue (`max_queued`) while a batch of
/// acks is settled: an ack whose emitted events do not fit becomes a
/// retryable failure of its delivery, so backpressure reaches the producer
/// of the chain instead of overfilling the queue.
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// Per capped type: (queued now, max_queued).
    queues: HashMap<String, (u64, u64)>,
}

impl Room {
    /// Room from each capped type's count of queued messages.
    pub(crate) fn new(counts: impl IntoIterator<Item = (String, u64, u64)>) -> Self {
        Self {
            queues: counts
                .into_iter()
                .map(|(t, queued, max)| (t, (queued, max)))
                .collect(),
        }
    }

    /// Takes places for `follow_ups` when they all fit; otherwise takes
    /// none and answers the failure to record in place of the ack.
    pub(crate) fn take(&mut self, follow_ups: &[NewMessage]) -> Result<(), Failure> {
        let mut wanted: HashMap<&str, u64> = HashMap::new();
        for m in follow_ups {
            if self.queues.contains_key(&m.event_type) {
                *wanted.entry(m.event_type.as_str()).or_default() += 1;
            }
        }
        for (event_type, n) in &wanted {
            let (queued, max) = self.queues[*event_type];
            if queued.saturating_add(*n) > max {
                return Err(Failure::Retry {
                    reason: format!(
                        "the events it emitted do not fit: the queue of event type {event_type} is full ({max} queued, its max_queued)"
                    ),
                    after: None,
                });
            }
        }
        for (event_type, n) in wanted {
            if let Some((queued, _)) = self.queues.get_mut(event_type) {
                *queued += n;
            }
        }
        Ok(())
    }
}

/// One entry of a batch to settle: the claimed message, how its delivery
/// ended, and the digest of the plugin build that ran it. Implemented by
/// whatever the caller keeps per delivery, so a batch is settled without
/// copying payloads.
pub trait SettleEntry {
    /// The claimed message.
    fn claimed(&self) -> &Claimed;
    /// How its delivery ended.
    fn settlement(&self) -> &Settlement;
    /// The plugin build that ran the attempt, if any.
    fn digest(&self) -> Option<&str>;
}

/// The simplest [`SettleEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The claimed message.
    pub claimed: Claimed,
    /// How its delivery ended.
    pub settlement: Settlement,
    /// The plugin build that ran it.
    pub digest: Option<String>,
}

impl Outcome {
    /// An outcome without a plugin digest.
    pub fn new(claimed: Claimed, settlement: Settlement) -> Self {
        Self {
            claimed,
            settlement,
            digest: None,
        }
    }
}

impl SettleEntry for Outcome {
    fn claimed(&self) -> &Claimed {
        &self.claimed
    }
    fn settlement(&self) -> &Settlement {
        &self.settlement
    }
    fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

/// A borrowed entry, for callers that keep their claims elsewhere.
impl SettleEntry for (&Claimed, &Settlement, Option<&str>) {
    fn claimed(&self) -> &Claimed {
        self.0
    }
    fn settlement(&self) -> &Settlement {
        self.1
    }
    fn digest(&self) -> Option<&str> {
        self.2
    }
}

/// What the store does with one claimed message after a failure: the pure
/// state machine's decision, with a fresh jitter sample.
pub(crate) fn decide(
    claimed_event_type: &str,
    attempts: u32,
    max_attempts: u32,
    failure: &Failure,
    policies: &Policies,
    now: Millis,
) -> Transition {
    state_machine::after_failure(
        failure,
        attempts,
        max_attempts,
        policies.for_event_type(claimed_event_type),
        now,
        rand::random::<f64>(),
    )
}

/// [`decide`] for a message this store handed out.
pub(crate) fn decide_claimed(
    claimed: &Claimed,
    failure: &Failure,
    policies: &Policies,
    now: Millis,
) -> Transition {
    decide(
        &claimed.event_type,
        claimed.attempts,
        claimed.max_attempts,
        failure,
        policies,
        now,
    )
}

/// The follow-ups of the entries of `batch` that were acked (`results`,
/// one per entry), each with the message that emitted it, in batch order:
/// what a settle inserts once its acks and failures are known.
pub(crate) fn acked_follow_ups<'b, E: SettleEntry>(
    batch: &'b [E],
    results: &'b [Result<Settled, StoreError>],
) -> impl Iterator<Item = (&'b NewMessage, Option<Parent<'b>>)> {
    batch
        .iter()
        .zip(results)
        .filter_map(|(entry, result)| match (result, entry.settlement()) {
            (Ok(Settled::Acked), Settlement::Ack { follow_ups }) => {
                Some((Parent::of(entry.claimed()), follow_ups))
            }
            _ => None,
        })
        .flat_map(|(parent, follow_ups)| follow_ups.iter().map(move |m| (m, Some(parent))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(types: &[&str]) -> Vec<NewMessage> {
        types
            .iter()
            .map(|t| NewMessage::new(*t, b"{}".to_vec()))
            .collect()
    }

    #[test]
    fn acks_take_places_until_the_queue_is_full() {
        let mut room = Room::new([("capped".to_owned(), 1, 3)]);
        assert!(room.take(&emitted(&["capped", "free", "free"])).is_ok());
        assert!(room.take(&emitted(&["capped"])).is_ok(), "the third place");
        let Err(Failure::Retry { reason, after }) = room.take(&emitted(&["capped"])) else {
            panic!("a full queue refuses");
        };
        assert!(reason.contains("capped") && reason.contains("max_queued"), "{reason}");
        assert_eq!(after, None, "the type's backoff applies");
        assert!(room.take(&emitted(&["free"])).is_ok(), "uncapped types always fit");
    }

    #[test]
    fn an_ack_that_does_not_fit_takes_no_place() {
        let mut room = Room::new([("a".to_owned(), 0, 2), ("b".to_owned(), 0, 1)]);
        assert!(room.take(&emitted(&["a", "b", "b"])).is_err());
        assert!(room.take(&emitted(&["a", "a", "b"])).is_ok(), "nothing was taken before");
    }
}
