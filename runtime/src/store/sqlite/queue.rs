//! Operating live queues on SQLite: messages in any state, cancelling
//! queued ones, pausing event types.

use rusqlite::{OptionalExtension, Row, params};

use super::Mailbox;
use super::dead_letters::summary;
use super::row::correlation_column;
use crate::message::MessageId;
use crate::state_machine::MessageState;
use crate::store::StoreError;
use crate::store::queue::{
    Cancelled, LeaseHolder, MessageFilter, MessagePage, MessageSummary, PauseChange, PausedType,
    refusal,
};

/// A message's summary, state, due time and lease, read by
/// [`message_summary`]; the table is `m`, joined by [`LEASE_JOIN`].
pub(super) const MESSAGE_COLUMNS: &str = concat!(
    "m.id, m.event_type, m.key, m.source, ",
    correlation_column!("m."),
    ", m.priority, m.attempts, m.max_attempts, m.last_error, m.last_plugin_digest, \
     length(m.payload), m.created_at, m.dead_at, m.seq, m.state, m.available_at, \
     coalesce(h.hostname || ':' || h.pid, m.lease_owner), m.lease_expires_at"
);

/// Names the host holding a lease as `stats` lists hosts.
pub(super) const LEASE_JOIN: &str = "LEFT JOIN hosts h ON h.owner = m.lease_owner";

/// The column after [`MESSAGE_COLUMNS`], where `message` reads the payload.
pub(super) const PAYLOAD_COLUMN: usize = 18;

/// A page of messages after position `?1`, of type `?2` and state `?3`
/// when not NULL, at most `?4`, in the order they were enqueued.
fn page_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m {LEASE_JOIN}
          WHERE m.seq > ?1 AND (?2 IS NULL OR m.event_type = ?2) AND (?3 IS NULL OR m.state = ?3)
          ORDER BY m.seq LIMIT ?4"
    )
}

/// Reads [`MESSAGE_COLUMNS`]: the message and its position.
pub(super) fn message_summary(row: &Row<'_>) -> rusqlite::Result<(MessageSummary, i64)> {
    let state: MessageState = row.get(14)?;
    let owner: Option<String> = row.get(16)?;
    let lease = owner
        .filter(|_| state == MessageState::Inflight)
        .map(|owner| -> rusqlite::Result<LeaseHolder> {
            Ok(LeaseHolder {
                owner,
                expires_at: row.get(17)?,
            })
        })
        .transpose()?;
    Ok((
        MessageSummary {
            state,
            summary: summary(row)?,
            available_at: row.get(15)?,
            lease,
        },
        row.get(13)?,
    ))
}

/// The event types no host may claim (`paused_event_types`).
pub(super) const PAUSED: &str =
    "SELECT event_type, paused_at FROM paused_event_types ORDER BY event_type";

impl Mailbox {
    /// Lists messages in any state, in the order they were enqueued, a page
    /// at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a bad cursor, or a store failure.
    pub fn messages(&self, filter: &MessageFilter) -> Result<MessagePage, StoreError> {
        let limit = filter.page_size();
        let after = filter.after()?;
        let read = || -> rusqlite::Result<Vec<(MessageSummary, i64)>> {
            let mut stmt = self.conn.prepare_cached(&page_sql())?;
            let rows = stmt.query_map(
                params![
                    after,
                    filter.event_type,
                    filter.state_text(),
                    super::row::sql_int(limit + 1)
                ],
                message_summary,
            )?;
            rows.collect()
        };
        let rows = read().map_err(|e| self.ctx.err(e))?;
        Ok(MessagePage::from_rows(rows, limit))
    }

    /// Removes the named queued messages, one transaction; says why each
    /// other id was not removed.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn cancel_ids(&mut self, ids: &[MessageId]) -> Result<Cancelled, StoreError> {
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let mut done = Cancelled::default();
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM messages WHERE id = ?1 AND state = 'queued'")
                .map_err(|e| ctx.err(e))?;
            let mut state = tx
                .prepare_cached("SELECT state FROM messages WHERE id = ?1")
                .map_err(|e| ctx.err(e))?;
            for id in ids {
                if delete.execute([id]).map_err(|e| ctx.err(e))? == 1 {
                    done.cancelled += 1;
                } else {
                    let found: Option<MessageState> = state
                        .query_row([id], |row| row.get(0))
                        .optional()
                        .map_err(|e| ctx.err(e))?;
                    done.refused.push(refusal(*id, found));
                }
            }
        }
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(done)
    }

    /// Removes up to `limit` queued messages of `event_type`, oldest first,
    /// in one short transaction; returns how many. Call again until it
    /// returns 0 to empty the queue without holding the write lock long.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn cancel_queued(&mut self, event_type: &str, limit: usize) -> Result<usize, StoreError> {
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let removed = tx
            .prepare_cached(
                "DELETE FROM messages WHERE seq IN (
                     SELECT seq FROM messages INDEXED BY messages_queue
                      WHERE state = 'queued' AND event_type = ?1 ORDER BY priority DESC, seq
                      LIMIT ?2)",
            )
            .and_then(|mut stmt| stmt.execute(params![event_type, super::row::sql_int(limit)]))
            .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(removed)
    }

    /// How many messages of `event_type` are in flight.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn inflight_of(&self, event_type: &str) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE state = 'inflight' AND event_type = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([event_type], |row| row.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.ctx.err(e))
    }

    /// Pauses (`paused`) or resumes an event type for every host on this
    /// store.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn set_paused(
        &mut self,
        event_type: &str,
        paused: bool,
    ) -> Result<PauseChange, StoreError> {
        let now = self.now();
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let changed = if paused {
            tx.execute(
                "INSERT INTO paused_event_types (event_type, paused_at) VALUES (?1, ?2)
                 ON CONFLICT (event_type) DO NOTHING",
                params![event_type, now],
            )
        } else {
            tx.execute(
                "DELETE FROM paused_event_types WHERE event_type = ?1",
                [event_type],
            )
        }
        .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(PauseChange {
            paused,
            changed: changed == 1,
        })
    }

    /// The paused event types.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn paused(&self) -> Result<Vec<PausedType>, StoreError> {
        let read = || -> rusqlite::Result<Vec<PausedType>> {
            let mut stmt = self.conn.prepare_cached(PAUSED)?;
            let rows = stmt.query_map([], |row| {
                Ok(PausedType {
                    event_type: row.get(0)?,
                    paused_at: row.get(1)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.ctx.err(e))
    }
}
