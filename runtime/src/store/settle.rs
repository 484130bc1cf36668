//! How deliveries end, and the decision each outcome leads to. Both
//! backends settle through [`decide`], so they apply one state machine.

use super::claim::Claimed;
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
