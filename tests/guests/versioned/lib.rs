//! `versioned`: the one source of the `versioned-v1` and `versioned-v2`
//! crates, which differ only in their `Cargo.toml` version (1.0.0, 2.0.0).
//! Both are plugin `versioned`, handling event type `versioned`, so the
//! host's tests can replace one with the other.
//!
//! Each delivery emits `versioned.handled` with
//! `{"version": "<crate version>", "id": "<event id>"}` and key
//! `versioned.handled:<event id>`.

use mailroom_sdk::{Emit, Error, Event, Plugin};

struct Versioned;

impl Plugin for Versioned {
    const NAME: &'static str = "versioned";
    const EVENT_TYPES: &'static [&'static str] = &["versioned"];

    fn handle(event: Event) -> Result<(), Error> {
        Emit::new("versioned.handled")
            .key(format!("versioned.handled:{}", event.id()))
            .json(&serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "id": event.id() }))
            .send()?;
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Versioned);
