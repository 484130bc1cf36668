//! What a claim hands out: the message and the lease that proves the claim.

use crate::clock::Millis;
use crate::message::{MessageId, Priority};

/// Claim order between two queued messages given as (priority, seq):
/// highest priority first, then oldest. Both backends sort by it.
pub(crate) fn claim_order(a: (Priority, i64), b: (Priority, i64)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
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
