//! What a message is: its identity, event type, priority and the fields a
//! producer sets. Validation of producer input lives here so every way in
//! (library, CLI, HTTP, emitted follow-ups) applies the same rules.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 255;

/// The default payload size limit: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// A message id: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub uuid::Uuid);

impl MessageId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| InvalidInput::Id(format!("`{s}` is not a message id (a UUID): {e}")))
    }
}

/// How urgently a message should be handled: `high` > `normal` > `low`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Claimed after every due `normal` and `high` message.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Claimed before every due `normal` and `low` message.
    High,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 3] = [Priority::Low, Priority::Normal, Priority::High];

    /// The value stored in the `priority` column; larger is more urgent.
    pub(crate) fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    pub(crate) fn from_rank(rank: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.rank() == rank)
    }

    /// The lowercase name (`low`, `normal`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidInput::Priority(format!(
                    "unknown priority `{s}`: use one of low, normal, high"
                ))
            })
    }
}

/// Input that breaks a rule of the message contract. Each variant's text names
/// the field at fault and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// The event type is empty, too long or has a character outside `[A-Za-z0-9._:-]`.
    #[error("{0}")]
    EventType(String),
    /// The payload is larger than the configured limit.
    #[error("payload is {size} bytes, over the {limit}-byte limit")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The priority is not one of `low`, `normal`, `high`.
    #[error("{0}")]
    Priority(String),
    /// `max_attempts` is zero.
    #[error("max_attempts must be at least 1")]
    MaxAttempts,
    /// A message id does not parse.
    #[error("{0}")]
    Id(String),
    /// The payload is not what this way in takes (the SQL outbox takes JSON).
    #[error("{0}")]
    Payload(String),
    /// A key, source or correlation id is empty or too long.
    #[error("{field} must be 1 to {max} bytes long")]
    Field {
        /// The field at fault.
        field: &'static str,
        /// The longest allowed value, in bytes.
        max: usize,
    },
}

/// Checks an event type: non-empty, at most 255 bytes, `[A-Za-z0-9._:-]` only.
///
/// # Errors
///
/// [`InvalidInput::EventType`] naming what is wrong.
pub fn validate_event_type(event_type: &str) -> Result<(), InvalidInput> {
    if event_type.is_empty() {
        return Err(InvalidInput::EventType("event type is empty".into()));
    }
    if event_type.len() > MAX_EVENT_TYPE_LEN {
        return Err(InvalidInput::EventType(format!(
            "event type is {} bytes long, over the {MAX_EVENT_TYPE_LEN}-byte limit",
            event_type.len()
        )));
    }
    if let Some(bad) = event_type
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(InvalidInput::EventType(format!(
            "event type `{}` has the character {bad:?}: only A-Z a-z 0-9 . _ : - are allowed",
            event_type.escape_debug()
        )));
    }
    Ok(())
}

/// The longest key, source or correlation id, in bytes.
pub const MAX_LABEL_LEN: usize = 1024;

fn validate_label(field: &'static str, value: Option<&str>) -> Result<(), InvalidInput> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_LABEL_LEN => Err(InvalidInput::Field {
            field,
            max: MAX_LABEL_LEN,
        }),
        _ => Ok(()),
    }
}

/// A message to enqueue, as a producer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Routes the message to its handler.
    pub event_type: String,
    /// The payload bytes (JSON by convention).
    pub payload: Vec<u8>,
    /// Idempotency key: enqueueing a key that is already stored (queued, in
    /// flight or dead) returns the existing id and stores nothing.
    pub key: Option<String>,
    /// Where the message came from.
    pub source: Option<String>,
    /// Groups a chain of messages; defaults to the message's own id.
    pub correlation_id: Option<String>,
    /// Claim order among due messages.
    pub priority: Priority,
    /// Not due before this much time has passed.
    pub delay: Duration,
    /// Attempts before dead-lettering; `None` takes the event type's policy.
    pub max_attempts: Option<u32>,
}

impl NewMessage {
    /// A normal-priority message with no key, due now.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            event_type: event_type.into(),
            payload: payload.into(),
            key: None,
            source: None,
            correlation_id: None,
            priority: Priority::Normal,
            delay: Duration::ZERO,
            max_attempts: None,
        }
    }

    /// Sets the idempotency key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Delays the first delivery.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the attempt budget.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Checks every producer-facing rule.
    ///
    /// # Errors
    ///
    /// The first [`InvalidInput`] found.
    pub fn validate(&self, max_payload_bytes: usize) -> Result<(), InvalidInput> {
        validate_event_type(&self.event_type)?;
        if self.payload.len() > max_payload_bytes {
            return Err(InvalidInput::PayloadTooLarge {
                size: self.payload.len(),
                limit: max_payload_bytes,
            });
        }
        if self.max_attempts == Some(0) {
            return Err(InvalidInput::MaxAttempts);
        }
        validate_label("key", self.key.as_deref())?;
        validate_label("source", self.source.as_deref())?;
        validate_label("correlation_id", self.correlation_id.as_deref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_rules() {
        assert!(validate_event_type("order.created").is_ok());
        assert!(validate_event_type("a:b-c_d.E9").is_ok());
        assert!(validate_event_type(&"x".repeat(255)).is_ok());
        assert!(validate_event_type("").is_err());
        assert!(validate_event_type(&"x".repeat(256)).is_err());
        let err = validate_event_type("order created")
            .unwrap_err()
            .to_string();
        assert!(err.contains("' '"), "{err}");
        assert!(validate_event_type("ordér").is_err());
    }

    #[test]
    fn priority_round_trips() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
        }
        assert!(Priority::High > Priority::Normal && Priority::Normal > Priority::Low);
        assert!(
            "urgent"
                .parse::<Priority>()
                .unwrap_err()
                .to_string()
                .contains("low, normal, high")
        );
    }

    #[test]
    fn payload_limit_and_attempts() {
        let m = NewMessage::new("t", vec![0; 11]);
        assert!(m.validate(11).is_ok());
        assert_eq!(
            m.validate(10),
            Err(InvalidInput::PayloadTooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(
            m.clone().with_max_attempts(0).validate(100),
            Err(InvalidInput::MaxAttempts)
        );
        assert!(m.with_key("").validate(100).is_err());
    }
}
