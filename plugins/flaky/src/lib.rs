//! `flaky`: fails on purpose until a given attempt, to show retries at work.
//!
//! Input (`flaky`): `{"succeed_on_attempt": 3}`. Attempts before the third
//! return a retryable error (so the host backs off and tries again); the third
//! succeeds and emits nothing. With `succeed_on_attempt` above the message's
//! `max_attempts`, the message ends up dead-lettered with the last reason.

use mailroom_sdk::{Error, Event, Plugin, log};
use serde::Deserialize;

struct Flaky;

#[derive(Deserialize)]
struct Request {
    succeed_on_attempt: u32,
}

impl Plugin for Flaky {
    const NAME: &'static str = "flaky";
    const EVENT_TYPES: &'static [&'static str] = &["flaky"];

    fn handle(event: Event) -> Result<(), Error> {
        let request: Request = event.json()?;
        let attempt = event.attempt();
        if attempt < request.succeed_on_attempt {
            return Err(Error::retry(format!(
                "attempt {attempt} fails on purpose (succeeds on attempt {})",
                request.succeed_on_attempt
            )));
        }
        log::info!("succeeded on attempt {attempt}");
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Flaky);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_the_given_attempt() {
        let event =
            |attempt| Event::new("flaky", r#"{"succeed_on_attempt":3}"#).with_attempt(attempt, 10);
        for attempt in 1..3 {
            let error = Flaky::handle(event(attempt)).unwrap_err();
            assert!(!error.is_fatal());
            assert!(
                error.reason().contains(&format!("attempt {attempt} fails")),
                "{error}"
            );
        }
        Flaky::handle(event(3)).unwrap();
        Flaky::handle(event(4)).unwrap();
    }
}
