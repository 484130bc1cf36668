//! The state of one store (one plugin instance): its WASI and wasi-http
//! contexts, resource table and limiter, the guest's output, the outbound
//! HTTP policy, and what the current call has done so far (log lines,
//! emitted events).

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::access::PluginAccess;
use super::delivery::Emitted;
use super::guest_io::{GuestOutput, GuestStream, Stream};
use super::outbound::{Outbound, OutboundObserver};
use super::sandbox::{self, SandboxLimits, StoreLimiter};

/// The data of a plugin's `Store`.
pub(crate) struct StoreState {
    /// Built at the guest's first WASI call, not with the store: many
    /// deliveries make none, and building one (its random generators among
    /// it) is a noticeable part of a fresh instance's cost.
    wasi: Option<WasiCtx>,
    http: WasiHttpCtx,
    pub(crate) outbound: Outbound,
    table: ResourceTable,
    pub(crate) limiter: StoreLimiter,
    pub(crate) output: GuestOutput,
    pub(crate) call: CallState,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState")
            .field("plugin", &self.call.plugin)
            .field("call", &self.call.id)
            .finish_non_exhaustive()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let output = &self.output;
        let ctx = self.wasi.get_or_insert_with(|| {
            sandbox::wasi_ctx(
                GuestStream::new(output, Stream::Stdout),
                GuestStream::new(output, Stream::Stderr),
            )
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// What the current call (a delivery or the `info` call) has done so far.
#[derive(Debug)]
pub(crate) struct CallState {
    pub(crate) plugin: Arc<str>,
    /// The message id, or "info" for the load-time call: one string per
    /// call, shared with the guest's output and its outbound requests.
    pub(crate) id: Arc<str>,
    pub(crate) max_log_lines: u32,
    pub(crate) max_emits: u32,
    pub(crate) max_payload_bytes: usize,
    pub(crate) max_emit_bytes: usize,
    pub(crate) max_chain_depth: u32,
    /// The chain depth of the message being handled (0 for `info`).
    pub(crate) depth: u32,
    pub(crate) log_lines: u32,
    pub(crate) emitted: Vec<Emitted>,
    /// The payload bytes of `emitted`.
    pub(crate) emitted_bytes: usize,
    /// An emit was refused because the chain is too deep: the delivery
    /// ends as a dead letter whatever the handler returns.
    pub(crate) chain_refused: bool,
    /// Epoch ticks the call may still run for before it traps.
    pub(crate) ticks_left: u64,
}

/// A new store for one instance of `plugin`, with the sandbox's limiter and
/// its epoch deadline set to yield, and to trap at the time limit
/// ([`on_epoch_tick`]).
pub(crate) fn new_store(
    engine: &Engine,
    plugin: Arc<str>,
    limits: &SandboxLimits,
    observer: Option<Arc<dyn OutboundObserver>>,
) -> Store<StoreState> {
    let output = GuestOutput::new(plugin.clone(), limits.max_output_bytes);
    let state = StoreState {
        wasi: None,
        http: WasiHttpCtx::new(),
        outbound: Outbound::new(plugin.clone(), limits, observer),
        table: ResourceTable::new(),
        limiter: StoreLimiter::new(limits),
        output,
        call: CallState {
            plugin,
            // Empty until `begin_call` (no allocation).
            id: Arc::default(),
            max_log_lines: limits.max_log_lines,
            max_emits: limits.max_emits,
            max_payload_bytes: limits.max_payload_bytes,
            max_emit_bytes: limits.max_emit_bytes,
            max_chain_depth: limits.max_chain_depth,
            depth: 0,
            log_lines: 0,
            emitted: Vec::new(),
            emitted_bytes: 0,
            chain_refused: false,
            ticks_left: 0,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(on_epoch_tick);
    store
}

/// At every epoch tick while wasm runs (the deadline is one tick ahead):
/// past the time limit, trap; before it, yield to the async runtime, so a
/// guest spinning in wasm shares its thread with everything else the host
/// runs there (other deliveries, commits, the HTTP API) rather than holding
/// it for the whole time limit. The async timeout around the call bounds
/// the wall-clock time however long the runtime takes to resume it.
fn on_epoch_tick(
    mut store: wasmtime::StoreContextMut<'_, StoreState>,
) -> wasmtime::Result<UpdateDeadline> {
    let left = &mut store.data_mut().call.ticks_left;
    *left = left.saturating_sub(1);
    Ok(if *left == 0 {
        UpdateDeadline::Interrupt
    } else {
        UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
    })
}

/// Prepares a store for the next call: a fresh output budget, log count,
/// emit buffer and memory-refusal flag, chain depth 0 (a delivery sets
/// its message's), the plugin's access as it is now, and the time limit
/// from now.
pub(crate) fn begin_call(
    store: &mut Store<StoreState>,
    id: &str,
    limits: &SandboxLimits,
    access: Arc<PluginAccess>,
) {
    let state = store.data_mut();
    let id: Arc<str> = Arc::from(id);
    state.outbound.begin_call(id.clone(), access, limits.timeout);
    state.output.begin(id.clone());
    state.call.id = id;
    state.call.log_lines = 0;
    state.call.emitted.clear();
    // Give the buffer's memory back: a reused instance must not keep the
    // last delivery's capacity.
    state.call.emitted.shrink_to_fit();
    state.call.emitted_bytes = 0;
    state.call.depth = 0;
    state.call.chain_refused = false;
    state.call.ticks_left = limits.epoch_ticks();
    state.limiter.reset();
    store.set_epoch_deadline(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasi_context_is_built_at_the_first_wasi_call() {
        let limits = SandboxLimits::default();
        let engine = Engine::new(&sandbox::engine_config(&limits, false)).expect("engine");
        let mut store = new_store(&engine, Arc::from("lazy"), &limits, None);
        assert!(store.data().wasi.is_none(), "no WASI context before a WASI call");
        let _ = store.data_mut().ctx();
        assert!(store.data().wasi.is_some(), "built when the guest first needs it");
    }
}
