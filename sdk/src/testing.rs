//! Unit-testing handler code natively, with a plain `cargo test`.
//!
//! Outside a host there is nobody to receive follow-up events, so
//! [`emit`](crate::emit) and [`Emit::send`](crate::Emit::send) keep them,
//! per thread, for [`take_emitted`]. They always succeed natively: the host's
//! limits (payload size, events per delivery) are only checked by a host.
//! Build test events with [`Event::new`](crate::Event::new).
//!
//! To test what a host will do with the built component (the sandbox, the
//! limits, the host's checks of emitted events), [`build_component`] and
//! [`run_in_host`] run it in a real host with `mailroom plugin run`.
//!
//! ```
//! use mailroom_sdk::{Event, testing};
//! # use mailroom_sdk::{Error, Plugin};
//! # struct Greeter;
//! # impl Plugin for Greeter {
//! #     const NAME: &'static str = "greeter";
//! #     const EVENT_TYPES: &'static [&'static str] = &["greeting.requested"];
//! #     fn handle(event: Event) -> Result<(), Error> {
//! #         mailroom_sdk::emit("greeting.sent", &serde_json::json!({"to": "Ada"}))?;
//! #         Ok(())
//! #     }
//! # }
//!
//! Greeter::handle(Event::new("greeting.requested", r#"{"name":"Ada"}"#)).unwrap();
//! let emitted = testing::take_emitted();
//! assert_eq!(emitted.len(), 1);
//! assert_eq!(emitted[0].event_type, "greeting.sent");
//! ```

use std::time::Duration;

use serde::de::DeserializeOwned;

pub use crate::in_host::{HostError, HostOutcome, HostRun, build_component, run_in_host};
use crate::Priority;
use crate::wit::mailroom::plugin::types as wit;

/// A follow-up event as a handler emitted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The follow-up's event type.
    pub event_type: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The idempotency key, if any.
    pub key: Option<String>,
    /// The priority.
    pub priority: Priority,
    /// The delivery delay, in whole milliseconds.
    pub delay: Duration,
}

impl Emitted {
    /// Parses the JSON payload.
    ///
    /// # Errors
    ///
    /// serde's error if the payload does not parse as a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// Returns, and forgets, the events emitted on this thread so far.
pub fn take_emitted() -> Vec<Emitted> {
    crate::host::take_emitted()
        .into_iter()
        .map(|event| Emitted {
            event_type: event.event_type,
            payload: event.payload,
            key: event.key,
            priority: match event.priority {
                wit::Priority::Low => Priority::Low,
                wit::Priority::Normal => Priority::Normal,
                wit::Priority::High => Priority::High,
            },
            delay: Duration::from_millis(event.delay_ms),
        })
        .collect()
}

/// Sets `key` to `value` (or unsets it with `None`) in what
/// [`config::get`](crate::config::get) answers on this thread.
pub fn set_config(key: &str, value: Option<&str>) {
    crate::host::set_config(key, value);
}

/// Answers every [`http`](crate::http) request on this thread with
/// `respond` (which sees the request as the plugin built it); `None`
/// removes it, and requests then fail.
///
/// ```
/// use mailroom_sdk::{http, testing};
///
/// testing::set_http_responder(Some(Box::new(|request: &http::Request| {
///     assert_eq!(request.method(), "POST");
///     Ok(http::Response::new(503, Vec::new(), "busy"))
/// })));
/// let error = http::Request::post("http://127.0.0.1:9000/").send().unwrap_err();
/// assert!(!error.is_fatal());
/// ```
pub fn set_http_responder(respond: Option<HttpResponder>) {
    crate::host::set_responder(respond);
}

/// What [`set_http_responder`] takes.
pub type HttpResponder = crate::host::Responder;
