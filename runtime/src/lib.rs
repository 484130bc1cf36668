//! Mailroom: a WebAssembly-pluggable event processing runtime.
//!
//! Reading the modules in this order tells the story:
//!
//! - [`message`] and [`clock`]: what a message is, and the one source of time.
//! - [`mailbox`]: the durable SQLite store. It holds no policy: it executes
//!   the transitions it is told to, each guarded by the expected state and lease.
//! - [`state_machine`]: the decisions (what follows a success, a retryable or a
//!   fatal failure, an expired lease; backoff with cap and jitter). Pure, no I/O.
//! - [`plugin`]: the sandboxed wasm host. The only module that knows wasmtime.
//!
//! [`message`]: crate::message
#![warn(missing_docs)]

pub mod clock;
pub mod mailbox;
pub mod message;
pub mod plugin;
pub mod state_machine;
