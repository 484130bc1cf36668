//! Looking at stored messages and the dead-letter queue: the records and
//! the paging rules both backends follow.

use serde::Serialize;

use super::StoreError;
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

impl DeadLetterFilter {
    /// The page size asked for, within bounds.
    pub(crate) fn page_size(&self) -> usize {
        super::page::page_size(self.limit)
    }

    /// The position to continue after (0: from the start).
    pub(crate) fn after(&self) -> Result<i64, StoreError> {
        super::page::after(self.cursor.as_deref(), "dead-letter")
    }
}

/// One page of dead letters, oldest first.
pub type DeadLetterPage = super::page::Page<DeadLetter>;

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
