//! `info-traps`: a component of the `mailroom:plugin/handler` world whose
//! `info` panics (a trap), so the host must reject it at load time.
//!
//! It implements the generated bindings directly: the SDK's [`Plugin`] trait
//! cannot express a failing `info`.
//!
//! [`Plugin`]: mailroom_sdk::Plugin

use mailroom_sdk::wit::exports::mailroom::plugin::plugin::Guest;
use mailroom_sdk::wit::mailroom::plugin::types::{Event, HandlerError, PluginInfo};

struct InfoTraps;

impl Guest for InfoTraps {
    fn info() -> PluginInfo {
        panic!("info-traps: info traps on purpose");
    }

    fn handle(_event: Event) -> Result<(), HandlerError> {
        Err(HandlerError::Fatal(
            "info-traps must never be loaded".into(),
        ))
    }
}

mailroom_sdk::wit::export!(InfoTraps with_types_in mailroom_sdk::wit);
