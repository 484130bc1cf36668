//! `duplicate-order`: a plugin that claims `order.created`, which the shipped
//! `order-validator` already owns, so the host must refuse whichever of the
//! two comes second. If it ever handles an event, it dead-letters it with a
//! reason saying so.

use mailroom_sdk::{Error, Event, Plugin};

struct DuplicateOrder;

impl Plugin for DuplicateOrder {
    const NAME: &'static str = "duplicate-order";
    const EVENT_TYPES: &'static [&'static str] = &["order.created"];

    fn handle(_event: Event) -> Result<(), Error> {
        Err(Error::fatal("duplicate-order handled an event"))
    }
}

mailroom_sdk::export_plugin!(DuplicateOrder);
