//! A loaded plugin version (what `inspect` made of a file that passed every
//! check), and one [`Plugin::handle`] per delivery.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Instrument;

use super::bindings::{Event, HandlerError, HandlerPre};
use super::delivery::{Delivery, Outcome, truncate_reason};
use super::host::HostInner;
use super::invoke::{self, Instance};
use super::sandbox::MAX_REASON_BYTES;
use super::store::{self, StoreState};

/// A loaded plugin version, ready to handle deliveries. Cheap to clone;
/// in-flight deliveries keep their version alive after it is replaced.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    host: Arc<HostInner>,
    pre: HandlerPre<StoreState>,
    name: Arc<str>,
    version: String,
    event_types: Vec<String>,
    digest: String,
    path: PathBuf,
    from_cache: bool,
    /// Instances that may serve more deliveries (only with `instance_reuse > 1`).
    warm: Mutex<Vec<Instance>>,
    /// Instances created for deliveries so far.
    instantiations: AtomicU64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("event_types", &self.event_types())
            .field("digest", &self.digest())
            .field("path", &self.path())
            .field("loaded_from_cache", &self.loaded_from_cache())
            .field("instantiations", &self.instantiations())
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The name the plugin gave itself.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The version the plugin gave itself.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The event types the plugin handles: at least one, each valid.
    pub fn event_types(&self) -> &[String] {
        &self.inner.event_types
    }

    /// `sha256:<hex>` of the file's bytes: which build this is.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The file the plugin was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the compiled code came from the cache (no compilation).
    pub fn loaded_from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// How many instances deliveries of this version have created so far:
    /// one per delivery by default, fewer with
    /// [`SandboxLimits::instance_reuse`](super::SandboxLimits::instance_reuse)
    /// above 1. The load-time `info` call is not counted.
    pub fn instantiations(&self) -> u64 {
        self.inner.instantiations.load(Ordering::Relaxed)
    }

    /// Runs one delivery. Never panics and never fails: whatever the plugin
    /// does (returns an error, traps, loops, sleeps, exhausts its memory or
    /// stack, panics) is an [`Outcome`]. Emitted events are returned only with
    /// [`Outcome::Success`].
    ///
    /// At `debug`, the call runs in a span naming the plugin, its version,
    /// the message, its type and the attempt. Not at `info`: the span cost a
    /// host logging at its default level 6-13% of its throughput
    /// (docs/BENCHMARKS.md), and the lines a call writes at `info` and above
    /// name the plugin and the message themselves; the dispatcher's line for
    /// the outcome has the rest.
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let span = tracing::debug_span!(
            "plugin.handle",
            plugin = %self.inner.name,
            version = %self.inner.version,
            message_id = %delivery.id,
            event_type = %delivery.event_type,
            attempt = delivery.attempt,
        );
        self.inner.handle(delivery).instrument(span).await
    }
}

impl PluginInner {
    async fn handle(&self, delivery: Delivery) -> Outcome {
        let host = &self.host;
        let limits = &host.limits;
        // Wait for a running slot before the clock starts: the pool is sized
        // for `max_instances` running instances.
        let Ok(_permit) = host.running.clone().acquire_owned().await else {
            return Outcome::retry("the plugin host is shutting down");
        };
        let _ticking = host.ticker.call();
        let mut instance = self.take_warm().unwrap_or_else(|| {
            self.instantiations.fetch_add(1, Ordering::Relaxed);
            Instance::new(store::new_store(
                &host.engine,
                self.name.clone(),
                limits,
                host.outbound_observer.clone(),
            ))
        });
        let id = delivery.id.to_string();
        let access = host.access.get(&self.name);
        store::begin_call(&mut instance.store, &id, limits, access);
        instance.store.data_mut().call.depth = delivery.depth;
        // The id formatted once serves the call's log context and the event.
        let event = to_event(delivery, id);
        let result = invoke::run(&self.pre, &mut instance, limits, move |handler, store| {
            Box::pin(async move {
                handler
                    .mailroom_plugin_plugin()
                    .call_handle(store, &event)
                    .await
            })
        })
        .await;
        instance.store.data().output.finish();
        let call = &mut instance.store.data_mut().call;
        if call.chain_refused {
            // However the handler answered the refusal (ignored it, returned
            // it, panicked on it), the chain ends here as a dead letter
            // naming the limit: a chain this long is a loop.
            call.emitted = Vec::new();
            // The dispatcher logs the dead letter with this reason.
            let reason = chain_too_deep(call.depth, limits.max_chain_depth);
            return Outcome::Fatal { reason };
        }
        let outcome = match result {
            Ok(Ok(())) => Outcome::Success {
                emitted: std::mem::take(&mut instance.store.data_mut().call.emitted),
            },
            Ok(Err(HandlerError::Retry(request))) => Outcome::Retry {
                reason: truncate_reason(request.reason, MAX_REASON_BYTES),
                after: request.after_ms.map(std::time::Duration::from_millis),
            },
            Ok(Err(HandlerError::Fatal(reason))) => Outcome::Fatal {
                reason: truncate_reason(reason, MAX_REASON_BYTES),
            },
            Err(failure) => {
                let reason = failure.reason(limits);
                tracing::warn!(
                    plugin = %self.name,
                    message_id = %instance.store.data().call.id,
                    "plugin call failed: {reason}"
                );
                // The instance is dropped here: nothing of it serves again.
                return match failure {
                    invoke::Failure::InvalidEmit(_) => Outcome::Fatal { reason },
                    _ => Outcome::retry(reason),
                };
            }
        };
        match &outcome {
            Outcome::Success { emitted } => {
                tracing::debug!(emitted = emitted.len(), "handled");
            }
            // The dispatcher logs every outcome once it is committed.
            Outcome::Retry { reason, .. } => tracing::debug!("handler asked to retry: {reason}"),
            Outcome::Fatal { reason } => tracing::debug!("handler failed fatally: {reason}"),
        }
        instance.served += 1;
        self.keep_warm(instance);
        outcome
    }

    /// A warm instance of this plugin version, if reuse is on and one is idle.
    fn take_warm(&self) -> Option<Instance> {
        if self.host.limits.instance_reuse <= 1 {
            return None;
        }
        let instance = self
            .warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()?;
        self.host.warm.fetch_sub(1, Ordering::AcqRel);
        Some(instance)
    }

    /// Keeps `instance` for another delivery if it may serve more and the
    /// host's warm budget allows; otherwise drops it.
    fn keep_warm(&self, instance: Instance) {
        let limits = &self.host.limits;
        if instance.served >= limits.instance_reuse {
            return;
        }
        let max = limits.max_warm_instances();
        let reserved = self
            .host
            .warm
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            self.warm
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(instance);
        }
    }
}

impl Drop for PluginInner {
    fn drop(&mut self) {
        let warm = self.warm.get_mut().unwrap_or_else(PoisonError::into_inner);
        let count = u32::try_from(warm.len()).unwrap_or(u32::MAX);
        self.host.warm.fetch_sub(count, Ordering::AcqRel);
    }
}

/// The dead-letter reason of a delivery that emitted past the chain limit.
fn chain_too_deep(depth: u32, max: u32) -> String {
    format!(
        "chain depth limit reached: this event is at depth {depth} (emitted by {depth} handlers \
         one after another) and plugins.max_chain_depth is {max}, so it may not emit more; \
         look for handlers that emit each other's events without end, or raise the limit"
    )
}

/// The event handed to the guest; `id` is the delivery's id as text.
fn to_event(delivery: Delivery, id: String) -> Event {
    Event {
        id,
        event_type: delivery.event_type,
        key: delivery.key,
        source: delivery.source,
        correlation_id: delivery.correlation_id,
        payload: delivery.payload,
        attempt: delivery.attempt,
        max_attempts: delivery.max_attempts,
        created_at_ms: u64::try_from(delivery.created_at_ms).unwrap_or(0),
    }
}

/// What `inspect` hands over for a file that passed every check.
pub(crate) struct Checked {
    pub(crate) pre: HandlerPre<StoreState>,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) event_types: Vec<String>,
    pub(crate) digest: String,
    pub(crate) from_cache: bool,
}

impl Plugin {
    pub(crate) fn new(host: &Arc<HostInner>, path: &Path, checked: Checked) -> Self {
        Self {
            inner: Arc::new(PluginInner {
                host: host.clone(),
                pre: checked.pre,
                name: checked.name.into(),
                version: checked.version,
                event_types: checked.event_types,
                digest: checked.digest,
                path: path.to_owned(),
                from_cache: checked.from_cache,
                warm: Mutex::new(Vec::new()),
                instantiations: AtomicU64::new(0),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatcher spawns deliveries on a multi-threaded runtime and
    /// shares hosts and plugins across tasks.
    #[allow(dead_code)]
    fn handles_are_send_and_sync(plugin: &Plugin, delivery: Delivery) {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>(_: &T) {}
        send(&plugin.handle(delivery));
        send_sync(plugin);
        send_sync(&plugin.inner.host);
    }
}
