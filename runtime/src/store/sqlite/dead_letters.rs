//! The dead-letter queue: list, show, redrive and purge, plus looking up any
//! stored message by id.

use rusqlite::{OptionalExtension, Row, params};

use super::Mailbox;
use super::row::get_u32;
use crate::message::MessageId;
use crate::state_machine::MessageState;
use crate::store::StoreError;
use crate::store::dead_letters::{
    DeadLetter, DeadLetterFilter, DeadLetterPage, Selection, StoredMessage, not_dead,
};

pub(super) const SUMMARY_COLUMNS: &str = "id, event_type, key, source, correlation_id, priority, attempts, \
     max_attempts, last_error, last_plugin_digest, length(payload), created_at, dead_at, seq";

pub(super) fn summary(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        event_type: row.get(1)?,
        key: row.get(2)?,
        source: row.get(3)?,
        correlation_id: row.get(4)?,
        priority: row.get(5)?,
        attempts: get_u32(row, 6)?,
        max_attempts: get_u32(row, 7)?,
        last_error: row.get(8)?,
        plugin_digest: row.get(9)?,
        payload_bytes: row.get::<_, i64>(10)?.try_into().unwrap_or(0),
        created_at: row.get(11)?,
        dead_at: row.get(12)?,
    })
}

/// A page of dead letters after cursor `?1`, of type `?2` if not NULL, at
/// most `?3`.
pub(super) fn page_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM messages
          WHERE state = 'dead' AND seq > ?1 AND (?2 IS NULL OR event_type = ?2)
          ORDER BY seq LIMIT ?3"
    )
}


impl Mailbox {
    /// Lists dead letters oldest first, a page at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`]-style [`StoreError::Corrupt`] never; a bad
    /// cursor gives [`StoreError::Invalid`]; otherwise a store failure.
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<DeadLetterPage, StoreError> {
        let limit = filter.page_size();
        let after = filter.after()?;
        let read = || -> rusqlite::Result<Vec<(DeadLetter, i64)>> {
            let mut stmt = self.conn.prepare_cached(&page_sql())?;
            let mut rows = stmt.query(params![
                after,
                filter.event_type,
                super::row::sql_int(limit + 1)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push((summary(row)?, row.get::<_, i64>(13)?));
            }
            Ok(out)
        };
        let rows = read().map_err(|e| self.ctx.err(e))?;
        Ok(DeadLetterPage::from_rows(rows, limit))
    }

    /// Looks up any stored message by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoSuchMessage`] when no message has that id (acked,
    /// purged or never enqueued), or a store failure.
    pub fn message(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        let found = self
            .conn
            .prepare_cached(&format!(
                "SELECT {}, payload FROM messages m {} WHERE m.id = ?1",
                super::queue::MESSAGE_COLUMNS,
                super::queue::LEASE_JOIN
            ))
            .and_then(|mut stmt| {
                stmt.query_row([id], |row| {
                    let (m, _) = super::queue::message_summary(row)?;
                    Ok(StoredMessage {
                        summary: m.summary,
                        state: m.state,
                        available_at: m.available_at,
                        lease: m.lease,
                        payload: row.get(super::queue::PAYLOAD_COLUMN)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.ctx.err(e))?;
        found.ok_or(StoreError::NoSuchMessage { id })
    }

    /// One dead letter, payload included.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoSuchMessage`], [`StoreError::WrongState`] when the
    /// message is not dead, or a store failure.
    pub fn dead_letter(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        let message = self.message(id)?;
        if message.state != MessageState::Dead {
            return Err(StoreError::WrongState {
                id,
                expected: MessageState::Dead,
                actual: message.state,
            });
        }
        Ok(message)
    }

    /// Puts dead letters back in the queue, due now, with their attempts
    /// reset to 0 (their last error is kept). Returns how many moved.
    ///
    /// # Errors
    ///
    /// For [`Selection::One`]: [`StoreError::NoSuchMessage`] or
    /// [`StoreError::WrongState`]. Otherwise a store failure.
    pub fn redrive(&mut self, selection: &Selection) -> Result<usize, StoreError> {
        let now = self.now();
        self.on_dead(
            selection,
            "UPDATE messages SET state = ?1, attempts = 0, available_at = ?2, dead_at = NULL,
                    updated_at = ?2",
            params![MessageState::Queued, now],
        )
    }

    /// Deletes dead letters for good. Returns how many were removed.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::redrive`].
    pub fn purge(&mut self, selection: &Selection) -> Result<usize, StoreError> {
        self.on_dead(selection, "DELETE FROM messages", params![])
    }

    /// Runs `statement` (an UPDATE or DELETE without WHERE, whose own
    /// parameters are `params`) on the dead letters `selection` names.
    fn on_dead(
        &mut self,
        selection: &Selection,
        statement: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, StoreError> {
        let n = params.len();
        let (filter, arg): (String, Option<String>) = match selection {
            Selection::One(id) => (format!("id = ?{}", n + 1), Some(id.to_string())),
            Selection::EventType(t) => (format!("event_type = ?{}", n + 1), Some(t.clone())),
            Selection::All => ("1".to_owned(), None),
        };
        let sql = format!("{statement} WHERE state = 'dead' AND {filter}");
        let mut all: Vec<&dyn rusqlite::ToSql> = params.to_vec();
        if let Some(arg) = &arg {
            all.push(arg);
        }
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let changed = tx
            .prepare(&sql)
            .and_then(|mut stmt| stmt.execute(all.as_slice()))
            .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        if changed == 0
            && let Selection::One(id) = selection
        {
            // Say why nothing happened: unknown id, or not dead.
            return Err(not_dead(*id, self.message(*id)));
        }
        Ok(changed)
    }
}
