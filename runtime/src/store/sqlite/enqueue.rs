//! Enqueueing: validated inserts, single or batched, with key dedupe
//! against stored messages and the keys of removed ones still retained.

use rusqlite::{Connection, OptionalExtension, params};

use super::Mailbox;
use crate::clock::{Millis, duration_ms};
use crate::message::{MessageId, NewMessage};
use crate::state_machine::{MessageState, Policies};
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

/// Inserts one validated message inside `tx`. `parent` is the message whose
/// handler emitted this one: its correlation id is inherited, its depth + 1
/// is this one's.
pub(crate) fn insert(
    tx: &Connection,
    message: &NewMessage,
    policies: &Policies,
    now: Millis,
    parent: Option<Parent<'_>>,
) -> rusqlite::Result<Enqueued> {
    if let Some(key) = &message.key {
        let retained = tx
            .prepare_cached("SELECT id FROM retained_keys WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?;
        if let Some(id) = retained {
            return Ok(Enqueued {
                id,
                duplicate: true,
            });
        }
    }
    let id = MessageId::new();
    let correlation_id = correlation_id(message, parent, id);
    let max_attempts = message
        .max_attempts
        .unwrap_or_else(|| policies.for_event_type(&message.event_type).max_attempts);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO messages (id, event_type, payload, key, source, correlation_id, priority,
                                   state, attempts, max_attempts, available_at, created_at, updated_at,
                                   depth)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?11, ?12)
             ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING",
        )?
        .execute(params![
            id,
            message.event_type,
            message.payload,
            message.key,
            message.source,
            correlation_id,
            message.priority,
            MessageState::Queued,
            max_attempts,
            now.saturating_add(duration_ms(message.delay)),
            now,
            Parent::child_depth(parent),
        ])?;
    if inserted == 1 {
        return Ok(Enqueued {
            id,
            duplicate: false,
        });
    }
    // Only the key can conflict (ids are fresh UUIDs), so the key is set.
    let existing = tx
        .prepare_cached("SELECT id FROM messages WHERE key = ?1")?
        .query_row([&message.key], |row| row.get(0))
        .optional()?;
    existing
        .map(|id| Enqueued {
            id,
            duplicate: true,
        })
        .ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// The most rows one multi-row `INSERT` of [`insert_all`] writes; smaller
/// runs are written by halves (16, 8, … 1), so at most a few statements
/// besides, each prepared once per connection.
const MOST_ROWS: usize = 32;

/// The multi-row `INSERT` of `rows` (a power of two up to [`MOST_ROWS`])
/// messages without a key: [`ROW_PARAMS`] parameters per row.
fn rows_sql(rows: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..=MOST_ROWS.trailing_zeros())
            .map(|power| {
                let row = "(?, ?, ?, NULL, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)";
                format!(
                    "INSERT INTO messages (id, event_type, payload, key, source, correlation_id,
                                           priority, state, attempts, max_attempts, available_at,
                                           created_at, updated_at, depth)
                     VALUES {}",
                    vec![row; 1 << power].join(", ")
                )
            })
            .collect()
    });
    &SQL[rows.trailing_zeros() as usize]
}

/// Parameters per row of [`rows_sql`].
const ROW_PARAMS: usize = 11;

/// A message without a key, ready to be written by [`insert_all`].
struct Row<'m> {
    id: MessageId,
    message: &'m NewMessage,
    correlation_id: String,
    max_attempts: u32,
    depth: u32,
}

/// Inserts validated messages inside `tx`, in order, each with its parent
/// (see [`insert`]). Messages without a key (whose insert cannot conflict)
/// are written many to one statement: the per-statement work (binding,
/// starting and finishing a statement, the statement cache's look-up) was
/// about a quarter of a follow-up's insert (docs/BENCHMARKS.md). A keyed
/// message goes through [`insert`], after the rows before it, so the batch
/// keeps its order.
pub(crate) fn insert_all<'m>(
    tx: &Connection,
    messages: impl IntoIterator<Item = (&'m NewMessage, Option<Parent<'m>>)>,
    policies: &Policies,
    now: Millis,
) -> rusqlite::Result<Vec<Enqueued>> {
    let mut out = Vec::new();
    let mut rows: Vec<Row<'m>> = Vec::new();
    for (message, parent) in messages {
        if message.key.is_some() {
            write_rows(tx, &mut rows, now)?;
            out.push(insert(tx, message, policies, now, parent)?);
            continue;
        }
        let id = MessageId::new();
        rows.push(Row {
            id,
            message,
            correlation_id: correlation_id(message, parent, id),
            max_attempts: message
                .max_attempts
                .unwrap_or_else(|| policies.for_event_type(&message.event_type).max_attempts),
            depth: Parent::child_depth(parent),
        });
        out.push(Enqueued {
            id,
            duplicate: false,
        });
        if rows.len() == MOST_ROWS {
            write_rows(tx, &mut rows, now)?;
        }
    }
    write_rows(tx, &mut rows, now)?;
    Ok(out)
}

/// Writes `rows` in order, in statements of [`MOST_ROWS`] and its halves,
/// and empties it.
fn write_rows(tx: &Connection, rows: &mut Vec<Row<'_>>, now: Millis) -> rusqlite::Result<()> {
    let mut left: &[Row<'_>] = rows;
    while !left.is_empty() {
        let n = 1 << left.len().min(MOST_ROWS).ilog2();
        let (chunk, rest) = left.split_at(n);
        let mut stmt = tx.prepare_cached(rows_sql(n))?;
        for (i, row) in chunk.iter().enumerate() {
            let m = row.message;
            let at = i * ROW_PARAMS;
            stmt.raw_bind_parameter(at + 1, row.id)?;
            stmt.raw_bind_parameter(at + 2, &m.event_type)?;
            stmt.raw_bind_parameter(at + 3, &m.payload)?;
            stmt.raw_bind_parameter(at + 4, &m.source)?;
            stmt.raw_bind_parameter(at + 5, &row.correlation_id)?;
            stmt.raw_bind_parameter(at + 6, m.priority)?;
            stmt.raw_bind_parameter(at + 7, row.max_attempts)?;
            stmt.raw_bind_parameter(at + 8, now.saturating_add(duration_ms(m.delay)))?;
            stmt.raw_bind_parameter(at + 9, now)?;
            stmt.raw_bind_parameter(at + 10, now)?;
            stmt.raw_bind_parameter(at + 11, row.depth)?;
        }
        stmt.raw_execute()?;
        left = rest;
    }
    rows.clear();
    Ok(())
}

/// A new message's correlation id: its own, else its parent's, else its id.
fn correlation_id(message: &NewMessage, parent: Option<Parent<'_>>, id: MessageId) -> String {
    message
        .correlation_id
        .clone()
        .or_else(|| parent.map(|p| p.correlation_id.to_owned()))
        .unwrap_or_else(|| id.to_string())
}
