//! `hostile`: a plugin written to take more than its share of the host.
//! Each event type is one attack; the payload (JSON) tunes it.
//!
//! | event type | payload | what the handler does |
//! | --- | --- | --- |
//! | `hostile.volume` | `{"count": 300, "bytes": 1048576, "ignore_errors": false}` | emits `count` events of `bytes` payload bytes each, then succeeds; an emit the host refuses fails the handler with the SDK's error (fatal), unless `ignore_errors`, when it keeps emitting and succeeds |
//! | `hostile.loop` | anything | emits two `hostile.loop` events with the same payload, then succeeds: a loop without end, unless the host ends it |
//! | `hostile.slow` | `{"ms": 5000}` | sleeps `ms` milliseconds (through the WASI clock), then succeeds: holds a delivery slot as long as the time limit allows |

use std::time::Duration;

use mailroom_sdk::{Emit, Error, Event, Plugin};
use serde::Deserialize;

struct Hostile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Volume {
    count: u32,
    bytes: usize,
    #[serde(default)]
    ignore_errors: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Slow {
    ms: u64,
}

impl Plugin for Hostile {
    const NAME: &'static str = "hostile";
    const EVENT_TYPES: &'static [&'static str] =
        &["hostile.volume", "hostile.loop", "hostile.slow"];

    fn handle(event: Event) -> Result<(), Error> {
        match event.event_type() {
            "hostile.volume" => {
                let volume: Volume = event.json()?;
                for i in 0..volume.count {
                    // A fresh buffer each time: the guest keeps nothing, the
                    // host is asked to keep it all.
                    let mut payload = vec![b'x'; volume.bytes];
                    if let Some(first) = payload.first_mut() {
                        *first = b'0' + (i % 10) as u8;
                    }
                    let sent = Emit::new("hostile.volume.out").payload(payload).send();
                    if let Err(e) = sent
                        && !volume.ignore_errors
                    {
                        return Err(e.into());
                    }
                }
                Ok(())
            }
            "hostile.loop" => {
                for _ in 0..2 {
                    Emit::new("hostile.loop").payload(event.payload()).send()?;
                }
                Ok(())
            }
            "hostile.slow" => {
                let slow: Slow = event.json()?;
                std::thread::sleep(Duration::from_millis(slow.ms));
                Ok(())
            }
            other => Err(Error::fatal(format!("hostile does not handle {other}"))),
        }
    }
}

mailroom_sdk::export_plugin!(Hostile);
