//! `legacy-v01`: a plugin of `mailroom:plugin/handler@0.1.0` exactly as that
//! version was published (`wit/plugin.wit` here is a frozen copy), built
//! without the SDK. It handles `legacy.ping` by logging and emitting
//! `legacy.pong` with the same payload, so a test can see that a host
//! offering later versions still loads and runs it.

wit_bindgen::generate!({ world: "handler", path: "wit" });

use exports::mailroom::plugin::plugin::{Event, Guest, HandlerError, PluginInfo};
use mailroom::plugin::types::{OutgoingEvent, Priority};
use mailroom::plugin::{emitter, logging};

struct Legacy;

impl Guest for Legacy {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy-v01".into(),
            version: "0.1.0".into(),
            event_types: vec!["legacy.ping".into()],
        }
    }

    fn handle(event: Event) -> Result<(), HandlerError> {
        logging::log(logging::Level::Info, "a 0.1.0 plugin at work");
        emitter::emit(&OutgoingEvent {
            event_type: "legacy.pong".into(),
            payload: event.payload,
            key: None,
            priority: Priority::Normal,
            delay_ms: 0,
        })
        .map_err(|e| HandlerError::Fatal(format!("{e:?}")))
    }
}

export!(Legacy);
