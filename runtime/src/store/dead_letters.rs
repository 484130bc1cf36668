//! Looking at stored messages and the dead-letter queue: the records and
//! the paging rules both backends follow.

use serde::Serialize;

use super::StoreError;
use crate::clock::Millis;
use crate::message::{InvalidInput, MessageId, Priority};
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

impl DeadLetterFilter {
    /// The page size asked for, within bounds.
    pub(crate) fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }

    /// The position to continue after (0: from the start).
    pub(crate) fn after(&self) -> Result<i64, StoreError> {
        match &self.cursor {
            None => Ok(0),
            Some(c) => c.parse().map_err(|_| {
                StoreError::Invalid(InvalidInput::Id(format!(
                    "`{c}` is not a dead-letter cursor: pass the next_cursor of a previous page"
                )))
            }),
        }
    }
}

/// The default and largest page of dead letters.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One page of dead letters, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetter>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl DeadLetterPage {
    /// A page from rows read as (summary, position), asked for with one row
    /// more than `limit` so the last page is known without another query.
    pub(crate) fn from_rows(rows: Vec<(DeadLetter, i64)>, limit: usize) -> Self {
        let more = rows.len() > limit;
        let mut page = Self::default();
        let mut last = 0;
        for (item, seq) in rows.into_iter().take(limit) {
            page.items.push(item);
            last = seq;
        }
        if more {
            page.next_cursor = Some(last.to_string());
        }
        page
    }
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
    /// The lease, while in flight: which host holds it and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<super::queue::LeaseHolder>,
    /// The payload bytes.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

/// Why a redrive or purge of one message changed nothing: the message is
/// not dead (or does not exist).
pub(crate) fn not_dead(id: MessageId, found: Result<StoredMessage, StoreError>) -> StoreError {
    match found {
        Ok(message) => StoreError::WrongState {
            id,
            expected: MessageState::Dead,
            actual: message.state,
        },
        Err(e) => e,
    }
}
