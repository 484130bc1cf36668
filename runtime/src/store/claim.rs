//! What a claim hands out: the message and the lease that proves the claim.

use crate::clock::Millis;
use crate::message::{MessageId, Priority};
use crate::state_machine::{Failure, Policies, Transition, after_failure, is_expired};

/// The most messages of each event type one claim may take, beside its
/// overall limit; a type not listed is held to that limit alone. The
/// dispatcher caps the types whose handlers are slow, so that a claim does
/// not hold more of their messages than their slots get through soon.
pub type TypeCaps = std::collections::HashMap<String, usize>;

/// How many messages of `event_type` a claim of up to `limit` may take.
pub(crate) fn type_limit(limit: usize, caps: &TypeCaps, event_type: &str) -> usize {
    caps.get(event_type).map_or(limit, |cap| limit.min(*cap))
}

/// Puts claim candidates in the order a claim takes them, across event
/// types: highest priority first; within a priority, in turns across types
/// (each type's oldest, then each type's second oldest, ...); then oldest.
/// So a type with thousands of due messages cannot fill a claim while
/// another type has due messages of the same priority. `key` gives an
/// item's event type, priority and `seq`. Both backends order by it.
pub(crate) fn fair_order<I>(items: &mut [I], key: impl Fn(&I) -> (&str, Priority, i64)) {
    // Each item's turn within its type and priority.
    let mut by_type: Vec<usize> = (0..items.len()).collect();
    by_type.sort_by(|&a, &b| {
        let (ta, pa, sa) = key(&items[a]);
        let (tb, pb, sb) = key(&items[b]);
        ta.cmp(tb).then(pb.cmp(&pa)).then(sa.cmp(&sb))
    });
    let mut turns = vec![0_usize; items.len()];
    for pair in 1..by_type.len() {
        let (prev, this) = (by_type[pair - 1], by_type[pair]);
        let (tp, pp, _) = key(&items[prev]);
        let (tt, pt, _) = key(&items[this]);
        if tp == tt && pp == pt {
            turns[this] = turns[prev] + 1;
        }
    }
    let mut order: Vec<(Priority, usize, i64, usize)> = (0..items.len())
        .map(|i| {
            let (_, priority, seq) = key(&items[i]);
            (priority, turns[i], seq, i)
        })
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    // Apply the permutation: `order[k].3` is the item that goes to `k`.
    let mut target: Vec<usize> = vec![0; items.len()];
    for (k, entry) in order.iter().enumerate() {
        target[entry.3] = k;
    }
    for i in 0..items.len() {
        while target[i] != i {
            let j = target[i];
            items.swap(i, j);
            target.swap(i, j);
        }
    }
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
    /// Its chain depth: 0 when a producer enqueued it, the emitting
    /// message's depth + 1 when a handler emitted it.
    pub depth: u32,
}

/// What a follow-up inherits from the message whose handler emitted it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parent<'a> {
    /// Kept unless the follow-up names its own.
    pub(crate) correlation_id: &'a str,
    /// The follow-up's depth is one more.
    pub(crate) depth: u32,
}

impl<'a> Parent<'a> {
    /// The parent `claimed` is to its follow-ups.
    pub(crate) fn of(claimed: &'a Claimed) -> Self {
        Self {
            correlation_id: &claimed.correlation_id,
            depth: claimed.depth,
        }
    }

    /// The chain depth of a follow-up of `parent` (0 without one).
    pub(crate) fn child_depth(parent: Option<Parent<'_>>) -> u32 {
        parent.map_or(0, |p| p.depth.saturating_add(1))
    }
}

impl Claimed {
    /// The message id.
    pub fn id(&self) -> MessageId {
        self.lease.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `seq`s of `items` (type, priority, seq) in claim order.
    fn claimed_in_order(mut items: Vec<(&str, Priority, i64)>) -> Vec<i64> {
        fair_order(&mut items, |i| *i);
        items.iter().map(|i| i.2).collect()
    }

    #[test]
    fn claims_take_turns_across_types_within_a_priority() {
        let items = vec![
            ("flood", Priority::Normal, 1),
            ("flood", Priority::Normal, 2),
            ("flood", Priority::Normal, 3),
            ("order", Priority::Normal, 10),
            ("order", Priority::Normal, 11),
            ("late", Priority::Low, 0),
            ("urgent", Priority::High, 20),
        ];
        assert_eq!(claimed_in_order(items), vec![20, 1, 10, 2, 11, 3, 0]);
    }

    #[test]
    fn one_type_keeps_priority_then_age() {
        let items = vec![
            ("a", Priority::Low, 1),
            ("a", Priority::Normal, 3),
            ("a", Priority::Normal, 2),
        ];
        assert_eq!(claimed_in_order(items), vec![2, 3, 1]);
    }
}
