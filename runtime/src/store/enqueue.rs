//! What an enqueue answers.

use crate::message::MessageId;

/// The result of enqueueing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Enqueued {
    /// The message's id: new, or the existing message's when `duplicate`.
    pub id: MessageId,
    /// A message with the same key was already stored; nothing new was.
    pub duplicate: bool,
}
