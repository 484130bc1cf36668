//! Mailroom: a WebAssembly-pluggable event processing runtime.
//!
//! Reading the modules in this order tells the story:
//!
//! - [`message`], [`ingest`] and [`clock`]: what a message is, the JSON
//!   object producers send, and the one source of time.
//! - [`store`]: the durable mailbox, one seam over two backends (an embedded
//!   SQLite file, or a PostgreSQL database many hosts share). It holds no
//!   policy: it executes the transitions it is told to, each guarded by the
//!   expected state and lease, and wakes hosts when others commit.
//! - [`state_machine`]: the decisions (what follows a success, a retryable or a
//!   fatal failure, an expired lease; backoff with cap and jitter). Pure, no I/O.
//! - [`plugin`]: the sandboxed wasm host. The only module that knows wasmtime;
//!   it also holds what an operator opens to each plugin (outbound HTTP on an
//!   allow-list, configuration values and secrets).
//! - [`routing`], [`watcher`] and [`loader`]: which plugin serves each event
//!   type, and keeping that in step with the plugin folder.
//! - [`dispatcher`]: the loop that ties them: claim, deliver, commit outcomes;
//!   every loop of it that can fail backs off ([`backoff`]).
//! - [`host`]: everything assembled: the library API for embedding Mailroom.
//! - The ways in and out: [`config`], [`logging`], [`http`] (and its web
//!   console) with [`metrics`] and [`throughput`], and the `mailroom` command
//!   line (`cli`).
#![warn(missing_docs)]

pub mod backoff;
#[doc(hidden)]
pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatcher;
pub mod host;
pub mod http;
pub mod ingest;
pub mod loader;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod plugin;
pub mod routing;
pub mod state_machine;
pub mod store;
pub mod throughput;
pub mod watcher;
