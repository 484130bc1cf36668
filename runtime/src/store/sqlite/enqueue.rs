//! Enqueueing: validated inserts, single or batched, with key dedupe
//! against stored messages and the keys of removed ones still retained.

use rusqlite::{Connection, OptionalExtension, params};

use super::Mailbox;
use crate::clock::{Millis, duration_ms};
use crate::message::{MessageId, NewMessage};
use crate::state_machine::Policies;
use crate::store::claim::Parent;
use crate::store::enqueue::capped_types;
use crate::store::{Enqueued, StoreError};

impl Mailbox {
    /// Enqueues one message. It is durable (per the store's durability
    /// setting) when this returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the message breaks a rule (nothing is
    /// stored), or a store failure.
    pub fn enqueue(&mut self, message: NewMessage) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_batch(vec![message])?;
        Ok(out.remove(0))
    }

    /// Enqueues many messages in one transaction: all are stored or none.
    /// Returns one [`Enqueued`] per message, in order. A key repeated within
    /// the batch resolves to the first message that carried it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the first invalid message (by its
    /// index in the batch; nothing is stored), or a store failure.
    pub fn enqueue_batch(
        &mut self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        for (index, message) in messages.iter().enumerate() {
            message.validate(self.max_payload_bytes).map_err(|source| {
                if messages.len() == 1 {
                    StoreError::Invalid(source)
                } else {
                    StoreError::InvalidInBatch { index, source }
                }
            })?;
        }
        let now = self.now();
        let policies = self.policies.clone();
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let out = insert_all(&tx, messages.iter().map(|m| (m, None)), &policies, now)
            .map_err(|e| ctx.err(e))?;
        // Counted after the inserts, in the same transaction: exact, since
        // SQLite has one writer at a time. Over it, `tx` drops: rollback.
        for (event_type, max_queued) in capped_types(&messages, &policies) {
            if queued_beyond(&tx, &event_type, max_queued).map_err(|e| ctx.err(e))? {
                return Err(StoreError::OverCapacity {
                    event_type,
                    max_queued,
                });
            }
        }
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(out)
    }
}

/// Whether more than `max_queued` messages of `event_type` are queued;
/// reads at most `max_queued + 1` entries of its queue index.
pub(crate) fn queued_beyond(
    tx: &Connection,
    event_type: &str,
    max_queued: u64,
) -> rusqlite::Result<bool> {
    Ok(queued_up_to(tx, event_type, max_queued.saturating_add(1))? > max_queued)
}

/// How many messages of `event_type` are queued, counting at most `limit`.
pub(crate) fn queued_up_to(tx: &Connection, event_type: &str, limit: u64) -> rusqlite::Result<u64> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM messages
              WHERE state = 'queued' AND event_type = ?1 LIMIT ?2)",
        )?
        .query_row(params![event_type, super::row::sql_int(limit)], |row| {
            row.get(0)
        })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The most rows one multi-row `INSERT` of [`insert_all`] writes; smaller
/// runs are written by halves (16, 8, … 1), so at most a few statements
/// besides, each prepared once per connection.
const MOST_ROWS: usize = 32;

/// The columns every multi-row `INSERT` writes, [`ROW_PARAMS`] of them
/// bound per row, in this order (`state` and `attempts` are constants).
const COLUMNS: &str = "id, event_type, payload, key, source, correlation_id, priority, state, attempts,
                       max_attempts, available_at, created_at, updated_at, depth";

/// Parameters per row of [`rows_sql`].
const ROW_PARAMS: usize = 12;

/// The multi-row `INSERT` of `rows` messages (a power of two up to
/// [`MOST_ROWS`]). Without `keyed` every key bound must be NULL. With it, a
/// row whose key a stored message holds (or one written earlier in the same
/// statement) is skipped, and so is one whose key is retained after its
/// message was removed; the caller tells them apart by the statement's
/// change count.
///
/// No row can break a constraint but the key's (every value bound is set,
/// ids are fresh), so with `OR IGNORE` nothing can abort the statement half
/// way, and SQLite keeps no statement journal for it: a copy of every page
/// the statement writes, a fifth of the insert's cost (docs/BENCHMARKS.md).
fn rows_sql(rows: usize, keyed: bool) -> &'static str {
    static SQL: std::sync::LazyLock<[Vec<String>; 2]> = std::sync::LazyLock::new(|| {
        let powers = 0..=MOST_ROWS.trailing_zeros();
        let values = |power: u32, row: &str| vec![row; 1 << power].join(", ");
        let plain = powers.clone().map(|power| {
            format!(
                "INSERT OR IGNORE INTO messages ({COLUMNS}) VALUES {}",
                values(power, "(?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)")
            )
        });
        let keyed = powers.map(|power| {
            format!(
                "INSERT OR IGNORE INTO messages ({COLUMNS})
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6,
                        v.column7, 'queued', 0, v.column8, v.column9, v.column10, v.column11,
                        v.column12
                   FROM (VALUES {}) AS v
                  WHERE v.column4 IS NULL
                     OR NOT EXISTS (SELECT 1 FROM retained_keys r WHERE r.key = v.column4)",
                values(power, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            )
        });
        [plain.collect(), keyed.collect()]
    });
    &SQL[usize::from(keyed)][rows.trailing_zeros() as usize]
}

/// A validated message ready to be written by [`insert_all`].
struct Row<'m> {
    id: MessageId,
    message: &'m NewMessage,
    correlation_id: String,
    max_attempts: u32,
    depth: u32,
}

/// Inserts validated messages inside `tx`, in order, each with its parent:
/// the message whose handler emitted it, whose correlation id it inherits
/// and whose depth + 1 is its own. Returns one [`Enqueued`] per message. A
/// key held by a stored message, or retained after its message was
/// removed, makes the message a duplicate of that one; a key repeated in
/// `messages` resolves to the first message that carried it.
///
/// Messages are written many to one statement: the per-statement work
/// (binding, starting and finishing a statement, the statement cache's
/// look-up) was about a quarter of a follow-up's insert, a third of a keyed
/// one's (docs/BENCHMARKS.md).
pub(crate) fn insert_all<'m>(
    tx: &Connection,
    messages: impl IntoIterator<Item = (&'m NewMessage, Option<Parent<'m>>)>,
    policies: &Policies,
    now: Millis,
) -> rusqlite::Result<Vec<Enqueued>> {
    let rows: Vec<Row<'m>> = messages
        .into_iter()
        .map(|(message, parent)| {
            let id = MessageId::new();
            Row {
                id,
                message,
                correlation_id: correlation_id(message, parent),
                max_attempts: message
                    .max_attempts
                    .unwrap_or_else(|| policies.for_event_type(&message.event_type).max_attempts),
                depth: Parent::child_depth(parent),
            }
        })
        .collect();
    let mut out: Vec<Enqueued> = rows
        .iter()
        .map(|row| Enqueued {
            id: row.id,
            duplicate: false,
        })
        .collect();
    write_rows(tx, &rows, &mut out, now)?;
    Ok(out)
}

/// Writes `rows` in order, in statements of [`MOST_ROWS`] and its halves,
/// and marks in `out` (one entry per row) those that were duplicates.
fn write_rows(
    tx: &Connection,
    rows: &[Row<'_>],
    mut out: &mut [Enqueued],
    now: Millis,
) -> rusqlite::Result<()> {
    let mut left = rows;
    while !left.is_empty() {
        let n = 1 << left.len().min(MOST_ROWS).ilog2();
        let (chunk, rest) = left.split_at(n);
        let (chunk_out, out_rest) = std::mem::take(&mut out).split_at_mut(n);
        let keyed = chunk.iter().any(|row| row.message.key.is_some());
        let mut stmt = tx.prepare_cached(rows_sql(n, keyed))?;
        for (i, row) in chunk.iter().enumerate() {
            let m = row.message;
            let at = i * ROW_PARAMS;
            stmt.raw_bind_parameter(at + 1, row.id)?;
            stmt.raw_bind_parameter(at + 2, &m.event_type)?;
            stmt.raw_bind_parameter(at + 3, &m.payload)?;
            stmt.raw_bind_parameter(at + 4, &m.key)?;
            stmt.raw_bind_parameter(at + 5, &m.source)?;
            stmt.raw_bind_parameter(at + 6, &row.correlation_id)?;
            stmt.raw_bind_parameter(at + 7, m.priority)?;
            stmt.raw_bind_parameter(at + 8, row.max_attempts)?;
            stmt.raw_bind_parameter(at + 9, now.saturating_add(duration_ms(m.delay)))?;
            stmt.raw_bind_parameter(at + 10, now)?;
            stmt.raw_bind_parameter(at + 11, now)?;
            stmt.raw_bind_parameter(at + 12, row.depth)?;
        }
        let written = stmt.raw_execute()?;
        if written < n {
            // Some keyed rows were duplicates: rare, so found row by row.
            let mut duplicates = 0;
            for (row, enqueued) in chunk.iter().zip(chunk_out) {
                if let Some(key) = &row.message.key {
                    *enqueued = resolve(tx, row.id, key)?;
                    duplicates += usize::from(enqueued.duplicate);
                }
            }
            // Anything else skipped would be a message reported stored
            // that is not: fail the transaction instead.
            if written + duplicates != n {
                return Err(rusqlite::Error::StatementChangedRows(written));
            }
        }
        left = rest;
        out = out_rest;
    }
    Ok(())
}

/// What became of a keyed message written as `id` by a statement that
/// skipped duplicates: the retained id when its key outlives a removed
/// message (the statement's `WHERE` left it out), else the id of the
/// stored message holding the key: its own when it was written.
fn resolve(tx: &Connection, id: MessageId, key: &str) -> rusqlite::Result<Enqueued> {
    let retained = tx
        .prepare_cached("SELECT id FROM retained_keys WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    let holder = match retained {
        Some(holder) => holder,
        None => tx
            .prepare_cached("SELECT id FROM messages WHERE key = ?1")?
            .query_row([key], |row| row.get(0))?,
    };
    Ok(Enqueued {
        id: holder,
        duplicate: holder != id,
    })
}

/// A new message's correlation id as stored: its own, else its parent's,
/// else the empty text, which reads as the message's id
/// ([`super::row::correlation_column`]).
fn correlation_id(message: &NewMessage, parent: Option<Parent<'_>>) -> String {
    message
        .correlation_id
        .clone()
        .or_else(|| parent.map(|p| p.correlation_id.to_owned()))
        .unwrap_or_default()
}
