//! Events as producers send them over the CLI and HTTP: a JSON object per
//! event ([`EventObject`]) and the checks on a JSON payload, so every way in
//! reads events the same way before they become [`NewMessage`]s.
//!
//! The payload is stored as the JSON text given (the bytes of the value,
//! without surrounding whitespace), not re-serialized: key order, number
//! formatting and spacing reach the handler as the producer wrote them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::message::{NewMessage, Priority};

/// One event as a JSON object:
///
/// ```json
/// {"event_type": "order.created", "payload": {"id": 7},
///  "key": "order-7", "priority": "high", "delay": "5s", "max_attempts": 3,
///  "source": "shop", "correlation_id": "checkout-42"}
/// ```
///
/// Only `event_type` and `payload` (any JSON value) are required. `delay` is a
/// duration text (`"500ms"`, `"5s"`, `"1m 30s"`). Unknown fields are refused,
/// so a misspelt field is an error rather than silently ignored.
///
/// Deserialize it straight from JSON text (`serde_json::from_str`/`from_slice`,
/// or axum's `Json`): the payload is kept as raw JSON, which cannot be
/// recovered from an already-parsed `serde_json::Value`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventObject {
    /// Routes the event to its handler.
    pub event_type: String,
    /// The payload, exactly as written.
    pub payload: Box<RawValue>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `low`, `normal` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Not due before this much time has passed.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// Attempts before dead-lettering; default from the retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Where the event came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Groups a chain of events; defaults to the message's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Values for the fields an [`EventObject`] leaves out (from CLI flags, or an
/// HTTP endpoint's own defaults). A field the object sets wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDefaults {
    /// Default priority (else `normal`).
    pub priority: Option<Priority>,
    /// Default delay (else none).
    pub delay: Option<Duration>,
    /// Default attempt budget (else the retry policy's).
    pub max_attempts: Option<u32>,
    /// Default source.
    pub source: Option<String>,
    /// Default correlation id.
    pub correlation_id: Option<String>,
}

impl EventDefaults {
    /// A message of `event_type` with `payload` and these defaults.
    pub fn message(&self, event_type: &str, payload: Vec<u8>) -> NewMessage {
        NewMessage {
            event_type: event_type.to_owned(),
            payload,
            key: None,
            source: self.source.clone(),
            correlation_id: self.correlation_id.clone(),
            priority: self.priority.unwrap_or_default(),
            delay: self.delay.unwrap_or_default(),
            max_attempts: self.max_attempts,
        }
    }
}

impl EventObject {
    /// The message to enqueue, with `defaults` for the fields left out. The
    /// mailbox validates it on enqueue.
    pub fn into_message(self, defaults: &EventDefaults) -> NewMessage {
        NewMessage {
            event_type: self.event_type,
            payload: self.payload.get().as_bytes().to_vec(),
            key: self.key,
            source: self.source.or_else(|| defaults.source.clone()),
            correlation_id: self
                .correlation_id
                .or_else(|| defaults.correlation_id.clone()),
            priority: self.priority.or(defaults.priority).unwrap_or_default(),
            delay: self.delay.or(defaults.delay).unwrap_or_default(),
            max_attempts: self.max_attempts.or(defaults.max_attempts),
        }
    }
}

/// Text that is not what it should be: malformed JSON, or an event object
/// with a missing, unknown or mistyped field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct JsonError {
    /// 1-based line within the text parsed.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json's Display ends with " at line L column C"; keep the
        // reason alone, the position is in the fields.
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        Self {
            line: e.line(),
            column: e.column(),
            reason,
        }
    }
}

/// Checks that `text` is one JSON value and returns it without the
/// whitespace around it: the payload bytes to store.
///
/// # Errors
///
/// [`JsonError`] with the position of the first fault.
pub fn json_payload(text: &[u8]) -> Result<&[u8], JsonError> {
    let raw: &RawValue = serde_json::from_slice(text)?;
    Ok(raw.get().as_bytes())
}

/// Reads one event object from JSON text.
///
/// # Errors
///
/// [`JsonError`] for malformed JSON, a missing `event_type` or `payload`, an
/// unknown field, or a field of the wrong type.
pub fn event_object(text: &str) -> Result<EventObject, JsonError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_kept_as_written_without_outer_whitespace() {
        let text = b"  {\"b\": 1, \"a\": [1.50, 2]}\n";
        assert_eq!(json_payload(text), Ok(&b"{\"b\": 1, \"a\": [1.50, 2]}"[..]));
        assert_eq!(json_payload(b"\"text\""), Ok(&b"\"text\""[..]));
    }

    #[test]
    fn malformed_payload_names_the_position() {
        let e = json_payload(b"{\"a\": 1,\n \"b\": }").expect_err("refused");
        assert_eq!((e.line, e.column), (2, 7));
        assert!(e.reason.contains("expected value"), "{e}");
        assert!(!e.reason.contains("at line"), "{e}");
        assert!(
            json_payload(b"{} {}").is_err(),
            "two values are not one payload"
        );
        assert!(json_payload(b"").is_err());
    }

    #[test]
    fn event_object_with_every_field() {
        let o = event_object(
            r#"{"event_type":"a.b","payload":{"z":1,"a":2},"key":"k","priority":"high",
                "delay":"1m 30s","max_attempts":3,"source":"s","correlation_id":"c"}"#,
        )
        .expect("valid");
        let m = o.into_message(&EventDefaults::default());
        assert_eq!(m.event_type, "a.b");
        assert_eq!(m.payload, br#"{"z":1,"a":2}"#);
        assert_eq!(m.key.as_deref(), Some("k"));
        assert_eq!(m.priority, Priority::High);
        assert_eq!(m.delay, Duration::from_secs(90));
        assert_eq!(m.max_attempts, Some(3));
        assert_eq!(m.source.as_deref(), Some("s"));
        assert_eq!(m.correlation_id.as_deref(), Some("c"));
    }

    #[test]
    fn defaults_fill_only_missing_fields() {
        let defaults = EventDefaults {
            priority: Some(Priority::Low),
            delay: Some(Duration::from_secs(5)),
            max_attempts: Some(7),
            source: Some("cli".into()),
            correlation_id: Some("corr".into()),
        };
        let m = event_object(r#"{"event_type":"t","payload":null,"priority":"high"}"#)
            .expect("valid")
            .into_message(&defaults);
        assert_eq!(m.priority, Priority::High);
        assert_eq!(m.delay, Duration::from_secs(5));
        assert_eq!(m.max_attempts, Some(7));
        assert_eq!(m.source.as_deref(), Some("cli"));
        assert_eq!(m.correlation_id.as_deref(), Some("corr"));
        assert_eq!(m.payload, b"null");
    }

    #[test]
    fn bad_objects_are_refused_with_the_field() {
        let e =
            event_object(r#"{"event_type":"t","payload":1,"prio":"high"}"#).expect_err("refused");
        assert!(e.reason.contains("unknown field `prio`"), "{e}");
        let e = event_object(r#"{"event_type":"t"}"#).expect_err("refused");
        assert!(e.reason.contains("missing field `payload`"), "{e}");
        let e = event_object(r#"{"event_type":"t","payload":1,"priority":"urgent"}"#)
            .expect_err("refused");
        assert!(e.reason.contains("urgent"), "{e}");
        let e = event_object(r#"{"event_type":"t","payload":1,"delay":5}"#).expect_err("refused");
        assert!(
            e.reason.contains("delay") || e.reason.contains("duration"),
            "{e}"
        );
    }
}
