//! The one `bindgen!` of the host, generated from the `handler` world in
//! `wit/`. Private to the plugin module: nothing outside it names these types.
//! (`wasi:http`, imported by the `http-handler` world, is linked from
//! wasmtime-wasi-http's own bindings; see `host.rs`.)
//!
//! Exports are async so a call can be cut off while the guest waits in a
//! WASI host call; the host's own imports (`logging`, `log-filter`,
//! `emitter`, `follow-ups`, `config`) are synchronous and `trappable`, so
//! they can fail the call (a trap) apart from the errors a guest can handle
//! (`emit-error`, `emit-refusal`).

wasmtime::component::bindgen!({
    world: "handler",
    path: "../wit",
    imports: { default: trappable },
    exports: { default: async },
});

pub(crate) use self::mailroom::plugin::logging::Level;
pub(crate) use self::mailroom::plugin::follow_ups::EmitRefusal;
pub(crate) use self::mailroom::plugin::types::{EmitError, OutgoingEvent};
pub(crate) use exports::mailroom::plugin::plugin::{Event, HandlerError, PluginInfo};
