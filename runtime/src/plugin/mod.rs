//! The sandboxed wasm plugin host: the only module that knows wasmtime.
//!
//! Three lifetimes, made explicit:
//!
//! - per process, a [`PluginHost`]: the `Engine` (with its instance pool), the
//!   `Linker` holding WASI and the host's imports, and the epoch ticker that
//!   enforces time limits;
//! - per plugin version, a [`Plugin`]: the compiled component, pre-instantiated
//!   against the linker, with the info it gave at load time;
//! - per delivery, a fresh `Store` and instance (unless
//!   [`SandboxLimits::instance_reuse`] says otherwise), dropped afterwards.
//!
//! Reading order:
//!
//! - `sandbox`: the policy, every limit and knob in one place, with reasons;
//! - `host`: engine, linker, ticker; `cache`: compiled code on disk;
//! - `plugin_file`: reading only regular files, within the size cap;
//!   `compile`: compiling in a child process within a time and memory budget;
//! - `inspect`: a file becomes a [`Plugin`], or the list of everything wrong
//!   with it ([`PluginError`]s); `loaded`: [`Plugin::handle`] runs a delivery;
//! - `invoke`: one guarded call and how a failure is named;
//! - `store`, `imports`, `guest_io`: what a store holds, the `logging`,
//!   `emitter` (and `follow-ups`) and `config` imports, and guest
//!   stdout/stderr going to the log;
//! - `access`, `outbound`: what the operator opened to each plugin
//!   (`[plugin.<name>]`), and outbound HTTP checked against it;
//! - `bindings`: the generated code, private.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mailroom::plugin::PluginError> {
//! use mailroom::plugin::{Delivery, HostConfig, Outcome, PluginHost};
//!
//! let host = PluginHost::new(HostConfig::default())?;
//! let plugin = tokio::task::spawn_blocking(move || host.load("plugins/shop.wasm".as_ref()))
//!     .await
//!     .expect("load does not panic")?;
//! # let delivery: Delivery = todo!();
//! match plugin.handle(delivery).await {
//!     Outcome::Success { emitted } => { /* ack, commit `emitted` */ }
//!     Outcome::Retry { reason, after } => { /* back off */ }
//!     Outcome::Fatal { reason } => { /* dead-letter */ }
//! }
//! # Ok(())
//! # }
//! ```

mod access;
mod bindings;
mod cache;
mod compile;
mod delivery;
mod epoch;
mod error;
mod guest_io;
mod host;
mod imports;
mod inspect;
mod invoke;
mod loaded;
mod outbound;
mod plugin_file;
mod sandbox;
mod store;

pub use access::{AccessByPlugin, ConfigValue, PluginAccess};
pub use compile::{COMPILE_EXIT_INVALID, COMPILE_SUBCOMMAND, Compiler, run_compile_child};
pub use delivery::{Delivery, Emitted, Outcome};
pub use error::PluginError;
pub use guest_io::GUEST_TARGET;
pub use host::{HostConfig, PluginHost};
pub use inspect::file_digest;
pub use plugin_file::read as read_plugin_file;
pub use loaded::Plugin;
pub use outbound::{AllowedOrigin, InvalidOrigin, OutboundObserver};
pub use sandbox::{DEFAULT_MAX_CHAIN_DEPTH, DEFAULT_MAX_EMIT_BYTES, SandboxLimits};
