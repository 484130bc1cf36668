//! The process-wide part of the wasm host: the `Engine` (with its instance
//! pool), the `Linker` with WASI, wasi-http and the host's imports, the epoch
//! ticker that enforces time limits, the compiled-code cache, and what each
//! plugin was opened by its operator.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::access::{AccessByPlugin, AccessTable};
use super::bindings::Handler;
use super::cache::CodeCache;
use super::compile::Compiler;
use super::epoch::EpochTicker;
use super::error::PluginError;
use super::inspect;
use super::loaded::Plugin;
use super::outbound::OutboundObserver;
use super::sandbox::{self, SandboxLimits};
use super::store::StoreState;

/// How a [`PluginHost`] is set up.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// The limits every plugin call runs under.
    pub limits: SandboxLimits,
    /// Where compiled plugins are cached, so a restart does not recompile.
    /// Keep it outside the plugin folder, writable only by the host: the host
    /// loads code from it. `None` compiles every plugin on every load.
    pub cache_dir: Option<PathBuf>,
    /// Where plugins are compiled: by default in a child process within the
    /// compile budget of `limits` when this is the `mailroom` binary, else
    /// in this process.
    pub compiler: Compiler,
}

/// The wasm host: loads plugins and runs them in the sandbox. Cheap to clone;
/// clones share the engine, linker and instance pool.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("limits", &self.inner.limits)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// What every plugin of a host shares.
pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) limits: SandboxLimits,
    pub(crate) cache: Option<CodeCache>,
    pub(crate) compiler: Compiler,
    /// Instances running at once (deliveries and `info` calls): the pool is
    /// sized for this many, and a call waits for a permit before it starts.
    pub(crate) running: Arc<Semaphore>,
    /// Warm instances kept for reuse across all plugins, at most
    /// `limits.max_warm_instances()`.
    pub(crate) warm: AtomicU32,
    /// Advances the epoch while calls run: hold [`EpochTicker::call`]
    /// around every call into wasm.
    pub(crate) ticker: EpochTicker,
    /// Every plugin's access; each delivery reads its plugin's entry.
    pub(crate) access: AccessTable,
    pub(crate) outbound_observer: Option<Arc<dyn OutboundObserver>>,
}

impl PluginHost {
    /// Sets up the engine (with the pooling allocator, or on-demand
    /// allocation if the pool cannot reserve its address space), the linker
    /// and the epoch ticker, and creates the cache directory.
    ///
    /// # Errors
    ///
    /// [`PluginError::Engine`] if wasmtime or the epoch ticker thread cannot
    /// be set up,
    /// [`PluginError::CacheDir`] if the cache directory cannot be created.
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        Self::with_access(config, AccessByPlugin::new(), None)
    }

    /// As [`PluginHost::new`], with what each plugin may reach and read
    /// (`[plugin.<name>]`; changed later with [`PluginHost::set_access`]) and
    /// where outbound requests are counted.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::new`].
    pub fn with_access(
        config: HostConfig,
        access: AccessByPlugin,
        outbound_observer: Option<Arc<dyn OutboundObserver>>,
    ) -> Result<Self, PluginError> {
        let HostConfig {
            limits,
            cache_dir,
            compiler,
        } = config;
        let engine = new_engine(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        // Linked for every plugin, used only by those that import it; every
        // request goes through the plugin's allow-list (`outbound`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
        Handler::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)
            .map_err(engine_error)?;
        let cache = match cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| PluginError::CacheDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(CodeCache::new(dir, &engine))
            }
            None => None,
        };
        let permits = usize::try_from(limits.max_instances.max(1)).unwrap_or(usize::MAX);
        Ok(Self {
            inner: Arc::new(HostInner {
                ticker: EpochTicker::start(&engine)?,
                engine,
                linker,
                limits,
                cache,
                compiler,
                running: Arc::new(Semaphore::new(permits)),
                warm: AtomicU32::new(0),
                access: AccessTable::new(access),
                outbound_observer,
            }),
        })
    }

    /// Loads a plugin: reads the file (only a regular file, within
    /// `limits.max_file_bytes`), checks it is a component, compiles it (or
    /// loads it from the cache; see [`HostConfig::compiler`]), checks it against the `handler` world,
    /// pre-instantiates it and asks it for its info (under the same limits
    /// as a delivery).
    ///
    /// Blocking: call it from `tokio::task::spawn_blocking` (or outside an
    /// async runtime), never directly from async code.
    ///
    /// # Errors
    ///
    /// A [`PluginError`] variant per way a file can be wrong: unreadable,
    /// empty, not wasm, a core module, not compilable, the wrong world, an
    /// `info` call that fails, or info that breaks the rules;
    /// [`PluginError::Several`] when more than one is wrong.
    pub fn load(&self, path: &Path) -> Result<Plugin, PluginError> {
        self.check(path)
            .map_err(|problems| one_error(path, problems))
    }

    /// Does what [`load`](Self::load) does without blocking: the file is
    /// read and checked on blocking threads and compiled in a child process
    /// (with [`Compiler::Child`]), so dropping the future (a host shutting
    /// down) stops the load at once and kills the compilation.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub async fn load_async(&self, path: &Path) -> Result<Plugin, PluginError> {
        inspect::inspect_async(&self.inner, path)
            .await
            .map_err(|problems| one_error(path, problems))
    }

    /// Does what [`load`](Self::load) does, but on a file with problems
    /// returns every problem found rather than one: the imports the host does
    /// not offer, the exports, and each broken rule of the plugin's info.
    /// A file that is not a component, or does not compile, has one problem.
    ///
    /// Blocking, like `load`.
    ///
    /// # Errors
    ///
    /// Every problem found, at least one, in the order the host checks them.
    pub fn check(&self, path: &Path) -> Result<Plugin, Vec<PluginError>> {
        inspect::inspect(&self.inner, path)
    }

    /// Replaces every plugin's access (`[plugin.<name>]`): from the next
    /// delivery on, each plugin reaches and reads what its new entry says.
    /// Running deliveries keep what they started with.
    pub fn set_access(&self, access: AccessByPlugin) {
        self.inner.access.replace(access);
    }

    /// The limits plugin calls run under.
    pub fn limits(&self) -> &SandboxLimits {
        &self.inner.limits
    }
}

/// The one error for a file: its problem, or [`PluginError::Several`].
fn one_error(path: &Path, mut problems: Vec<PluginError>) -> PluginError {
    if problems.len() == 1 {
        problems.remove(0)
    } else {
        PluginError::Several {
            path: path.to_owned(),
            problems,
        }
    }
}

fn engine_error(e: wasmtime::Error) -> PluginError {
    PluginError::Engine {
        reason: format!("{e:#}"),
    }
}

/// The engine, pooled if the pool can reserve its address space (it may not
/// under a tight `ulimit -v` or on a small 32-bit address space).
fn new_engine(limits: &SandboxLimits) -> Result<Engine, PluginError> {
    match Engine::new(&sandbox::engine_config(limits, true)) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(
                "the pooling instance allocator could not be set up ({e:#}); using on-demand allocation: instantiation is slower but limits are the same"
            );
            Engine::new(&sandbox::engine_config(limits, false)).map_err(engine_error)
        }
    }
}
