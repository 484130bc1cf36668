//! `bad-info`: a plugin of the right world that declares an invalid event
//! type (`has space`) next to a valid one, so the host must reject it at load
//! time: every declared type has to be valid.
//!
//! mailroom-sdk's `export_plugin!` refuses such a plugin at compile time, so
//! this one exports the world's bindings by hand, as a plugin built without
//! the SDK would.

use mailroom_sdk::wit::exports::mailroom::plugin::plugin::Guest;
use mailroom_sdk::wit::mailroom::plugin::types::{Event, HandlerError, PluginInfo};

struct BadInfo;

impl Guest for BadInfo {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "bad-info".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            event_types: vec!["bad.info".into(), "has space".into()],
        }
    }

    fn handle(_event: Event) -> Result<(), HandlerError> {
        Err(HandlerError::Fatal("bad-info must never be loaded".into()))
    }
}

mailroom_sdk::wit::export!(BadInfo with_types_in mailroom_sdk::wit);
