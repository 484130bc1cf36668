//! The epoch ticker that enforces plugin time limits: a thread advancing the
//! engine's epoch every [`EPOCH_TICK`] while any call into wasm runs; running
//! wasm traps once its store's deadline (a number of ticks) has passed.
//!
//! While no call runs the thread is parked, so an idle host does not wake
//! a hundred times a second. A store's deadline counts ticks from the epoch
//! at the start of its call, so the pause changes no time limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;

use wasmtime::{Engine, EngineWeak};

use super::error::PluginError;
use super::sandbox::EPOCH_TICK;

/// Owns the ticker thread; it stops when this is dropped or the engine is gone.
pub(crate) struct EpochTicker {
    shared: Arc<Shared>,
    thread: Thread,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Calls into wasm running now.
    calls: AtomicUsize,
    /// Ticks so far.
    ticks: AtomicU64,
}

/// Keeps the ticker running while a call into wasm runs.
pub(crate) struct Ticking {
    shared: Arc<Shared>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Result<Self, PluginError> {
        let shared = Arc::new(Shared::default());
        let weak: EngineWeak = engine.weak();
        let state = shared.clone();
        // Without the ticker a guest spinning in wasm would never be stopped:
        // no ticker, no host.
        let handle = std::thread::Builder::new()
            .name("mailroom-epoch".into())
            .spawn(move || {
                while !state.stop.load(Ordering::Acquire) {
                    if state.calls.load(Ordering::Acquire) == 0 {
                        // Unparked by the next call, or by `drop`. A wake-up
                        // with nothing to do only loops back here.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => {
                            engine.increment_epoch();
                            state.ticks.fetch_add(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Engine {
                reason: format!("could not start the epoch ticker thread: {e}"),
            })?;
        Ok(Self {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Marks a call into wasm as running until the returned guard drops.
    pub(crate) fn call(&self) -> Ticking {
        if self.shared.calls.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Ticking {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.shared.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).expect("engine")
    }

    #[test]
    fn ticks_only_while_a_call_runs() {
        let engine = engine();
        let ticker = EpochTicker::start(&engine).expect("ticker");
        std::thread::sleep(EPOCH_TICK * 5);
        assert_eq!(
            ticker.shared.ticks.load(Ordering::Relaxed),
            0,
            "idle: the epoch stays put"
        );
        let call = ticker.call();
        std::thread::sleep(EPOCH_TICK * 5);
        let during = ticker.shared.ticks.load(Ordering::Relaxed);
        assert!(during >= 1, "a running call advances the epoch");
        drop(call);
        std::thread::sleep(EPOCH_TICK * 3);
        let after = ticker.shared.ticks.load(Ordering::Relaxed);
        std::thread::sleep(EPOCH_TICK * 10);
        // At most one tick that was already under way when the call ended.
        let later = ticker.shared.ticks.load(Ordering::Relaxed);
        assert!(
            later <= after + 1,
            "idle again: the epoch stops ({after} -> {later})"
        );
    }
}
