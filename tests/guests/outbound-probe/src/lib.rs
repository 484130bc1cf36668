//! `outbound-probe`: handles `probe` events (`{"url": "http://…"}`) by
//! sending a GET to `url` and reading its configuration value `secret`, and
//! emits `probe.result` with what it got:
//! `{"status": 200 | null, "error": "…" | null, "secret": "…" | null}`.
//! A test gives another plugin an origin and a secret and checks that this
//! one gains neither.

use mailroom_sdk::{Emit, Error, Event, Plugin, config, http};
use serde::Deserialize;
use serde_json::json;

struct Probe;

#[derive(Deserialize)]
struct Request {
    url: String,
}

impl Plugin for Probe {
    const NAME: &'static str = "outbound-probe";
    const EVENT_TYPES: &'static [&'static str] = &["probe"];

    fn handle(event: Event) -> Result<(), Error> {
        let request: Request = event.json()?;
        let (status, error) = match http::Request::get(request.url).send_raw() {
            Ok(response) => (Some(response.status()), None),
            Err(e) => (None, Some(e.reason().to_owned())),
        };
        Emit::new("probe.result")
            .json(&json!({"status": status, "error": error, "secret": config::get("secret")}))
            .send()?;
        Ok(())
    }
}

mailroom_sdk::export_plugin!(Probe);
