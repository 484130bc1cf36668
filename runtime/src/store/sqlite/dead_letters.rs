//! The dead-letter queue: list, show, redrive and purge, plus looking up any
//! stored message by id.

use rusqlite::{OptionalExtension, Row, named_params};

use super::Mailbox;
use super::row::{correlation_column, get_u32};
use crate::message::MessageId;
use crate::state_machine::MessageState;
use crate::store::StoreError;
use crate::store::dead_letters::{
    DeadLetter, DeadLetterFilter, DeadLetterMatch, DeadLetterPage, Selection, StoredMessage,
    not_dead,
};

pub(super) const SUMMARY_COLUMNS: &str = concat!(
    "id, event_type, key, source, ",
    correlation_column!(""),
    ", priority, attempts, max_attempts, last_error, last_plugin_digest, length(payload), \
     created_at, dead_at, seq"
);

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

/// The conditions of a [`DeadLetterMatch`], as named parameters; a NULL
/// parameter is no condition.
const MATCHING: &str = "(:event_type IS NULL OR event_type = :event_type)
    AND (:error_contains IS NULL OR instr(last_error, :error_contains) > 0)
    AND (:died_after IS NULL OR dead_at >= :died_after)
    AND (:died_before IS NULL OR dead_at < :died_before)";

/// A page of dead letters in order of death after the cursor
/// (`:after_dead`, `:after_seq`), meeting [`MATCHING`], at most `:limit`.
pub(super) fn page_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM messages
          WHERE state = 'dead' AND (dead_at, seq) > (:after_dead, :after_seq) AND {MATCHING}
          ORDER BY dead_at, seq LIMIT :limit"
    )
}

/// The dead letters meeting [`MATCHING`], first dead first, at most
/// `:limit` (-1: all).
fn selected_sql() -> String {
    format!(
        "SELECT seq FROM messages WHERE state = 'dead' AND {MATCHING}
          ORDER BY dead_at, seq LIMIT :limit"
    )
}

/// How many dead letters meet [`MATCHING`].
fn count_sql() -> String {
    format!("SELECT count(*) FROM messages WHERE state = 'dead' AND {MATCHING}")
}


impl Mailbox {
    /// Lists dead letters in order of death, oldest first, a page at a time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`]-style [`StoreError::Corrupt`] never; a bad
    /// cursor gives [`StoreError::Invalid`]; otherwise a store failure.
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<DeadLetterPage, StoreError> {
        let limit = filter.page_size();
        let (after_dead, after_seq) = filter.after()?;
        let m = filter.matching();
        let read = || -> rusqlite::Result<Vec<(DeadLetter, i64)>> {
            let mut stmt = self.conn.prepare_cached(&page_sql())?;
            let mut rows = stmt.query(named_params! {
                ":after_dead": after_dead,
                ":after_seq": after_seq,
                ":event_type": m.event_type,
                ":error_contains": m.error_contains,
                ":died_after": m.died_after,
                ":died_before": m.died_before,
                ":limit": super::row::sql_int(limit + 1),
            })?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push((summary(row)?, row.get::<_, i64>(13)?));
            }
            Ok(out)
        };
        let rows = read().map_err(|e| self.ctx.err(e))?;
        Ok(crate::store::dead_letters::dead_letter_page(rows, limit))
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
            "UPDATE messages SET state = 'queued', attempts = 0, available_at = :now,
                    dead_at = NULL, updated_at = :now",
            Some(now),
        )
    }

    /// How many dead letters meet `matching`.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn count_dead_letters(&self, matching: &DeadLetterMatch) -> Result<u64, StoreError> {
        let m = matching;
        self.conn
            .prepare_cached(&count_sql())
            .and_then(|mut stmt| {
                stmt.query_row(
                    named_params! {
                        ":event_type": m.event_type,
                        ":error_contains": m.error_contains,
                        ":died_after": m.died_after,
                        ":died_before": m.died_before,
                    },
                    |row| row.get::<_, i64>(0),
                )
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.ctx.err(e))
    }

    /// Deletes dead letters for good. Returns how many were removed.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::redrive`].
    pub fn purge(&mut self, selection: &Selection) -> Result<usize, StoreError> {
        self.on_dead(selection, "DELETE FROM messages", None)
    }

    /// Runs `statement` (an UPDATE or DELETE without WHERE, that may name
    /// the time as `:now`) on the dead letters `selection` names.
    fn on_dead(
        &mut self,
        selection: &Selection,
        statement: &str,
        now: Option<crate::clock::Millis>,
    ) -> Result<usize, StoreError> {
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let run = || -> rusqlite::Result<usize> {
            let mut params: Vec<(&str, Box<dyn rusqlite::ToSql>)> = Vec::new();
            if let Some(now) = now {
                params.push((":now", Box::new(now)));
            }
            let sql = match selection.as_matching() {
                None => {
                    let Selection::One(id) = selection else {
                        unreachable!("only one message has no conditions")
                    };
                    params.push((":id", Box::new(id.to_string())));
                    format!("{statement} WHERE state = 'dead' AND id = :id")
                }
                Some((m, limit)) => {
                    params.push((":event_type", Box::new(m.event_type)));
                    params.push((":error_contains", Box::new(m.error_contains)));
                    params.push((":died_after", Box::new(m.died_after)));
                    params.push((":died_before", Box::new(m.died_before)));
                    params.push((
                        ":limit",
                        Box::new(limit.map_or(-1, super::row::sql_int)),
                    ));
                    format!("{statement} WHERE seq IN ({})", selected_sql())
                }
            };
            let named: Vec<(&str, &dyn rusqlite::ToSql)> =
                params.iter().map(|(n, v)| (*n, v.as_ref())).collect();
            tx.prepare(&sql)?.execute(named.as_slice())
        };
        let changed = run().map_err(|e| ctx.err(e))?;
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
