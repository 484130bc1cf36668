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
        let out = messages
            .iter()
            .map(|m| insert(&tx, m, &policies, now, None))
            .collect::<Result<Vec<_>, _>>()
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
    let correlation_id = message
        .correlation_id
        .clone()
        .or_else(|| parent.map(|p| p.correlation_id.to_owned()))
        .unwrap_or_else(|| id.to_string());
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
