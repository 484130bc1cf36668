//! Settling claimed messages: acks (with the events the handler emitted) and
//! failures, one at a time or many in one transaction (group commit), which
//! may claim the next batch too.

use rusqlite::{Connection, params};

use super::Mailbox;
use super::claim::claim_in;
use super::enqueue::insert;
use crate::clock::Millis;
use crate::message::NewMessage;
use crate::state_machine::{Failure, MessageState, Policies, Transition};
use crate::store::claim::{Claimed, Lease, Parent, TypeCaps};
use crate::store::enqueue::capped_types;
use crate::store::settle::{
    Outcome, Room, SettleEntry, Settled, SettledAndClaimed, Settlement, decide,
};
use crate::store::StoreError;

impl Mailbox {
    /// Acks one claimed message, enqueueing `follow_ups` in the same transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] (nothing committed) when the lease is no
    /// longer held; [`StoreError::Invalid`] for an invalid follow-up
    /// (nothing committed); or a store failure.
    pub fn ack(
        &mut self,
        claimed: &Claimed,
        follow_ups: Vec<NewMessage>,
    ) -> Result<(), StoreError> {
        self.settle_one(claimed, Settlement::Ack { follow_ups }, None)
            .map(|_| ())
    }

    /// Records a failed attempt of one claimed message.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] (nothing committed) when the lease is no
    /// longer held, or a store failure.
    pub fn fail(&mut self, claimed: &Claimed, failure: Failure) -> Result<Settled, StoreError> {
        self.settle_one(claimed, Settlement::Fail(failure), None)
    }

    /// Settles one message; `plugin_digest` stamps the attempt with the
    /// plugin build that ran it.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::ack`] and [`Mailbox::fail`].
    pub fn settle_one(
        &mut self,
        claimed: &Claimed,
        settlement: Settlement,
        plugin_digest: Option<&str>,
    ) -> Result<Settled, StoreError> {
        let outcome = Outcome {
            claimed: claimed.clone(),
            settlement,
            digest: plugin_digest.map(str::to_owned),
        };
        let mut results = self.settle(std::slice::from_ref(&outcome))?;
        results.remove(0)
    }

    /// Settles many messages in one transaction. Each entry succeeds or fails
    /// on its own: a lost lease or an invalid follow-up changes nothing for
    /// that entry and is reported in its slot.
    ///
    /// # Errors
    ///
    /// The outer error is a store failure that rolled back the whole batch.
    pub fn settle<E: SettleEntry>(
        &mut self,
        batch: &[E],
    ) -> Result<Vec<Result<Settled, StoreError>>, StoreError> {
        let now = self.now();
        let ctx = self.ctx.clone();
        let rules = self.settle_rules();
        let tx = self.tx()?;
        let results = settle_all(&tx, batch, &rules, now).map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(results)
    }

    /// Settles `batch` as [`Mailbox::settle`] does, then claims as
    /// [`Mailbox::claim`] does, in the same transaction: one commit where
    /// there would be two, and the pages both write (the head of the queue
    /// and its indexes) written once.
    ///
    /// # Errors
    ///
    /// A store failure that rolled back both.
    pub fn settle_and_claim<E: SettleEntry, S: AsRef<str>>(
        &mut self,
        batch: &[E],
        limit: usize,
        lease: std::time::Duration,
        event_types: &[S],
        caps: &TypeCaps,
    ) -> Result<SettledAndClaimed, StoreError> {
        let now = self.now();
        let ctx = self.ctx.clone();
        let rules = self.settle_rules();
        let claimer = self.claimer();
        let tx = self.tx()?;
        let results = settle_all(&tx, batch, &rules, now).map_err(|e| ctx.err(e))?;
        let claimed =
            claim_in(&tx, &claimer, now, limit, lease, event_types, caps).map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        // A claim of nothing records no owner.
        self.registered |= limit > 0 && !event_types.is_empty();
        Ok((results, claimed))
    }

    fn settle_rules(&self) -> SettleRules {
        SettleRules {
            policies: self.policies.clone(),
            max_payload: self.max_payload_bytes,
        }
    }
}

/// What settling checks outcomes against.
struct SettleRules {
    policies: Policies,
    max_payload: usize,
}

/// Settles every entry of `batch` inside `tx` (see [`Mailbox::settle`]);
/// the caller commits. An `Err` is a store failure: the caller rolls back.
///
/// No savepoint per entry is needed: an entry is checked (follow-ups
/// validated, then the lease-guarded DELETE or UPDATE) before it writes
/// anything else, and any later failure is a store failure that rolls
/// back the whole batch.
fn settle_all<E: SettleEntry>(
    tx: &Connection,
    batch: &[E],
    rules: &SettleRules,
    now: Millis,
) -> rusqlite::Result<Vec<Result<Settled, StoreError>>> {
    let policies = &rules.policies;
    let mut room = room_for(tx, batch, policies)?;
    let mut results = Vec::with_capacity(batch.len());
    for entry in batch {
        let (claimed, settlement, digest) = (entry.claimed(), entry.settlement(), entry.digest());
        if let Settlement::Ack { follow_ups } = settlement
            && let Some(invalid) = follow_ups
                .iter()
                .find_map(|m| m.validate(rules.max_payload).err())
        {
            results.push(Err(StoreError::Invalid(invalid)));
            continue;
        }
        let over_capacity;
        let settlement = match settlement {
            Settlement::Ack { follow_ups } => match room.take(follow_ups) {
                Ok(()) => settlement,
                Err(failure) => {
                    over_capacity = Settlement::Fail(failure);
                    &over_capacity
                }
            },
            Settlement::Fail(_) => settlement,
        };
        let settled = settle_in(tx, claimed, settlement, digest, policies, now)?;
        results.push(settled.ok_or(StoreError::LeaseLost { id: claimed.id() }));
    }
    Ok(results)
}

/// The places left in the capped queues the batch's acks emit into.
fn room_for<E: SettleEntry>(
    tx: &Connection,
    batch: &[E],
    policies: &Policies,
) -> rusqlite::Result<Room> {
    let emitted = batch.iter().flat_map(|e| match e.settlement() {
        Settlement::Ack { follow_ups } => follow_ups.as_slice(),
        Settlement::Fail(_) => &[],
    });
    let mut counts = Vec::new();
    for (event_type, max) in capped_types(emitted, policies) {
        let queued = super::enqueue::queued_up_to(tx, &event_type, max.saturating_add(1))?;
        counts.push((event_type, queued, max));
    }
    Ok(Room::new(counts))
}

/// Applies one settlement; `Ok(None)` when the lease is no longer held.
fn settle_in(
    tx: &Connection,
    claimed: &Claimed,
    settlement: &Settlement,
    digest: Option<&str>,
    policies: &Policies,
    now: Millis,
) -> rusqlite::Result<Option<Settled>> {
    let lease = &claimed.lease;
    match settlement {
        Settlement::Ack { follow_ups } => {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM messages WHERE id = ?1 AND state = ?2 AND lease_token = ?3",
                )?
                .execute(params![lease.id, MessageState::Inflight, lease.token])?;
            if removed == 0 {
                return Ok(None);
            }
            for follow_up in follow_ups {
                insert(tx, follow_up, policies, now, Some(Parent::of(claimed)))?;
            }
            Ok(Some(Settled::Acked))
        }
        Settlement::Fail(failure) => {
            let transition = decide(
                &claimed.event_type,
                claimed.attempts,
                claimed.max_attempts,
                failure,
                policies,
                now,
            );
            apply_failure(tx, lease, &transition, digest, now)
        }
    }
}

/// Moves an in-flight message per `transition`, guarded by its lease token.
/// `Ok(None)` when the lease is no longer held.
pub(crate) fn apply_failure(
    tx: &Connection,
    lease: &Lease,
    transition: &Transition,
    digest: Option<&str>,
    now: Millis,
) -> rusqlite::Result<Option<Settled>> {
    let (state, available_at, last_error, dead_at) = match transition {
        Transition::Requeue {
            available_at,
            last_error,
        } => (MessageState::Queued, Some(*available_at), last_error, None),
        Transition::Dead { last_error } => (MessageState::Dead, None, last_error, Some(now)),
    };
    let changed = tx
        .prepare_cached(
            "UPDATE messages
                SET state = ?1, available_at = COALESCE(?2, available_at), last_error = ?3,
                    dead_at = ?4, last_plugin_digest = COALESCE(?5, last_plugin_digest),
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?6
              WHERE id = ?7 AND state = ?8 AND lease_token = ?9",
        )?
        .execute(params![
            state,
            available_at,
            last_error,
            dead_at,
            digest,
            now,
            lease.id,
            MessageState::Inflight,
            lease.token,
        ])?;
    Ok((changed == 1).then(|| Settled::of(transition)))
}
