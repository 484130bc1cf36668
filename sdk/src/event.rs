//! The event a handler receives.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::Error;
use crate::wit::mailroom::plugin::types as wit;

/// One delivery of a stored message to its handler.
///
/// The same message may be delivered more than once (after a failure, a
/// timeout or a host crash), always with the same [`id`](Event::id): use it,
/// or the [`key`](Event::key), to make a handler's outside effects idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    inner: wit::Event,
}

impl Event {
    /// An event as the host would deliver it on a first attempt, for unit
    /// tests of handler code: a nil id (also used as correlation id), no key,
    /// no source, attempt 1 of 10, created now. Adjust it with the `with_*`
    /// methods.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        let id = "00000000-0000-0000-0000-000000000000".to_owned();
        let created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            inner: wit::Event {
                correlation_id: id.clone(),
                id,
                event_type: event_type.into(),
                key: None,
                source: None,
                payload: payload.into(),
                attempt: 1,
                max_attempts: 10,
                created_at_ms,
            },
        }
    }

    /// Sets the id (and the correlation id, as the host does for a message
    /// enqueued without one).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.inner.id = id.into();
        self.inner.correlation_id.clone_from(&self.inner.id);
        self
    }

    /// Sets the idempotency key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.inner.correlation_id = correlation_id.into();
        self
    }

    /// Sets which attempt this delivery is, out of how many.
    pub fn with_attempt(mut self, attempt: u32, max_attempts: u32) -> Self {
        self.inner.attempt = attempt;
        self.inner.max_attempts = max_attempts;
        self
    }

    /// Sets the creation time, in milliseconds since the Unix epoch.
    pub fn with_created_at_ms(mut self, created_at_ms: u64) -> Self {
        self.inner.created_at_ms = created_at_ms;
        self
    }

    /// The message id: a UUID v7 in canonical hyphenated form, the same on
    /// every attempt.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The event type the message was routed by, e.g. `order.created`.
    pub fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    /// The idempotency key given at enqueue time, if any.
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// Where the event came from, if the producer said so.
    pub fn source(&self) -> Option<&str> {
        self.inner.source.as_deref()
    }

    /// The correlation id: given by the producer or else the id of the first
    /// message of the chain. Events emitted while handling this one inherit it.
    pub fn correlation_id(&self) -> &str {
        &self.inner.correlation_id
    }

    /// The payload bytes (JSON by convention).
    pub fn payload(&self) -> &[u8] {
        &self.inner.payload
    }

    /// Takes the payload bytes out of the event.
    pub fn into_payload(self) -> Vec<u8> {
        self.inner.payload
    }

    /// The payload as text.
    ///
    /// # Errors
    ///
    /// A fatal [`Error`] if the payload is not UTF-8: retrying cannot fix it.
    pub fn payload_str(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.inner.payload)
            .map_err(|e| Error::fatal(format!("the payload is not UTF-8: {e}")))
    }

    /// Parses the JSON payload into `T`.
    ///
    /// # Errors
    ///
    /// A fatal [`Error`] naming serde's complaint (which field, which line and
    /// column) if the payload does not parse as a `T`: retrying cannot fix it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.inner.payload).map_err(|e| {
            Error::fatal(format!(
                "the payload is not a valid {}: {e}",
                short_type_name::<T>()
            ))
        })
    }

    /// Which attempt this delivery is: 1 on the first delivery.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The attempt after which a failing message is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether a retryable failure of this delivery dead-letters the message.
    pub fn is_last_attempt(&self) -> bool {
        self.inner.attempt >= self.inner.max_attempts
    }

    /// When the message was enqueued.
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.inner.created_at_ms)
    }

    /// When the message was enqueued, in milliseconds since the Unix epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.inner.created_at_ms
    }
}

impl From<wit::Event> for Event {
    fn from(inner: wit::Event) -> Self {
        Self { inner }
    }
}

/// `my_plugin::Order` → `Order`: module paths say nothing to an operator
/// reading a dead letter.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Generic types (`Vec<my::Item>`) keep their full name: cutting at the
    // last `::` would cut inside the brackets.
    if full.contains('<') {
        return full;
    }
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        order_id: String,
        qty: u32,
    }

    #[test]
    fn json_parses_the_payload() {
        let event = Event::new("order.created", r#"{"order_id":"o-1","qty":2}"#);
        let order: Order = event.json().unwrap();
        assert_eq!(
            order,
            Order {
                order_id: "o-1".into(),
                qty: 2
            }
        );
    }

    #[test]
    fn json_failure_is_fatal_and_names_the_problem() {
        let event = Event::new("order.created", r#"{"order_id":"o-1"}"#);
        let error = event.json::<Order>().unwrap_err();
        assert!(error.is_fatal());
        assert!(error.reason().contains("missing field `qty`"), "{error}");
        assert!(error.reason().contains("valid Order"), "{error}");

        let error = Event::new("t", "not json").json::<Order>().unwrap_err();
        assert!(error.is_fatal());
        assert!(error.reason().contains("line 1 column"), "{error}");
    }

    #[test]
    fn payload_str_accepts_utf8_only() {
        assert_eq!(Event::new("t", "héllo").payload_str().unwrap(), "héllo");
        let error = Event::new("t", vec![0xff]).payload_str().unwrap_err();
        assert!(error.is_fatal());
        assert!(error.reason().contains("not UTF-8"), "{error}");
    }

    #[test]
    fn accessors_return_the_delivered_fields() {
        let event = Event::from(wit::Event {
            id: "0190e0e0-0000-7000-8000-000000000001".into(),
            event_type: "order.created".into(),
            key: Some("k".into()),
            source: Some("shop".into()),
            correlation_id: "c".into(),
            payload: b"{}".to_vec(),
            attempt: 3,
            max_attempts: 3,
            created_at_ms: 1_700_000_000_123,
        });
        assert_eq!(event.id(), "0190e0e0-0000-7000-8000-000000000001");
        assert_eq!(event.event_type(), "order.created");
        assert_eq!(event.key(), Some("k"));
        assert_eq!(event.source(), Some("shop"));
        assert_eq!(event.correlation_id(), "c");
        assert_eq!(event.payload(), b"{}");
        assert_eq!(event.attempt(), 3);
        assert_eq!(event.max_attempts(), 3);
        assert!(event.is_last_attempt());
        assert_eq!(event.created_at_ms(), 1_700_000_000_123);
        assert_eq!(
            event.created_at(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(event.into_payload(), b"{}".to_vec());
    }

    #[test]
    fn test_events_start_at_the_first_attempt() {
        let event = Event::new("t", "{}");
        assert_eq!(event.attempt(), 1);
        assert!(!event.is_last_attempt());
        assert_eq!(event.key(), None);
        assert_eq!(event.correlation_id(), event.id());
        assert!(event.created_at() <= SystemTime::now());

        let event = event
            .with_id("x")
            .with_attempt(2, 5)
            .with_key("k")
            .with_source("s");
        assert_eq!(event.id(), "x");
        assert_eq!(event.correlation_id(), "x");
        assert_eq!(event.attempt(), 2);
        assert_eq!(event.max_attempts(), 5);
        assert_eq!(event.key(), Some("k"));
        assert_eq!(event.source(), Some("s"));
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type_name::<Order>(), "Order");
        assert_eq!(short_type_name::<u32>(), "u32");
        assert!(short_type_name::<Vec<Order>>().starts_with("alloc::vec::Vec<"));
    }
}
