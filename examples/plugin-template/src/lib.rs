//! `greeter`: answers `greeting.requested` events.
//!
//! Input (`greeting.requested`): `{"name": "Ada"}`
//!
//! Output (`greeting.sent`, key `greeting.sent:<event id>`):
//! `{"name": "Ada", "greeting": "Hello, Ada!"}`

use mailroom_sdk::{Emit, Error, Event, Plugin, log};
use serde::{Deserialize, Serialize};

struct Greeter;

#[derive(Deserialize)]
struct Request {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    name: String,
    greeting: String,
}

impl Plugin for Greeter {
    const NAME: &'static str = "greeter";
    const EVENT_TYPES: &'static [&'static str] = &["greeting.requested"];

    fn handle(event: Event) -> Result<(), Error> {
        // A payload that does not parse is fatal: no retry can fix it.
        let request: Request = event.json()?;
        if request.name.trim().is_empty() {
            return Err(Error::fatal("name must not be empty"));
        }
        log::info!("greeting {}", request.name);
        let greeting = format!("Hello, {}!", request.name);
        Emit::new("greeting.sent")
            // Keyed by the event id: a redelivery does not greet twice.
            .key(format!("greeting.sent:{}", event.id()))
            .json(&Greeting {
                name: request.name,
                greeting,
            })
            .send()?;
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Greeter);

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_sdk::testing;

    #[test]
    fn greets_by_name() {
        let event = Event::new("greeting.requested", r#"{"name":"Ada"}"#);
        Greeter::handle(event).expect("a valid request succeeds");
        let emitted = testing::take_emitted();
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].event_type, "greeting.sent");
        assert_eq!(
            emitted[0].payload,
            br#"{"name":"Ada","greeting":"Hello, Ada!"}"#
        );
    }

    #[test]
    fn an_empty_name_is_fatal() {
        let error =
            Greeter::handle(Event::new("greeting.requested", r#"{"name":""}"#)).unwrap_err();
        assert!(error.is_fatal());
    }
}
