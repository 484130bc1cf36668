//! `many-types`: a plugin of the right world that declares 50,000 event types
//! (`many.0` … `many.49999`), so the host must refuse it at load time rather
//! than route, record and claim by every one of them.
//!
//! mailroom-sdk's `export_plugin!` takes a constant list; this one builds
//! the list when `info` is called, exporting the world's bindings by hand.

use mailroom_sdk::wit::exports::mailroom::plugin::plugin::Guest;
use mailroom_sdk::wit::mailroom::plugin::types::{Event, HandlerError, PluginInfo};

/// How many event types `info` declares.
const COUNT: usize = 50_000;

struct ManyTypes;

impl Guest for ManyTypes {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "many-types".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            event_types: (0..COUNT).map(|i| format!("many.{i}")).collect(),
        }
    }

    fn handle(_event: Event) -> Result<(), HandlerError> {
        Err(HandlerError::Fatal("many-types must never be loaded".into()))
    }
}

mailroom_sdk::wit::export!(ManyTypes with_types_in mailroom_sdk::wit);
