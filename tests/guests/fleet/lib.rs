//! `fleet`: the one source of the `fleet-a` … `fleet-e` guests, which differ
//! only in their package name. Each is plugin `<package>`, handling event
//! type `<package>.recorded`, so the five load side by side with each other
//! and with the other plugins (the footprint benchmark loads them all).
//!
//! The payload is a JSON object of numeric readings, e.g.
//! `{"speed": 12.5, "load": 3}`; the handler logs how many there were and
//! their sum at debug level, and emits nothing. A payload that is not such
//! an object is a fatal error.

use std::collections::BTreeMap;

use mailroom_sdk::{Error, Event, Plugin, log};

struct Fleet;

impl Plugin for Fleet {
    const NAME: &'static str = env!("CARGO_PKG_NAME");
    const EVENT_TYPES: &'static [&'static str] = &[concat!(env!("CARGO_PKG_NAME"), ".recorded")];

    fn handle(event: Event) -> Result<(), Error> {
        let readings: BTreeMap<String, f64> = event.json()?;
        let sum = readings.values().fold(0.0, |sum, v| sum + v);
        log::debug!("{} readings, sum {sum}", readings.len());
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Fleet);
