//! The dead-letter queue: list, show, redrive and purge, plus looking up any
//! stored message by id.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::row::get_u32;
use super::{Mailbox, MailboxError};
use crate::clock::Millis;
use crate::message::{MessageId, Priority};
use crate::state_machine::MessageState;

/// A dead-lettered message, without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The message id.
    pub id: MessageId,
    /// Its event type.
    pub event_type: String,
    /// Its idempotency key.
    pub key: Option<String>,
    /// Where it came from.
    pub source: Option<String>,
    /// Its correlation id.
    pub correlation_id: String,
    /// Its priority.
    pub priority: Priority,
    /// Attempts made.
    pub attempts: u32,
    /// The attempt budget it had.
    pub max_attempts: u32,
    /// Why it died (truncated).
    pub last_error: Option<String>,
    /// The digest of the plugin build that ran its last attempt.
    pub plugin_digest: Option<String>,
    /// Payload size in bytes.
    pub payload_bytes: u64,
    /// When it was enqueued (ms since the Unix epoch).
    pub created_at: Millis,
    /// When it died (ms since the Unix epoch).
    pub dead_at: Option<Millis>,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this event type.
    pub event_type: Option<String>,
    /// At most this many (0 means the default of 100).
    pub limit: usize,
    /// Continue after this cursor (from [`DeadLetterPage::next_cursor`]).
    pub cursor: Option<String>,
}

/// One page of dead letters, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetter>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which messages a redrive or purge applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One message, by id.
    One(MessageId),
    /// Every dead letter of one event type.
    EventType(String),
    /// Every dead letter.
    All,
}

/// Any stored message, payload included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    /// Its state.
    pub state: MessageState,
    /// Everything a dead letter shows (`dead_at` is `None` unless dead).
    #[serde(flatten)]
    pub summary: DeadLetter,
    /// When it is (or was) next due (ms since the Unix epoch).
    pub available_at: Millis,
    /// The payload bytes.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

const SUMMARY_COLUMNS: &str = "id, event_type, key, source, correlation_id, priority, attempts, \
     max_attempts, last_error, last_plugin_digest, length(payload), created_at, dead_at, seq";

fn summary(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
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

/// The default and largest page of dead letters.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl Mailbox {
    /// Lists dead letters oldest first, a page at a time.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Invalid`]-style [`MailboxError::Corrupt`] never; a bad
    /// cursor gives [`MailboxError::Invalid`]; otherwise a store failure.
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<DeadLetterPage, MailboxError> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after: i64 = match &filter.cursor {
            None => 0,
            Some(c) => c.parse().map_err(|_| {
                MailboxError::Invalid(crate::message::InvalidInput::Id(format!(
                    "`{c}` is not a dead-letter cursor: pass the next_cursor of a previous page"
                )))
            })?,
        };
        let read = || -> rusqlite::Result<DeadLetterPage> {
            let mut stmt = self.conn.prepare_cached(&page_sql())?;
            let mut rows = stmt.query(params![
                after,
                filter.event_type,
                super::row::sql_int(limit + 1)
            ])?;
            let mut page = DeadLetterPage::default();
            let mut last_seq = 0;
            while let Some(row) = rows.next()? {
                if page.items.len() == limit {
                    page.next_cursor = Some(last_seq.to_string());
                    break;
                }
                page.items.push(summary(row)?);
                last_seq = row.get::<_, i64>(13)?;
            }
            Ok(page)
        };
        read().map_err(|e| self.ctx.err(e))
    }

    /// Looks up any stored message by id.
    ///
    /// # Errors
    ///
    /// [`MailboxError::NoSuchMessage`] when no message has that id (acked,
    /// purged or never enqueued), or a store failure.
    pub fn message(&self, id: MessageId) -> Result<StoredMessage, MailboxError> {
        let found = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, state, available_at, payload FROM messages WHERE id = ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([id], |row| {
                    Ok(StoredMessage {
                        summary: summary(row)?,
                        state: row.get(14)?,
                        available_at: row.get(15)?,
                        payload: row.get(16)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.ctx.err(e))?;
        found.ok_or(MailboxError::NoSuchMessage { id })
    }

    /// One dead letter, payload included.
    ///
    /// # Errors
    ///
    /// [`MailboxError::NoSuchMessage`], [`MailboxError::WrongState`] when the
    /// message is not dead, or a store failure.
    pub fn dead_letter(&self, id: MessageId) -> Result<StoredMessage, MailboxError> {
        let message = self.message(id)?;
        if message.state != MessageState::Dead {
            return Err(MailboxError::WrongState {
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
    /// For [`Selection::One`]: [`MailboxError::NoSuchMessage`] or
    /// [`MailboxError::WrongState`]. Otherwise a store failure.
    pub fn redrive(&mut self, selection: &Selection) -> Result<usize, MailboxError> {
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
    pub fn purge(&mut self, selection: &Selection) -> Result<usize, MailboxError> {
        self.on_dead(selection, "DELETE FROM messages", params![])
    }

    /// Runs `statement` (an UPDATE or DELETE without WHERE, whose own
    /// parameters are `params`) on the dead letters `selection` names.
    fn on_dead(
        &mut self,
        selection: &Selection,
        statement: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, MailboxError> {
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
            let message = self.message(*id)?;
            return Err(MailboxError::WrongState {
                id: *id,
                expected: MessageState::Dead,
                actual: message.state,
            });
        }
        Ok(changed)
    }
}
