//! `greeter`: a Mailroom plugin handling `greeting.requested` events.

use mailroom_sdk::{Error, Event, Plugin, log};

struct Greeter;

impl Plugin for Greeter {
    const NAME: &'static str = "greeter";
    const EVENT_TYPES: &'static [&'static str] = &["greeting.requested"];

    fn handle(event: Event) -> Result<(), Error> {
        // A payload that is not JSON is fatal: no retry can fix it.
        let payload: serde_json::Value = event.json()?;
        log::info!("{} {}: {payload}", event.event_type(), event.id());
        // The plugin's work goes here. Return Ok(()) to acknowledge the event,
        // Err(Error::retry(..)) to try again later, Err(Error::fatal(..)) to
        // dead-letter it. Follow-up events sent with `mailroom_sdk::emit` or
        // `Emit` are committed only if the handler succeeds.
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Greeter);

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_sdk::testing;

    #[test]
    fn handles_an_event() {
        let event = Event::new("greeting.requested", r#"{"hello": "world"}"#);
        Greeter::handle(event).expect("the handler succeeds");
        assert!(testing::take_emitted().is_empty());
    }

    #[test]
    fn a_payload_that_is_not_json_is_fatal() {
        let error = Greeter::handle(Event::new("greeting.requested", "not json")).unwrap_err();
        assert!(error.is_fatal());
    }

    /// The built component in a real host's sandbox. It needs the `mailroom`
    /// binary (on PATH, or MAILROOM_BIN) and the wasm32-wasip2 target:
    /// `cargo test -- --include-ignored`.
    #[test]
    #[ignore = "builds the component and runs it with the `mailroom` binary"]
    fn the_host_acknowledges_an_event() {
        let wasm = testing::build_component().expect("the component builds");
        let event = Event::new("greeting.requested", r#"{"hello": "world"}"#);
        let run = testing::run_in_host(&wasm, &event).expect("the host runs it");
        assert_eq!(run.outcome, testing::HostOutcome::Ack, "{run:?}");
    }
}
