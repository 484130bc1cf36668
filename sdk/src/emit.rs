//! Emitting follow-up events.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::wit::mailroom::plugin::follow_ups::EmitRefusal;
use crate::wit::mailroom::plugin::types as wit;

/// Emits a follow-up event with a JSON payload, normal priority, no key and
/// no delay. Use [`Emit`] for more control.
///
/// The host commits the follow-up together with the acknowledgement of the
/// event being handled: it exists if and only if the handler returns `Ok`.
///
/// # Errors
///
/// [`EmitError`] if `payload` does not serialize or the host refuses the event.
pub fn emit(event_type: &str, payload: &impl Serialize) -> Result<(), EmitError> {
    Emit::new(event_type).json(payload).send()
}

/// A follow-up event under construction; nothing happens until
/// [`send`](Emit::send).
///
/// ```
/// # use mailroom_sdk::{Emit, Priority};
/// # use std::time::Duration;
/// # fn f() -> Result<(), mailroom_sdk::Error> {
/// Emit::new("invoice.due")
///     .json(&serde_json::json!({ "invoice": "inv-7" }))
///     .key("invoice.due:inv-7")
///     .priority(Priority::High)
///     .delay(Duration::from_secs(3600))
///     .send()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "an `Emit` does nothing until `send` is called"]
pub struct Emit {
    event_type: String,
    // A serialization failure is kept until `send` so the builder chain needs
    // a single `?`.
    payload: Result<Vec<u8>, String>,
    key: Option<String>,
    priority: Priority,
    delay: Duration,
}

impl Emit {
    /// Starts a follow-up of `event_type` with an empty payload, normal
    /// priority, no key and no delay.
    pub fn new(event_type: impl Into<String>) -> Self {
        Self {
            event_type: event_type.into(),
            payload: Ok(Vec::new()),
            key: None,
            priority: Priority::Normal,
            delay: Duration::ZERO,
        }
    }

    /// Sets the payload to `value` serialized as JSON. A serialization failure
    /// is reported by [`send`](Emit::send).
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.payload = serde_json::to_vec(value).map_err(|e| e.to_string());
        self
    }

    /// Sets the payload to raw bytes.
    pub fn payload(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.payload = Ok(bytes.into());
        self
    }

    /// Sets an idempotency key: if a message with this key already exists,
    /// the host does not store the follow-up again. Deriving it from the
    /// handled event (e.g. `order.accepted:<order id>`) makes a redelivery
    /// harmless.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the follow-up's priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Holds the follow-up back for `delay` (rounded down to whole
    /// milliseconds) after it is committed.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Hands the follow-up to the host, which buffers it until the handler
    /// returns.
    ///
    /// # Errors
    ///
    /// [`EmitError::Serialize`] if the [`json`](Emit::json) value did not
    /// serialize; the other variants if the host refused the event.
    pub fn send(self) -> Result<(), EmitError> {
        let payload = self
            .payload
            .map_err(|reason| EmitError::Serialize { reason })?;
        let event = wit::OutgoingEvent {
            event_type: self.event_type,
            payload,
            key: self.key,
            priority: self.priority.into(),
            delay_ms: u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
        };
        crate::host::emit(event).map_err(EmitError::from)
    }
}

/// How urgently a follow-up should be handled: due events are claimed highest
/// priority first, then oldest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Handled after every due `Normal` and `High` event.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Handled before every due `Normal` and `Low` event.
    High,
}

impl From<Priority> for wit::Priority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => wit::Priority::Low,
            Priority::Normal => wit::Priority::Normal,
            Priority::High => wit::Priority::High,
        }
    }
}

/// Why a follow-up event was not emitted. Converted with `?` into a fatal
/// [`Error`](crate::Error): the same event would be refused again on every
/// attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitError {
    /// The event type is empty, too long, or has characters outside
    /// `[A-Za-z0-9._:-]`.
    InvalidEventType {
        /// The host's explanation.
        reason: String,
    },
    /// The payload is larger than the host's payload limit.
    PayloadTooLarge {
        /// The host's payload limit, in bytes.
        limit: u64,
    },
    /// This delivery already emitted the most follow-ups the host allows.
    TooManyEvents {
        /// The most follow-ups one delivery may emit.
        limit: u32,
    },
    /// The event would take the payload bytes this delivery emitted past
    /// the host's limit (`plugins.max_emit_bytes`).
    TooManyBytes {
        /// The most payload bytes one delivery may emit, in all.
        limit: u64,
    },
    /// The event being handled is at the end of its chain: it was emitted
    /// by `depth` handlers one after another, the most the host allows
    /// (`plugins.max_chain_depth`). The host dead-letters this delivery
    /// with that reason whatever the handler returns: a chain that long is
    /// taken to be a loop of handlers emitting each other's events.
    ChainTooDeep {
        /// The depth of the event being handled.
        depth: u32,
    },
    /// The payload given to [`Emit::json`] or [`emit`] did not serialize to JSON.
    Serialize {
        /// serde's explanation.
        reason: String,
    },
}

impl From<EmitRefusal> for EmitError {
    fn from(error: EmitRefusal) -> Self {
        match error {
            EmitRefusal::InvalidEventType(reason) => EmitError::InvalidEventType { reason },
            EmitRefusal::PayloadTooLarge(limit) => EmitError::PayloadTooLarge { limit },
            EmitRefusal::TooManyEvents(limit) => EmitError::TooManyEvents { limit },
            EmitRefusal::TooManyBytes(limit) => EmitError::TooManyBytes { limit },
            EmitRefusal::ChainTooDeep(depth) => EmitError::ChainTooDeep { depth },
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::InvalidEventType { reason } => {
                write!(f, "emit refused: invalid event type: {reason}")
            }
            EmitError::PayloadTooLarge { limit } => {
                write!(
                    f,
                    "emit refused: the payload is larger than the limit of {limit} bytes"
                )
            }
            EmitError::TooManyEvents { limit } => {
                write!(
                    f,
                    "emit refused: a delivery may emit at most {limit} events"
                )
            }
            EmitError::TooManyBytes { limit } => {
                write!(
                    f,
                    "emit refused: a delivery may emit at most {limit} payload bytes in all"
                )
            }
            EmitError::ChainTooDeep { depth } => {
                write!(
                    f,
                    "emit refused: this event is at depth {depth} of its chain, the most the host allows"
                )
            }
            EmitError::Serialize { reason } => {
                write!(
                    f,
                    "emit failed: the payload does not serialize to JSON: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for EmitError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing;
    use std::collections::BTreeMap;

    #[test]
    fn emit_sends_json_with_defaults() {
        testing::take_emitted();
        emit("order.accepted", &serde_json::json!({"order_id": "o-1"})).unwrap();
        let sent = testing::take_emitted();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].event_type, "order.accepted");
        assert_eq!(sent[0].payload, br#"{"order_id":"o-1"}"#);
        assert_eq!(sent[0].key, None);
        assert_eq!(sent[0].priority, Priority::Normal);
        assert_eq!(sent[0].delay, Duration::ZERO);
    }

    #[test]
    fn the_builder_sets_every_field() {
        testing::take_emitted();
        Emit::new("t")
            .payload("raw")
            .key("k")
            .priority(Priority::High)
            .delay(Duration::from_micros(2_500_900))
            .send()
            .unwrap();
        let sent = testing::take_emitted();
        assert_eq!(sent[0].payload, b"raw");
        assert_eq!(sent[0].key.as_deref(), Some("k"));
        assert_eq!(sent[0].priority, Priority::High);
        // Whole milliseconds only, as the host sees it.
        assert_eq!(sent[0].delay, Duration::from_millis(2500));
    }

    #[test]
    fn serialization_failures_surface_at_send_and_are_fatal() {
        testing::take_emitted();
        // JSON object keys must be strings.
        let map = BTreeMap::from([((1, 2), "x")]);
        let error = Emit::new("t").json(&map).key("k").send().unwrap_err();
        assert!(matches!(error, EmitError::Serialize { .. }), "{error:?}");
        assert!(crate::Error::from(error).is_fatal());
        assert!(testing::take_emitted().is_empty());
    }

    #[test]
    fn host_errors_map_to_typed_variants() {
        assert_eq!(
            EmitError::from(EmitRefusal::InvalidEventType("has space".into())),
            EmitError::InvalidEventType {
                reason: "has space".into()
            }
        );
        assert_eq!(
            EmitError::from(EmitRefusal::PayloadTooLarge(1024)),
            EmitError::PayloadTooLarge { limit: 1024 }
        );
        assert_eq!(
            EmitError::from(EmitRefusal::TooManyEvents(100)),
            EmitError::TooManyEvents { limit: 100 }
        );
        assert_eq!(
            EmitError::from(EmitRefusal::TooManyBytes(4096)),
            EmitError::TooManyBytes { limit: 4096 }
        );
        assert_eq!(
            EmitError::from(EmitRefusal::ChainTooDeep(32)),
            EmitError::ChainTooDeep { depth: 32 }
        );
        assert!(crate::Error::from(EmitError::ChainTooDeep { depth: 32 }).is_fatal());
        assert_eq!(
            EmitError::TooManyEvents { limit: 100 }.to_string(),
            "emit refused: a delivery may emit at most 100 events"
        );
    }
}
