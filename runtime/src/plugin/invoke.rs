//! One call into a plugin under the sandbox's limits: instantiate (unless a
//! warm instance is reused), call, and say how it ended. Used for deliveries
//! and for the `info` call at load time.

use std::future::Future;
use std::pin::Pin;

use wasmtime::{Store, Trap};

use super::bindings::{Handler, HandlerPre};
use super::delivery::truncate_reason;
use super::guest_io::panic_message;
use super::imports::InvalidEmit;
use super::sandbox::{MAX_REASON_BYTES, SandboxLimits, format_bytes};
use super::store::StoreState;

/// A live plugin instance: its store, its bindings, and how many deliveries
/// it has served.
pub(crate) struct Instance {
    pub(crate) store: Store<StoreState>,
    pub(crate) handler: Option<Handler>,
    pub(crate) served: u32,
}

impl Instance {
    /// A new, not yet instantiated, instance in `store`.
    pub(crate) fn new(store: Store<StoreState>) -> Self {
        Self {
            store,
            handler: None,
            served: 0,
        }
    }
}

/// How a call into the guest failed (as opposed to the guest returning an
/// error of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The time limit passed: epoch deadline in wasm, or the async timeout
    /// while the guest waited in a host call.
    TimedOut,
    /// A memory growth past the cap was refused and the guest then failed.
    Memory,
    /// The wasm stack overflowed.
    StackOverflow,
    /// The guest panicked, with the message it printed to stderr.
    Panicked(String),
    /// Any other trap.
    Trapped(String),
    /// The guest emitted an event the store can never accept.
    InvalidEmit(String),
    /// The component could not be instantiated.
    Instantiate(String),
}

impl Failure {
    /// The reason shown to operators, bounded in size.
    pub(crate) fn reason(&self, limits: &SandboxLimits) -> String {
        let reason = match self {
            Failure::TimedOut => format!(
                "timed out after {}",
                humantime::format_duration(limits.timeout)
            ),
            Failure::Memory => format!(
                "memory limit of {} exceeded",
                format_bytes(limits.memory_bytes)
            ),
            Failure::StackOverflow => "stack overflow".to_string(),
            Failure::Panicked(message) => format!("panicked: {message}"),
            Failure::Trapped(trap) => format!("trapped: {trap}"),
            Failure::InvalidEmit(reason) => reason.clone(),
            Failure::Instantiate(reason) => format!("could not instantiate the plugin: {reason}"),
        };
        truncate_reason(reason, MAX_REASON_BYTES)
    }
}

/// The future of one export call, borrowing the instance's bindings and store.
pub(crate) type CallFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Runs `call` on `instance` (instantiating it first if it is new) within the
/// time limit. The caller has prepared the store with `begin_call`.
///
/// On failure the instance must be discarded: a trap or a cancelled call
/// leaves it in no state to serve another delivery.
pub(crate) async fn run<R>(
    pre: &HandlerPre<StoreState>,
    instance: &mut Instance,
    limits: &SandboxLimits,
    call: impl for<'a> FnOnce(&'a Handler, &'a mut Store<StoreState>) -> CallFuture<'a, R>,
) -> Result<R, Failure> {
    let Instance { store, handler, .. } = instance;
    // Instantiation runs inside the time limit too: it runs guest code
    // (start functions) and may be what exhausts memory.
    let guarded = async {
        let bindings = match handler.take() {
            Some(bindings) => bindings,
            None => pre
                .instantiate_async(&mut *store)
                .await
                .map_err(|e| (true, e))?,
        };
        let bindings = &*handler.insert(bindings);
        call(bindings, store).await.map_err(|e| (false, e))
    };
    let failure = match tokio::time::timeout(limits.timeout, guarded).await {
        Ok(Ok(value)) => return Ok(value),
        Err(_elapsed) => Failure::TimedOut,
        Ok(Err((instantiating, error))) => {
            tracing::debug!("plugin call failed: {error:?}");
            match classify(&error, store.data()) {
                Failure::Trapped(reason) if instantiating => Failure::Instantiate(reason),
                other => other,
            }
        }
    };
    Err(failure)
}

/// What an error out of wasmtime means for the operator.
fn classify(error: &wasmtime::Error, state: &StoreState) -> Failure {
    if let Some(invalid) = error.downcast_ref::<InvalidEmit>() {
        return Failure::InvalidEmit(invalid.to_string());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return Failure::TimedOut,
        Some(Trap::StackOverflow) => return Failure::StackOverflow,
        Some(Trap::MemoryOutOfBounds) if shadow_stack_overflow(error) || deep_recursion(error) => {
            return Failure::StackOverflow;
        }
        _ => {}
    }
    // A guest out of memory usually aborts (an `unreachable` trap) right
    // after the refused growth; the refusal is the real reason.
    if state.limiter.memory_refused() {
        return Failure::Memory;
    }
    if let Some(message) = panic_message(&state.output.stderr_tail()) {
        return Failure::Panicked(message);
    }
    match error.downcast_ref::<Trap>() {
        Some(trap) => Failure::Trapped(trap.to_string()),
        None => Failure::Trapped(format!("{error:#}")),
    }
}

/// Whether an out-of-bounds access is the guest's shadow stack running out.
///
/// Compilers for wasm32 (Rust and C via wasm-ld) keep large stack frames in
/// linear memory, at its start, growing down; running out wraps the stack
/// pointer below address 0, so the fault address is just under 4 GiB, far
/// beyond the memory. wasmtime attaches the fault address as context
/// ("memory fault at wasm address 0x… in linear memory of size 0x…").
fn shadow_stack_overflow(error: &wasmtime::Error) -> bool {
    /// How far below 4 GiB a wrapped stack pointer plus a frame may land.
    const WRAP_WINDOW: u64 = 64 << 20;
    error.chain().any(|cause| {
        let text = cause.to_string();
        let Some(rest) = text.strip_prefix("memory fault at wasm address 0x") else {
            return false;
        };
        let address = rest
            .split(|c: char| !c.is_ascii_hexdigit())
            .next()
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        let size = rest
            .rsplit("size 0x")
            .next()
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        match (address, size) {
            (Some(address), Some(size)) => {
                address > size && ((1 << 32) - WRAP_WINDOW..1 << 32).contains(&address)
            }
            _ => false,
        }
    })
}

/// Whether the innermost frames of a trap's backtrace are one recursion.
///
/// The shadow stack can also run out inside a bulk-memory copy (a large
/// frame copied with `memory.copy`), which wasmtime checks in the host and
/// reports without a fault address. What identifies it then is the shape of
/// the stack: the innermost frames (wasmtime keeps 20) are the same one to
/// three functions over and over, which ordinary code never is.
fn deep_recursion(error: &wasmtime::Error) -> bool {
    const DEPTH: usize = 16;
    const MAX_DISTINCT: usize = 3;
    let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = backtrace.frames();
    if frames.len() < DEPTH {
        return false;
    }
    let mut distinct: Vec<(&str, u32)> = Vec::with_capacity(MAX_DISTINCT + 1);
    for frame in &frames[..DEPTH] {
        let function = (frame.module().name().unwrap_or(""), frame.func_index());
        if !distinct.contains(&function) {
            distinct.push(function);
            if distinct.len() > MAX_DISTINCT {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_stack_pointer_is_a_stack_overflow() {
        let fault =
            |text: &'static str| wasmtime::Error::from(Trap::MemoryOutOfBounds).context(text);
        assert!(shadow_stack_overflow(&fault(
            "memory fault at wasm address 0xfffffef0 in linear memory of size 0x110000"
        )));
        // An access just past the end of memory is an ordinary bug.
        assert!(!shadow_stack_overflow(&fault(
            "memory fault at wasm address 0x110010 in linear memory of size 0x110000"
        )));
        assert!(!shadow_stack_overflow(&wasmtime::Error::from(
            Trap::MemoryOutOfBounds
        )));
    }
}
