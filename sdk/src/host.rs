//! The host imports, and what stands in for them outside a host.
//!
//! On `wasm32` these call the Mailroom host. Natively (unit tests, doctests)
//! there is no host: log lines go to stderr and emitted events are kept per
//! thread for [`crate::testing::take_emitted`], so handler code can be tested
//! with a plain `cargo test`.

use crate::wit::mailroom::plugin::logging::Level;
use crate::wit::mailroom::plugin::types::{EmitError, OutgoingEvent};

#[cfg(target_arch = "wasm32")]
pub(crate) fn emit(event: OutgoingEvent) -> Result<(), EmitError> {
    crate::wit::mailroom::plugin::emitter::emit(&event)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn log(level: Level, message: &str) {
    crate::wit::mailroom::plugin::logging::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static EMITTED: std::cell::RefCell<Vec<OutgoingEvent>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn emit(event: OutgoingEvent) -> Result<(), EmitError> {
    EMITTED.with_borrow_mut(|emitted| emitted.push(event));
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn take_emitted() -> Vec<OutgoingEvent> {
    EMITTED.with_borrow_mut(std::mem::take)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn log(level: Level, message: &str) {
    std::eprintln!("[{level:?}] {message}");
}
