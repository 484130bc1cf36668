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
// - `config`: the values the operator set for this plugin.
// - `http`: outbound requests, failures sorted into retry and fatal.
// - `host`: the host imports, with native stand-ins for `cargo test`.
// - `testing`: what native tests use to see emitted events; `in_host`: running
//   the built component in a real host from a test.

mod checks;
pub mod config;
mod emit;
mod error;
mod event;
mod host;
#[cfg(not(target_arch = "wasm32"))]
mod in_host;
pub mod http;
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

/// Bindings generated from `wit/plugin.wit` (the `http-handler` world: the
/// `handler` world plus `wasi:http/outgoing-handler`). Plugin authors never
/// name these: [`Plugin`], [`Event`], [`Error`], [`emit`], [`config`] and
/// [`http`] wrap them. A plugin's component imports only what it uses, so a
/// plugin that makes no requests does not import `wasi:http`.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, missing_debug_implementations)]
pub mod wit {
    wit_bindgen::generate!({
        world: "http-handler",
        path: "../wit",
        // The export macro runs in each plugin's crate.
        pub_export_macro: true,
        default_bindings_module: "::mailroom_sdk::wit",
        additional_derives: [PartialEq, Eq],
        // Variants holding a resource cannot compare.
        additional_derives_ignore: ["stream-error"],
        // The `wasi:http` interfaces and what they use (`wasi:io`,
        // `wasi:clocks`) are generated here too: the SDK's HTTP client is
        // their only user.
        generate_all,
    });
}

/// The repository README's plugin example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RepositoryReadme;
