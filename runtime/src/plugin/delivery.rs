//! What goes into a plugin call ([`Delivery`]) and what comes out
//! ([`Outcome`], with the [`Emitted`] follow-ups of a success).

use std::time::Duration;

use crate::message::{MessageId, Priority};

/// One delivery of a stored message to its plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message id, the same on every attempt.
    pub id: MessageId,
    /// The event type the message was routed by.
    pub event_type: String,
    /// The idempotency key given at enqueue time.
    pub key: Option<String>,
    /// Where the message came from.
    pub source: Option<String>,
    /// The correlation id, inherited by emitted follow-ups.
    pub correlation_id: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Which attempt this is: 1 on the first delivery.
    pub attempt: u32,
    /// The attempt after which a failing message is dead-lettered.
    pub max_attempts: u32,
    /// When the message was enqueued, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The message's chain depth: 0 when a producer enqueued it, one more
    /// than its parent's when a handler emitted it. A delivery at
    /// [`SandboxLimits::max_chain_depth`](super::SandboxLimits::max_chain_depth)
    /// may not emit.
    pub depth: u32,
}

/// How one delivery ended. Every failure of the plugin, whatever its kind, is
/// one of these; the host itself is never harmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded: acknowledge the message and commit `emitted`
    /// with it.
    Success {
        /// The follow-ups the handler emitted, in order.
        emitted: Vec<Emitted>,
    },
    /// A transient failure: the handler asked to retry, or it trapped, timed
    /// out, ran out of memory or stack, or panicked. `reason` says which.
    Retry {
        /// Why, bounded in size (for example "timed out after 10s" or
        /// "panicked: index out of bounds").
        reason: String,
        /// The delay the handler asked for, if any.
        after: Option<Duration>,
    },
    /// The message can never succeed: dead-letter it now.
    Fatal {
        /// Why, bounded in size.
        reason: String,
    },
}

impl Outcome {
    pub(crate) fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// A follow-up event a handler emitted, already validated: its event type is
/// valid and its payload within the host's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The follow-up's event type.
    pub event_type: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The follow-up's idempotency key.
    pub key: Option<String>,
    /// The follow-up's priority.
    pub priority: Priority,
    /// Do not deliver before this much time has passed.
    pub delay: Duration,
}

/// Cuts `text` to at most `max` bytes on a char boundary, saying how long it
/// was. Reasons come from guests and end up in logs and the database.
pub(crate) fn truncate_reason(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!("… (truncated, {total} bytes)"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reasons_are_kept() {
        assert_eq!(truncate_reason("no stock".into(), 10), "no stock");
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let text = "é".repeat(10); // 20 bytes
        let cut = truncate_reason(text, 5);
        assert_eq!(cut, "éé… (truncated, 20 bytes)");
    }
}
