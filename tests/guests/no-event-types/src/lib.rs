//! `no-event-types`: a plugin of the right world that declares no event
//! types, so the host must reject it at load time.
//!
//! mailroom-sdk's `export_plugin!` refuses such a plugin at compile time, so
//! this one exports the world's bindings by hand, as a plugin built without
//! the SDK would.

use mailroom_sdk::wit::exports::mailroom::plugin::plugin::Guest;
use mailroom_sdk::wit::mailroom::plugin::types::{Event, HandlerError, PluginInfo};

struct NoEventTypes;

impl Guest for NoEventTypes {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "no-event-types".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            event_types: Vec::new(),
        }
    }

    fn handle(_event: Event) -> Result<(), HandlerError> {
        Err(HandlerError::Fatal("no-event-types must never be loaded".into()))
    }
}

mailroom_sdk::wit::export!(NoEventTypes with_types_in mailroom_sdk::wit);
