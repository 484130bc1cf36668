//! Operating live queues: listing messages in any state, cancelling queued
//! ones, and pausing event types. The records and rules both backends share.

use serde::Serialize;

use super::StoreError;
use super::dead_letters::DeadLetter;
use crate::clock::Millis;
use crate::message::MessageId;
use crate::state_machine::MessageState;

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// At most this many (0 means the default of 100).
    pub limit: usize,
    /// Continue after this cursor (from [`MessagePage::next_cursor`]).
    pub cursor: Option<String>,
}

impl MessageFilter {
    /// The page size asked for, within bounds.
    pub(crate) fn page_size(&self) -> usize {
        super::page::page_size(self.limit)
    }

    /// The position to continue after (0: from the start).
    pub(crate) fn after(&self) -> Result<i64, StoreError> {
        super::page::after(self.cursor.as_deref(), "message")
    }

    /// The state filter as the text both backends store.
    pub(crate) fn state_text(&self) -> Option<&'static str> {
        self.state.map(MessageState::as_str)
    }
}

/// Who holds an in-flight message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    /// The host holding the lease (`hostname:pid`, as `stats` lists hosts),
    /// or the claimer's own name for a claim made outside a host.
    pub owner: String,
    /// When the lease runs out, in ms since the Unix epoch: past it, the
    /// message is reclaimed.
    pub expires_at: Option<Millis>,
}

/// A stored message of any state, without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageSummary {
    /// Its state.
    pub state: MessageState,
    /// What a dead letter shows (`dead_at` is `None` unless dead).
    #[serde(flatten)]
    pub summary: DeadLetter,
    /// When it is (or was) next due, in ms since the Unix epoch.
    pub available_at: Millis,
    /// The lease, while in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseHolder>,
}

/// One page of messages, in the order they were enqueued.
pub type MessagePage = super::page::Page<MessageSummary>;

/// What a cancel did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    /// How many queued messages were removed.
    pub cancelled: usize,
    /// The ids named that were not removed, and why.
    pub refused: Vec<CancelRefusal>,
    /// For a cancel by event type: messages of that type in flight, left to
    /// finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflight_left: Option<u64>,
}

/// A message a cancel by id did not remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelRefusal {
    /// The id named.
    pub id: MessageId,
    /// Why it was not removed, and what to do instead.
    pub reason: String,
}

/// Why the message with id `id`, found in `state` (or not found), cannot be
/// cancelled. Only queued messages can.
pub(crate) fn refusal(id: MessageId, state: Option<MessageState>) -> CancelRefusal {
    let reason = match state {
        None => "no message with this id (acked, purged, cancelled or never enqueued)".to_owned(),
        Some(MessageState::Inflight) => {
            "in flight: a handler is running it now; it cannot be cancelled until it is settled \
             (acked, retried or dead-lettered)"
                .to_owned()
        }
        Some(MessageState::Dead) => {
            "a dead letter: remove it with `mailroom dlq purge` instead".to_owned()
        }
        Some(MessageState::Queued) => "queued, but removed by another process first".to_owned(),
    };
    CancelRefusal { id, reason }
}

/// An event type whose messages no host claims until it is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PausedType {
    /// The event type.
    pub event_type: String,
    /// When it was paused, in ms since the Unix epoch.
    pub paused_at: Millis,
}

/// What a pause or resume changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PauseChange {
    /// Whether the type is paused now.
    pub paused: bool,
    /// Whether this call changed it (false: it already was).
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_gets_its_own_refusal() {
        let id = MessageId::new();
        let inflight = refusal(id, Some(MessageState::Inflight)).reason;
        assert!(inflight.starts_with("in flight"), "{inflight}");
        let dead = refusal(id, Some(MessageState::Dead)).reason;
        assert!(dead.contains("dlq purge"), "{dead}");
        let gone = refusal(id, None).reason;
        assert!(gone.starts_with("no message"), "{gone}");
    }
}
