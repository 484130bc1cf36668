//! Mailroom: a WebAssembly-pluggable event processing runtime.
//!
//! Reading the modules in this order tells the story:
//!
//! - [`message`], [`ingest`] and [`clock`]: what a message is, the JSON
//!   object producers send, and the one source of time.
//! - [`mailbox`]: the durable SQLite store. It holds no policy: it executes
//!   the transitions it is told to, each guarded by the expected state and lease.
//! - [`state_machine`]: the decisions (what follows a success, a retryable or a
//!   fatal failure, an expired lease; backoff with cap and jitter). Pure, no I/O.
//! - [`plugin`]: the sandboxed wasm host. The only module that knows wasmtime;
//!   it also holds what an operator opens to each plugin (outbound HTTP on an
//!   allow-list, configuration values and secrets).
//! - [`routing`], [`watcher`] and [`loader`]: which plugin serves each event
//!   type, and keeping that in step with the plugin folder.
//! - [`dispatcher`]: the loop that ties them: claim, deliver, commit outcomes;
//!   `commit_watch` wakes it when another process commits to the store.
//! - [`host`]: everything assembled: the library API for embedding Mailroom.
//! - The ways in and out: [`config`], [`logging`], [`http`] with [`metrics`],
//!   and the `mailroom` command line (`cli`).
#![warn(missing_docs)]

#[doc(hidden)]
pub mod cli;
pub mod clock;
mod commit_watch;
pub mod config;
pub mod dispatcher;
pub mod host;
pub mod http;
pub mod ingest;
pub mod loader;
pub mod logging;
pub mod mailbox;
pub mod message;
pub mod metrics;
pub mod plugin;
pub mod routing;
pub mod state_machine;
pub mod watcher;
