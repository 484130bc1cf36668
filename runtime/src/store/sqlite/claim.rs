//! Claiming: atomically hand due messages to one claimer under a lease.

use std::time::Duration;

use rusqlite::{Connection, Row, params};

use super::Mailbox;
use super::claimed_rows::ClaimedRows;
use super::row::{correlation_column, expect_changed, get_u32, json_list, sql_int};
use crate::store::claim::{Claimed, Lease, TypeCaps, fair_order, split_expired, type_limit};
use crate::store::{Outcome, StoreError};
use crate::clock::{Millis, duration_ms};
use crate::state_machine::Policies;
use crate::store::owner::LeaseOwner;
use crate::message::Priority;
use crate::state_machine::MessageState;

/// The first due queued messages of one type (`?1`) in claim order: highest
/// priority, then oldest. Read per routable type, so messages of types no
/// plugin handles (which may pile up) are never scanned past.
pub(super) const CANDIDATES: &str = "SELECT seq, priority FROM messages INDEXED BY messages_queue
    WHERE state = 'queued' AND event_type = ?1 AND available_at <= ?2
    ORDER BY priority DESC, seq
    LIMIT ?3";

/// The columns a claim hands out, in the order [`read_claimed`] reads them.
macro_rules! claimed_columns {
    () => {
        concat!(
            "id, event_type, payload, key, source, ",
            correlation_column!(""),
            ", priority, attempts, max_attempts, created_at, seq, depth"
        )
    };
}

/// The chosen candidates (`?1`: a JSON array of their `seq`), as a claim
/// hands them out. Read before [`TAKE`] in the same write transaction, so
/// they are exactly the rows it takes.
pub(super) const CHOSEN: &str = concat!(
    "SELECT ",
    claimed_columns!(),
    " FROM messages WHERE seq IN (SELECT value FROM json_each(?1)) AND state = 'queued'"
);

/// A claim of one type's messages (`?1`; `?2` is now, `?3` the limit): its
/// first due ones, as [`CANDIDATES`] finds them, read as [`CHOSEN`] reads
/// them, in one statement where a claim across types needs two (a
/// benchmark-driven choice: see docs/BENCHMARKS.md).
pub(super) const FIRST_DUE: &str = concat!(
    "SELECT ",
    claimed_columns!(),
    " FROM messages INDEXED BY messages_queue
     WHERE state = 'queued' AND event_type = ?1 AND available_at <= ?2
     ORDER BY priority DESC, seq
     LIMIT ?3"
);

/// Takes the chosen candidates (`?1`, as in [`CHOSEN`]): in flight under
/// the lease, one more attempt each. No value it sets can break a
/// constraint, so with `OR IGNORE` nothing can abort it half way and SQLite
/// keeps no statement journal (a copy of each page it writes). No
/// `RETURNING`: SQLite would load every column of each row a second time
/// and copy what it returns through a temporary table (a benchmark-driven
/// choice: see docs/BENCHMARKS.md).
pub(super) const TAKE: &str = "UPDATE OR IGNORE messages
       SET state = 'inflight', attempts = attempts + 1, lease_owner = ?2, lease_token = ?3,
           lease_expires_at = ?4, updated_at = ?5
     WHERE seq IN (SELECT value FROM json_each(?1)) AND state = 'queued'";

/// The next due time among queued messages of the types in `?1` (a JSON
/// array), paused ones left out; `?2` is now. Messages not due when written
/// are in `messages_delayed`, whose first entry per type is the earliest of
/// them. Any other queued message was due when written, so it is due now:
/// the first due one in claim order stands for them all (every due time at
/// or before now means the same, claim at once).
pub(super) const NEXT_DUE: &str = "WITH types(event_type) AS (
        SELECT value FROM json_each(?1)
         WHERE value NOT IN (SELECT event_type FROM paused_event_types))
    SELECT min(due) FROM (
        SELECT (SELECT min(available_at) FROM messages INDEXED BY messages_delayed
                 WHERE state = 'queued' AND available_at > created_at
                   AND event_type = types.event_type) AS due
          FROM types
        UNION ALL
        SELECT (SELECT available_at FROM messages INDEXED BY messages_queue
                 WHERE state = 'queued' AND event_type = types.event_type
                   AND available_at <= ?2
                 ORDER BY priority DESC, seq LIMIT 1)
          FROM types)";

impl Mailbox {
    /// Claims up to `limit` due messages whose event type is in
    /// `event_types`, highest priority first, then oldest; each gets
    /// `attempts + 1` and a lease of `lease` from now. Messages of other types
    /// wait without spending attempts. One transaction; a message is handed to
    /// exactly one claimer, whichever process it is in.
    ///
    /// # Errors
    ///
    /// A store failure ([`StoreError::Locked`] when another process kept the
    /// write lock past the busy timeout).
    pub fn claim<S: AsRef<str>>(
        &mut self,
        limit: usize,
        lease: Duration,
        event_types: &[S],
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 || event_types.is_empty() {
            return Ok(Vec::new());
        }
        // A claim is a settle-and-claim with nothing to settle.
        let nothing: &[Outcome] = &[];
        let (_, claimed) =
            self.settle_and_claim(nothing, limit, lease, event_types, &TypeCaps::new())?;
        Ok(claimed)
    }

    /// Who claims at `now`, and under which policies: what [`claim_in`]
    /// needs of this mailbox.
    pub(super) fn claimer(&self, now: Millis) -> Claimer {
        Claimer {
            now,
            owner: self.owner.clone(),
            first_claim: !self.registered,
            policies: (!self.policies.limits.is_empty()).then(|| self.policies.clone()),
        }
    }
}

/// The claiming mailbox's side of a claim.
pub(super) struct Claimer {
    /// The time of the claim.
    now: Millis,
    owner: LeaseOwner,
    /// Its owner is not yet recorded in `hosts`.
    first_claim: bool,
    /// Set when some event type has a ttl: expired messages are
    /// dead-lettered instead of handed out.
    policies: Option<Policies>,
}

/// Claims inside `tx` (see [`Mailbox::claim`]), at most `caps[t]` of each
/// type `t` listed in `caps`, and tells `claimed_rows` where the messages handed
/// out are stored; the caller commits.
pub(super) fn claim_in<S: AsRef<str>>(
    tx: &Connection,
    claimer: &Claimer,
    limit: usize,
    lease: Duration,
    event_types: &[S],
    caps: &TypeCaps,
    claimed_rows: &mut ClaimedRows,
) -> rusqlite::Result<Vec<Claimed>> {
    if limit == 0 || event_types.is_empty() {
        return Ok(Vec::new());
    }
    let now = claimer.now;
    let expires = now.saturating_add(duration_ms(lease));
    // A stale holder's token matches a later claim's by chance once in 2^64.
    let token = crate::store::short_random_id();
    let owner = &claimer.owner;
    if claimer.first_claim {
        super::registry::register_owner(tx, owner, now)?;
    }
    let mut types: std::collections::BTreeSet<&str> =
        event_types.iter().map(AsRef::as_ref).collect();
    // Paused types are not claimed, by any host.
    let paused = tx
        .prepare_cached("SELECT event_type FROM paused_event_types")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    for event_type in &paused {
        types.remove(event_type.as_str());
    }
    let read = |row: &Row<'_>| read_claimed(row, &token, expires);
    let only_type = match types.len() {
        1 => types.first().copied(),
        _ => None,
    };
    let (mut claimed, seqs) = if let Some(event_type) = only_type {
        let limit = sql_int(type_limit(limit, caps, event_type));
        let claimed = tx
            .prepare_cached(FIRST_DUE)?
            .query_map(params![event_type, now, limit], read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let seqs = json_list(&claimed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>());
        (claimed, seqs)
    } else {
        // The claim order across types: each type's first `limit`
        // candidates, merged in turns (`fair_order`).
        let mut candidates: Vec<(&str, Priority, i64)> = Vec::new();
        let mut select = tx.prepare_cached(CANDIDATES)?;
        for event_type in types {
            let rows = select.query_map(
                params![event_type, now, sql_int(type_limit(limit, caps, event_type))],
                |row| Ok((row.get::<_, Priority>(1)?, row.get::<_, i64>(0)?)),
            )?;
            for row in rows {
                let (priority, seq) = row?;
                candidates.push((event_type, priority, seq));
            }
        }
        fair_order(&mut candidates, |c| *c);
        candidates.truncate(limit);
        let seqs = json_list(&candidates.iter().map(|(_, _, s)| *s).collect::<Vec<_>>());
        let claimed = if candidates.is_empty() {
            Vec::new()
        } else {
            tx.prepare_cached(CHOSEN)?
                .query_map([&seqs], read)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        (claimed, seqs)
    };
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let taken = tx
        .prepare_cached(TAKE)?
        .execute(params![seqs, owner.id, token, expires, now])?;
    expect_changed(taken, claimed.len())?;
    // `CHOSEN` gives no order guarantee: restore the claim order.
    fair_order(&mut claimed, |(seq, c)| (c.event_type.as_str(), c.priority, *seq));
    let claimed: Vec<Claimed> = claimed
        .into_iter()
        .map(|(seq, c)| {
            claimed_rows.insert(c.id(), seq);
            c
        })
        .collect();
    let Some(policies) = &claimer.policies else {
        return Ok(claimed);
    };
    let (live, expired) = split_expired(claimed, policies, now);
    for (lease, transition) in &expired {
        claimed_rows.remove(&lease.id);
        super::settle::apply_failure(tx, lease, transition, None, now)?;
    }
    Ok(live)
}

/// One row of [`CHOSEN`] or [`FIRST_DUE`] as handed out under `token`
/// until `expires`, with its `seq`.
fn read_claimed(row: &Row<'_>, token: &str, expires: Millis) -> rusqlite::Result<(i64, Claimed)> {
    Ok((
        row.get::<_, i64>(10)?,
        Claimed {
            lease: Lease {
                id: row.get(0)?,
                token: token.to_owned(),
            },
            event_type: row.get(1)?,
            payload: row.get(2)?,
            key: row.get(3)?,
            source: row.get(4)?,
            correlation_id: row.get(5)?,
            priority: row.get(6)?,
            // As `TAKE` leaves it.
            attempts: get_u32(row, 7)?.saturating_add(1),
            max_attempts: get_u32(row, 8)?,
            created_at: row.get(9)?,
            lease_expires_at: expires,
            depth: get_u32(row, 11)?,
        },
    ))
}

impl Mailbox {
    /// Hands claimed messages back without counting their attempt: back to
    /// `queued`, due when they were due, `attempts` as before the claim. For
    /// deliveries that never ran (a host shutting down, a plugin unloaded
    /// between claim and delivery). Leases no longer held are skipped.
    /// Returns how many were released. One transaction.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn release(&mut self, leases: &[Lease]) -> Result<usize, StoreError> {
        let now = self.now();
        let ctx = self.ctx.clone();
        for lease in leases {
            self.claimed_rows.remove(&lease.id);
        }
        let tx = self.tx()?;
        let mut released = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE messages
                        SET state = ?1, attempts = max(attempts - 1, 0), lease_owner = NULL,
                            lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
                      WHERE id = ?3 AND state = ?4 AND lease_token = ?5",
                )
                .map_err(|e| ctx.err(e))?;
            for lease in leases {
                released += stmt
                    .execute(params![
                        MessageState::Queued,
                        now,
                        lease.id,
                        MessageState::Inflight,
                        lease.token
                    ])
                    .map_err(|e| ctx.err(e))?;
            }
        }
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(released)
    }

    /// When the next queued message of one of `event_types` becomes due, if
    /// any is queued: lets an idle dispatcher sleep exactly until then. A
    /// time at or before now when one is due already (not necessarily the
    /// earliest such time).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn next_due_at<S: AsRef<str>>(
        &self,
        event_types: &[S],
    ) -> Result<Option<Millis>, StoreError> {
        let types = json_list(&event_types.iter().map(AsRef::as_ref).collect::<Vec<&str>>());
        let now = self.now();
        self.conn
            .prepare_cached(NEXT_DUE)
            .and_then(|mut stmt| stmt.query_row(params![types, now], |row| row.get(0)))
            .map_err(|e| self.ctx.err(e))
    }
}
