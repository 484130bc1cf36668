#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// A tour, in the order a plugin meets them:
//
// - `plugin`: the `Plugin` trait and the `export_plugin!` macro;
//   `checks`: the host's rules for its name and event types, at compile time.
// - `event`: the delivered `Event`.
// - `error`: `Error` and the rule `?` follows to sort errors into retry/fatal.
// - `emit`: follow-up events (`emit`, `Emit`, `Priority`, `EmitError`).
// - `log`: lines into the host log.
// - `host`: the host imports, with native stand-ins for `cargo test`.
// - `testing`: what native tests use to see emitted events; `in_host`: running
//   the built component in a real host from a test.

mod checks;
mod emit;
mod error;
mod event;
mod host;
#[cfg(not(target_arch = "wasm32"))]
mod in_host;
pub mod log;
mod plugin;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use emit::{Emit, EmitError, Priority, emit};
pub use error::Error;
pub use event::Event;
#[doc(hidden)]
pub use plugin::__private;
pub use plugin::Plugin;

/// Bindings generated from `wit/plugin.wit`. Plugin authors never name
/// these: [`Plugin`], [`Event`], [`Error`] and [`emit`] wrap them.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, missing_debug_implementations)]
pub mod wit {
    wit_bindgen::generate!({
        world: "handler",
        path: "../wit",
        // The export macro runs in each plugin's crate.
        pub_export_macro: true,
        default_bindings_module: "::mailroom_sdk::wit",
        additional_derives: [PartialEq, Eq],
    });
}

/// The repository README's plugin example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RepositoryReadme;
