//! `legacy-v012`: a plugin of `mailroom:plugin/handler@0.1.2` as that version
//! was published (`wit/plugin.wit` here is a frozen copy), built without the
//! SDK. Plugins built with the SDK before 0.1.3 import what this one does:
//! `logging` without `log-filter`, and `follow-ups`. It handles
//! `legacy.v012.ping` by logging a line and emitting `legacy.v012.pong` with
//! the same payload, so a test can see that a host offering later versions
//! still loads and runs it.

wit_bindgen::generate!({ world: "handler", path: "wit" });

use exports::mailroom::plugin::plugin::{Event, Guest, HandlerError, PluginInfo};
use mailroom::plugin::types::{OutgoingEvent, Priority};
use mailroom::plugin::{follow_ups, logging};

struct Legacy;

impl Guest for Legacy {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy-v012".into(),
            version: "0.1.2".into(),
            event_types: vec!["legacy.v012.ping".into()],
        }
    }

    fn handle(event: Event) -> Result<(), HandlerError> {
        logging::log(logging::Level::Info, "a 0.1.2 plugin at work");
        follow_ups::emit(&OutgoingEvent {
            event_type: "legacy.v012.pong".into(),
            payload: event.payload,
            key: None,
            priority: Priority::Normal,
            delay_ms: 0,
        })
        .map_err(|e| HandlerError::Fatal(format!("{e:?}")))
    }
}

export!(Legacy);
