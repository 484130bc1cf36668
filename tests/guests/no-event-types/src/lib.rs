//! `no-event-types`: a plugin of the right world that declares no event
//! types, so the host must reject it at load time.

use mailroom_sdk::{Error, Event, Plugin};

struct NoEventTypes;

impl Plugin for NoEventTypes {
    const NAME: &'static str = "no-event-types";
    const EVENT_TYPES: &'static [&'static str] = &[];

    fn handle(_event: Event) -> Result<(), Error> {
        Err(Error::fatal("no-event-types must never be loaded"))
    }
}

mailroom_sdk::export_plugin!(NoEventTypes);
