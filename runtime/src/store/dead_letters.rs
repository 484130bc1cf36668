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

/// Which dead letters an operation takes: those meeting every condition
/// given (none given: every dead letter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterMatch {
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only those whose last error contains this text (case-sensitive).
    pub error_contains: Option<String>,
    /// Only those that died at or after this time (ms since the Unix epoch).
    pub died_after: Option<Millis>,
    /// Only those that died before this time (ms since the Unix epoch).
    pub died_before: Option<Millis>,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only those whose last error contains this text (case-sensitive).
    pub error_contains: Option<String>,
    /// Only those that died at or after this time (ms since the Unix epoch).
    pub died_after: Option<Millis>,
    /// Only those that died before this time (ms since the Unix epoch).
    pub died_before: Option<Millis>,
    /// At most this many (0 means the default of 100).
    pub limit: usize,
    /// Continue after this cursor (from [`DeadLetterPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl DeadLetterFilter {
    /// The conditions of this listing.
    pub(crate) fn matching(&self) -> DeadLetterMatch {
        DeadLetterMatch {
            event_type: self.event_type.clone(),
            error_contains: self.error_contains.clone(),
            died_after: self.died_after,
            died_before: self.died_before,
        }
    }

    /// The page size asked for, within bounds.
    pub(crate) fn page_size(&self) -> usize {
        super::page::page_size(self.limit)
    }

    /// The position to continue after: (time of death, insertion order);
    /// (-1, 0) from the start.
    pub(crate) fn after(&self) -> Result<(Millis, i64), StoreError> {
        match &self.cursor {
            None => Ok((-1, 0)),
            Some(c) => parse_cursor(c).ok_or_else(|| {
                StoreError::Invalid(InvalidInput::Id(format!(
                    "`{c}` is not a dead-letter cursor: pass the next_cursor of a previous page"
                )))
            }),
        }
    }
}

/// A dead-letter cursor: `DEADAT-SEQ`, the last row of the previous page.
/// `None` when `cursor` is not one.
pub fn parse_cursor(cursor: &str) -> Option<(Millis, i64)> {
    let (dead_at, seq) = cursor.split_once('-')?;
    Some((dead_at.parse().ok()?, seq.parse().ok()?))
}

/// One page of dead letters, in order of death (oldest first).
pub type DeadLetterPage = super::page::Page<DeadLetter>;

/// A page of dead letters from rows read as (summary, insertion order),
/// asked for with one row more than `limit`; the cursor is the last row's
/// `DEADAT-SEQ`.
pub(crate) fn dead_letter_page(rows: Vec<(DeadLetter, i64)>, limit: usize) -> DeadLetterPage {
    let rows = rows
        .into_iter()
        .map(|(item, seq)| {
            let cursor = format!("{}-{seq}", item.dead_at.unwrap_or(0));
            (item, cursor)
        })
        .collect();
    super::page::Page::from_rows(rows, limit)
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
    /// The dead letters meeting every condition, first dead first; at most
    /// `limit` of them when given (a gradual redrive takes a few at a time).
    Matching {
        /// The conditions.
        matching: DeadLetterMatch,
        /// The most to take.
        limit: Option<usize>,
    },
}

impl Selection {
    /// The conditions and limit of a selection of many.
    pub(crate) fn as_matching(&self) -> Option<(DeadLetterMatch, Option<usize>)> {
        match self {
            Self::One(_) => None,
            Self::EventType(t) => Some((
                DeadLetterMatch {
                    event_type: Some(t.clone()),
                    ..DeadLetterMatch::default()
                },
                None,
            )),
            Self::All => Some((DeadLetterMatch::default(), None)),
            Self::Matching { matching, limit } => Some((matching.clone(), *limit)),
        }
    }
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
