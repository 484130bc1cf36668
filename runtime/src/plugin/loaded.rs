//! A loaded plugin version: the file checked, compiled (or taken from the
//! cache), checked against the `handler` world, pre-instantiated, and its
//! info validated. Then one [`Plugin::handle`] per delivery.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use tracing::Instrument;
use wasmtime::component::Component;

use crate::message::validate_event_type;

use super::bindings::{Event, HandlerError, HandlerPre, PluginInfo};
use super::delivery::{Delivery, Outcome, truncate_reason};
use super::error::PluginError;
use super::host::HostInner;
use super::invoke::{self, Instance};
use super::sandbox::{MAX_INFO_FIELD_BYTES, MAX_REASON_BYTES};
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
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let span = tracing::info_span!(
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
        let event = to_event(delivery);
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
                tracing::warn!("plugin call failed: {reason}");
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

fn to_event(delivery: Delivery) -> Event {
    Event {
        id: delivery.id.to_string(),
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

/// Loads the plugin at `path`; see [`PluginHost::load`](super::PluginHost::load).
pub(crate) fn load(host: &Arc<HostInner>, path: &Path) -> Result<Plugin, PluginError> {
    let span = tracing::info_span!("plugin.load", path = %path.display());
    let _entered = span.enter();
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    check_header(path, &bytes)?;
    let sha256_hex = hex(&Sha256::digest(&bytes));
    let (component, from_cache) = compile(host, path, &bytes, &sha256_hex)?;
    drop(bytes);
    let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    let instance_pre = host
        .linker
        .instantiate_pre(&component)
        .map_err(wrong_world)?;
    let pre = HandlerPre::new(instance_pre).map_err(wrong_world)?;
    let info = wasmtime_wasi::runtime::in_tokio(call_info(host, &pre, path))?;
    let (name, version, event_types) = validate_info(path, info)?;
    // The loader logs, at info, whether the plugin was routed.
    tracing::debug!(
        plugin = %name,
        version = %version,
        event_types = ?event_types,
        from_cache,
        "plugin loaded"
    );
    Ok(Plugin {
        inner: Arc::new(PluginInner {
            host: host.clone(),
            pre,
            name: name.into(),
            version,
            event_types,
            digest: digest_label(&sha256_hex),
            path: path.to_owned(),
            from_cache,
            warm: Mutex::new(Vec::new()),
            instantiations: AtomicU64::new(0),
        }),
    })
}

/// Rejects what is plainly not a component before the compiler sees it, so
/// the commonest mistakes get the clearest messages.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    // The version field of a core module; a component has 0x0d 0x00 0x01 0x00.
    const CORE_MODULE_VERSION: &[u8] = &[1, 0, 0, 0];
    if bytes.is_empty() {
        return Err(PluginError::Empty {
            path: path.to_owned(),
        });
    }
    if !bytes.starts_with(MAGIC) {
        return Err(PluginError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes.get(4..8) == Some(CORE_MODULE_VERSION) {
        return Err(PluginError::NotAComponent {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The compiled component, from the cache when it has it; returns whether
/// it came from the cache.
fn compile(
    host: &HostInner,
    path: &Path,
    bytes: &[u8],
    sha256_hex: &str,
) -> Result<(Component, bool), PluginError> {
    if let Some(component) = host
        .cache
        .as_ref()
        .and_then(|cache| cache.get(&host.engine, sha256_hex))
    {
        return Ok((component, true));
    }
    let started = std::time::Instant::now();
    let component = Component::new(&host.engine, bytes).map_err(|e| PluginError::Compile {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })?;
    tracing::debug!(elapsed = ?started.elapsed(), "compiled");
    if let Some(cache) = &host.cache {
        cache.put(&component, sha256_hex);
    }
    Ok((component, false))
}

/// Instantiates the plugin and calls its `info`, under the delivery limits.
async fn call_info(
    host: &HostInner,
    pre: &HandlerPre<StoreState>,
    path: &Path,
) -> Result<PluginInfo, PluginError> {
    let limits = &host.limits;
    let Ok(_permit) = host.running.clone().acquire_owned().await else {
        return Err(PluginError::Engine {
            reason: "the plugin host is shutting down".into(),
        });
    };
    let _ticking = host.ticker.call();
    // The plugin has no name yet: its output during `info` is tagged with
    // the file name.
    let label: Arc<str> = path
        .file_name()
        .map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
        .into();
    let mut instance = Instance::new(store::new_store(&host.engine, label, limits, None));
    // Nothing is opened to the `info` call: the plugin has no name yet.
    store::begin_call(&mut instance.store, "info", limits, Default::default());
    let result = invoke::run(pre, &mut instance, limits, |handler, store| {
        Box::pin(async move { handler.mailroom_plugin_plugin().call_info(store).await })
    })
    .await;
    instance.store.data().output.finish();
    result.map_err(|failure| match failure {
        invoke::Failure::Instantiate(reason) => PluginError::Instantiate {
            path: path.to_owned(),
            reason,
        },
        other => PluginError::InfoTrapped {
            path: path.to_owned(),
            reason: other.reason(limits),
        },
    })
}

/// Checks what `info` returned: a name, a version, and at least one valid
/// event type (duplicates are dropped).
fn validate_info(
    path: &Path,
    info: PluginInfo,
) -> Result<(String, String, Vec<String>), PluginError> {
    let invalid = |reason: String| PluginError::InvalidInfo {
        path: path.to_owned(),
        reason,
    };
    let name = info.name.trim();
    if name.is_empty() {
        return Err(invalid("its name is empty".into()));
    }
    for (field, value) in [("name", name), ("version", info.version.as_str())] {
        if value.len() > MAX_INFO_FIELD_BYTES {
            return Err(invalid(format!(
                "its {field} is {} bytes long, over the {MAX_INFO_FIELD_BYTES}-byte limit",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(format!("its {field} has a control character")));
        }
    }
    if info.event_types.is_empty() {
        return Err(invalid(
            "it names no event types: it must handle at least one".into(),
        ));
    }
    let mut event_types: Vec<String> = Vec::with_capacity(info.event_types.len());
    for event_type in info.event_types {
        validate_event_type(&event_type)
            .map_err(|e| invalid(format!("invalid event type: {e}")))?;
        if !event_types.contains(&event_type) {
            event_types.push(event_type);
        }
    }
    Ok((name.to_owned(), info.version, event_types))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The digest of a plugin file's bytes as it is shown and stored:
/// `sha256:<hex>`. The same file always has the same digest.
pub fn file_digest(bytes: &[u8]) -> String {
    digest_label(&hex(&Sha256::digest(bytes)))
}

fn digest_label(sha256_hex: &str) -> String {
    format!("sha256:{sha256_hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, event_types: &[&str]) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: "1.0.0".into(),
            event_types: event_types.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn info_rules() {
        let path = Path::new("p.wasm");
        let (name, _, types) =
            validate_info(path, info(" shop ", &["a.b", "a.b", "c"])).expect("valid");
        assert_eq!(name, "shop");
        assert_eq!(types, ["a.b", "c"]);
        for (bad, words) in [
            (info("", &["a"]), "name is empty"),
            (info("x", &[]), "no event types"),
            (info("x", &["ok", "not ok"]), "invalid event type"),
        ] {
            let err = validate_info(path, bad).expect_err("invalid").to_string();
            assert!(err.contains(words), "{err}");
            assert!(err.contains("p.wasm"), "{err}");
        }
    }

    #[test]
    fn headers() {
        let path = Path::new("p.wasm");
        assert!(matches!(
            check_header(path, b""),
            Err(PluginError::Empty { .. })
        ));
        assert!(matches!(
            check_header(path, b"hello"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(path, b"\0asm\x01\0\0\0"),
            Err(PluginError::NotAComponent { .. })
        ));
        assert!(check_header(path, b"\0asm\x0d\0\x01\0").is_ok());
    }

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

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
