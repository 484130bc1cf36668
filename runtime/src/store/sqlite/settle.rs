//! Settling claimed messages: acks (with the events the handler emitted) and
//! failures, one at a time or many in one transaction (group commit), which
//! may claim the next batch too.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::Mailbox;
use super::claim::claim_in;
use super::claimed_rows::ClaimedRows;
use super::enqueue::insert_all;
use super::row::{expect_changed, json_list};
use crate::clock::Millis;
use crate::message::{MessageId, NewMessage};
use crate::state_machine::{Failure, MessageState, Policies, Transition};
use crate::store::claim::{Claimed, Lease, TypeCaps};
use crate::store::enqueue::capped_types;
use crate::store::settle::{
    Outcome, Room, SettleEntry, Settled, SettledAndClaimed, Settlement, acked_follow_ups,
    decide_claimed,
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
        let rules = self.settle_rules();
        self.settle_in_tx(|tx, rows| settle_all(tx, batch, &rules, now, rows))
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
        let rules = self.settle_rules();
        let claimer = self.claimer(now);
        let settled = self.settle_in_tx(|tx, rows| {
            let Some(results) = settle_all(tx, batch, &rules, now, rows)? else {
                return Ok(None);
            };
            let claimed = claim_in(tx, &claimer, limit, lease, event_types, caps, rows)?;
            Ok(Some((results, claimed)))
        })?;
        // A claim of nothing records no owner.
        self.registered |= limit > 0 && !event_types.is_empty();
        Ok(settled)
    }

    /// Runs `settle` in one write transaction and commits what it returns.
    /// `Ok(None)`: an ack found a stored row it was told of no longer held
    /// (see `claimed_rows.rs`); the transaction is rolled back and `settle`
    /// runs again. It ends: each such run forgets at least the hint it found
    /// stale, and a settle without hints reads each claim first.
    fn settle_in_tx<T>(
        &mut self,
        mut settle: impl FnMut(&Connection, &mut ClaimedRows) -> rusqlite::Result<Option<T>>,
    ) -> Result<T, StoreError> {
        loop {
            // As `Mailbox::tx` opens it (immediate), but borrowing only the
            // connection, so that `settle` can have the hints beside it.
            let tx = self.conn.transaction().map_err(|e| self.ctx.err(e))?;
            let settled = settle(&tx, &mut self.claimed_rows).map_err(|e| self.ctx.err(e))?;
            if let Some(settled) = settled {
                tx.commit().map_err(|e| self.ctx.err(e))?;
                return Ok(settled);
            }
        }
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
/// Acks are removed first, one or two statements per claim among them (see
/// [`ack_all`]), then failures are applied one by one, then the acked
/// entries' follow-ups are inserted in batch order (PostgreSQL settles in
/// this order too). Statements per claim rather than per message: a
/// statement's own work (binding, starting and finishing it, and before
/// schema version 7 the journal of the pages it first touched) is paid once
/// per claim (a benchmark-driven change: see docs/BENCHMARKS.md).
/// `Ok(None)`: a hint in `rows` was stale, and the caller rolls back and
/// settles again.
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
    rows: &mut ClaimedRows,
) -> rusqlite::Result<Option<Vec<Result<Settled, StoreError>>>> {
    let policies = &rules.policies;
    let mut room = room_for(tx, batch, policies)?;
    // Each entry's step: `Err` decided already, `Ok(None)` an ack,
    // `Ok(Some(_))` a failure (an ack whose events do not fit included).
    let mut steps: Vec<Result<Option<Failure>, StoreError>> = Vec::with_capacity(batch.len());
    let mut acks: Vec<(MessageId, &str)> = Vec::new();
    for entry in batch {
        let (claimed, settlement) = (entry.claimed(), entry.settlement());
        let step = match settlement {
            Settlement::Ack { follow_ups } => {
                if let Some(invalid) = follow_ups
                    .iter()
                    .find_map(|m| m.validate(rules.max_payload).err())
                {
                    Err(StoreError::Invalid(invalid))
                } else {
                    room.take(follow_ups).err().map_or_else(
                        || {
                            acks.push((claimed.lease.id, &claimed.lease.token));
                            Ok(None)
                        },
                        |failure| Ok(Some(failure)),
                    )
                }
            }
            Settlement::Fail(failure) => Ok(Some(failure.clone())),
        };
        steps.push(step);
    }
    let Some(mut acked) = ack_all(tx, &acks, rows)? else {
        return Ok(None);
    };
    let mut results = Vec::with_capacity(batch.len());
    for (entry, step) in batch.iter().zip(steps) {
        let claimed = entry.claimed();
        let lost = || StoreError::LeaseLost { id: claimed.id() };
        results.push(match step {
            Err(e) => Err(e),
            // The first of several acks of one message takes it.
            Ok(None) if acked.remove(&claimed.lease.id) => Ok(Settled::Acked),
            Ok(None) => Err(lost()),
            Ok(Some(failure)) => {
                rows.remove(&claimed.lease.id);
                let transition = decide_claimed(claimed, &failure, policies, now);
                apply_failure(tx, &claimed.lease, &transition, entry.digest(), now)?
                    .ok_or_else(lost)
            }
        });
    }
    insert_all(tx, acked_follow_ups(batch, &results), policies, now)?;
    Ok(Some(results))
}

/// Removes the acked messages of one claim that are still held under its
/// lease (`?1`: a JSON array of their `seq` as claimed, `?2`: the claim's
/// lease token), where [`ClaimedRows`] knows every one of them.
pub(super) const ACK_CLAIMED: &str = "DELETE FROM messages
     WHERE seq IN (SELECT value FROM json_each(?1)) AND state = 'inflight' AND lease_token = ?2";

/// The acked messages of one claim whose lease is still held (`?1`: a JSON
/// array of their ids, `?2`: the claim's lease token): their `seq` and id.
/// For the acks [`ClaimedRows`] cannot place.
pub(super) const HELD: &str = "SELECT seq, id FROM messages
     WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'inflight' AND lease_token = ?2";

/// Removes the messages [`HELD`] found (`?1`: a JSON array of their `seq`).
/// Read first in the same write transaction rather than `RETURNING` the
/// ids, which made SQLite load every column of each row and copy the ids
/// through a temporary table (a benchmark-driven choice: see
/// docs/BENCHMARKS.md).
pub(super) const ACK: &str = "DELETE FROM messages WHERE seq IN (SELECT value FROM json_each(?1))";

/// Acks `acks` (id, lease token) once per claim among them (a claim's
/// messages share its token): the ids removed. A claim whose every row
/// `rows` knows is one [`ACK_CLAIMED`]; any other is [`HELD`] then [`ACK`].
/// `Ok(None)` when an [`ACK_CLAIMED`] removed fewer rows than it named:
/// some lease was lost, and which one only a read can tell, so the caller
/// rolls back and settles again (without the hints this forgot).
fn ack_all(
    tx: &Connection,
    acks: &[(MessageId, &str)],
    rows: &mut ClaimedRows,
) -> rusqlite::Result<Option<HashSet<MessageId>>> {
    let mut by_claim: HashMap<&str, Vec<MessageId>> = HashMap::new();
    for (id, token) in acks {
        by_claim.entry(token).or_default().push(*id);
    }
    let mut acked = HashSet::with_capacity(acks.len());
    let mut seqs: Vec<i64> = Vec::with_capacity(acks.len());
    for (token, ids) in by_claim {
        seqs.clear();
        seqs.extend(ids.iter().map_while(|id| rows.remove(id)));
        if seqs.len() == ids.len() {
            let removed = tx
                .prepare_cached(ACK_CLAIMED)?
                .execute(params![json_list(&seqs), token])?;
            if removed != seqs.len() {
                return Ok(None);
            }
            acked.extend(ids);
            continue;
        }
        seqs.clear();
        let mut held = tx.prepare_cached(HELD)?;
        let mut found = held.query(params![json_list(&ids), token])?;
        while let Some(row) = found.next()? {
            seqs.push(row.get(0)?);
            acked.insert(row.get(1)?);
        }
        if seqs.is_empty() {
            continue;
        }
        expect_changed(tx.prepare_cached(ACK)?.execute([json_list(&seqs)])?, seqs.len())?;
    }
    Ok(Some(acked))
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
