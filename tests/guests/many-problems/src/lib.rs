//! `many-problems`: a component with four problems the host finds at load
//! time: it imports `test:many-problems/ledger`, which no host offers; its
//! name has a newline; one event type has a space and another is empty.
//! `mailroom plugin check` must list all four at once.

wit_bindgen::generate!({
    world: "test:many-problems/many-problems",
    path: ["../../../wit", "wit"],
    generate_all,
});

use exports::mailroom::plugin::plugin::Guest;
use mailroom::plugin::types::{Event, HandlerError, PluginInfo};

struct ManyProblems;

impl Guest for ManyProblems {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "many\nproblems".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            event_types: vec!["many.problems".into(), "has space".into(), String::new()],
        }
    }

    fn handle(event: Event) -> Result<(), HandlerError> {
        // Uses the import, so the component keeps it.
        test::many_problems::ledger::record_entry(&event.id);
        Err(HandlerError::Fatal("many-problems must never be loaded".into()))
    }
}

export!(ManyProblems);
