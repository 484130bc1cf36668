//! What a claim hands out: the message and the lease that proves the claim.

use crate::clock::Millis;
use crate::message::{MessageId, Priority};
use crate::state_machine::{Failure, Policies, Transition, after_failure, is_expired};

/// Claim order between two queued messages given as (priority, seq):
/// highest priority first, then oldest. Both backends sort by it.
pub(crate) fn claim_order(a: (Priority, i64), b: (Priority, i64)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Splits a claim into the messages to deliver and those that outlived
/// their event type's ttl, each with the transition that dead-letters it:
/// an expired message is never delivered.
pub(crate) fn split_expired(
    claimed: Vec<Claimed>,
    policies: &Policies,
    now: Millis,
) -> (Vec<Claimed>, Vec<(Lease, Transition)>) {
    let mut live = Vec::with_capacity(claimed.len());
    let mut expired = Vec::new();
    for c in claimed {
        match policies.limits(&c.event_type).ttl {
            Some(ttl) if is_expired(c.created_at, now, Some(ttl)) => {
                let policy = policies.for_event_type(&c.event_type);
                let transition = after_failure(
                    &Failure::Expired { ttl },
                    c.attempts,
                    c.max_attempts,
                    policy,
                    now,
                    0.0,
                );
                expired.push((c.lease, transition));
            }
            _ => live.push(c),
        }
    }
    (live, expired)
}

/// Proof of a claim: the message id and the token of this claim. Acks and
/// failures are refused once the lease is no longer held.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The claimed message.
    pub id: MessageId,
    /// Unique to this claim of this message.
    pub token: String,
}

/// A message handed to a claimer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The lease to ack or fail with.
    pub lease: Lease,
    /// The event type it was routed by.
    pub event_type: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The idempotency key, if any.
    pub key: Option<String>,
    /// Where it came from, if known.
    pub source: Option<String>,
    /// Its correlation id.
    pub correlation_id: String,
    /// Its priority.
    pub priority: Priority,
    /// Attempts so far, this one included (1 on the first delivery).
    pub attempts: u32,
    /// The attempt budget.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub created_at: Millis,
    /// When the lease runs out.
    pub lease_expires_at: Millis,
}

impl Claimed {
    /// The message id.
    pub fn id(&self) -> MessageId {
        self.lease.id
    }
}
