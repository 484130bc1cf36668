//! `bad-info`: a plugin of the right world that declares an invalid event
//! type (`has space`) next to a valid one, so the host must reject it at load
//! time: every declared type has to be valid.

use mailroom_sdk::{Error, Event, Plugin};

struct BadInfo;

impl Plugin for BadInfo {
    const NAME: &'static str = "bad-info";
    const EVENT_TYPES: &'static [&'static str] = &["bad.info", "has space"];

    fn handle(_event: Event) -> Result<(), Error> {
        Err(Error::fatal("bad-info must never be loaded"))
    }
}

mailroom_sdk::export_plugin!(BadInfo);
