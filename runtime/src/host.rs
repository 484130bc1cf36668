//! The long-lived host, assembled: the store (one handle for ingest, one
//! for the dispatcher), the wasm plugin host, the routing table kept in step
//! with the plugin folder, and the dispatcher. This is the library API for
//! embedding Mailroom in another program; `mailroom run` is a thin shell
//! around it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mailroom::config::{Config, Overrides};
//! use mailroom::host::Host;
//! use mailroom::message::NewMessage;
//!
//! let config = Config::load(&Overrides::default())?;
//! let host = Host::start(&config).await?;
//! host.enqueue(vec![NewMessage::new("order.created", br#"{"order_id":"o-1"}"#.to_vec())]).await?;
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::dispatcher::{Dispatcher, SHUTDOWN_STORE_BOUND};
use crate::http;
use crate::loader::Loader;
use crate::message::NewMessage;
use crate::metrics::Metrics;
use crate::plugin::{HostConfig, PluginError, PluginHost};
use crate::routing::Routes;
use crate::store::{CheckDepth, Durability, Enqueued, Store, StoreError, StoreHealth};
use crate::watcher::{self, FolderWatcher, WatchError};

/// How many worker threads the async runtime of a host on `store` should
/// have: one per core, less one with a SQLite store (at least one). SQLite calls
/// run on a thread of their own, and writes to one file are serial: under
/// load that thread keeps a core busy, and a worker for that core only
/// competes with it (docs/BENCHMARKS.md). PostgreSQL calls are async, on
/// the workers. `mailroom run` builds its runtime so; a program embedding
/// the host may too.
pub fn worker_threads(store: &crate::store::Location) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match store {
        crate::store::Location::Sqlite(_) => cores.saturating_sub(1).max(1),
        crate::store::Location::Postgres(_) => cores,
    }
}

/// How much longer than `dispatcher.shutdown_grace` [`Host::shutdown`] may
/// take, whatever the store is doing: HTTP requests in progress, the last
/// outcomes and releases, and the host's registry rows each get a fixed
/// share of it.
pub const SHUTDOWN_BOUND: Duration =
    Duration::from_secs(HTTP_STOP_BOUND.as_secs() + LAST_WORDS_BOUND.as_secs() + 2 * SHUTDOWN_STORE_BOUND.as_secs() + 1);

// README.md and examples/mailroom.toml promise an exit within the grace
// period plus at most 11 s: this, and half a second for blocked store calls.
const _: () = assert!(SHUTDOWN_BOUND.as_secs() == 10);

/// How long HTTP requests in progress get to finish at shutdown.
const HTTP_STOP_BOUND: Duration = Duration::from_secs(2);

/// How long removing this host's registry rows may take at shutdown.
const LAST_WORDS_BOUND: Duration = Duration::from_secs(1);

/// The start-up check (SQLite `quick_check`) runs on stores up to this
/// size; it reads the whole file once (about a second per few hundred MiB).
/// Larger stores are checked with `mailroom check` when convenient.
pub const START_CHECK_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Runs the quick check of an SQLite store small enough for it, and logs
/// what it found and what it cost. A damaged store stops the start.
async fn check_at_start(store: &Store) -> Result<(), StoreError> {
    let Store::Sqlite(sqlite) = store else {
        return Ok(());
    };
    let size = std::fs::metadata(sqlite.path()).map_or(0, |m| m.len());
    if size > START_CHECK_MAX_BYTES {
        tracing::info!(
            bytes = size,
            "the start-up store check was skipped (the store is over {} MiB): run `mailroom check` when convenient",
            START_CHECK_MAX_BYTES / (1024 * 1024)
        );
        return Ok(());
    }
    let report = store.check(CheckDepth::Quick).await?;
    if report.is_sound() {
        tracing::info!(
            bytes = size,
            took_ms = report.took_ms,
            "store check passed (SQLite quick_check)"
        );
        return Ok(());
    }
    Err(StoreError::Corrupt {
        store: report.store,
        reason: report.problems.join("; "),
    })
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The wasm engine could not be set up.
    #[error(transparent)]
    Plugins(#[from] PluginError),
    /// The plugin folder could not be created.
    #[error("cannot create the plugin folder {path}: {source}")]
    PluginDir {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The plugin folder is missing and so is the folder that would hold
    /// it: most likely a mistyped path.
    #[error(
        "the plugin folder {path} does not exist, nor does {parent}: check plugins.dir (or --plugins), or create the folder"
    )]
    PluginDirMissing {
        /// The configured folder.
        path: PathBuf,
        /// Its missing parent.
        parent: PathBuf,
    },
    /// The plugin folder's path names something that is not a folder.
    #[error(
        "the plugin folder {path} is not a folder: point plugins.dir (or --plugins) at a folder"
    )]
    PluginDirNotAFolder {
        /// The configured path.
        path: PathBuf,
    },
    /// The plugin folder could not be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The HTTP API could not listen on its address.
    #[error("cannot serve HTTP on {addr} (http.listen): {source}")]
    Http {
        /// The configured address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The plugin folder as an absolute path, created if it is missing but its
/// parent exists (a fresh working directory's `plugins`); a missing parent
/// is refused rather than created, since it is more likely a typo.
///
/// Absolute, so that the paths the start-up scan routes by and the paths the
/// watcher reports (it makes a relative folder absolute) name a file the same
/// way: otherwise the first change to a file found at start-up is refused as
/// a second plugin for its types.
fn prepare_plugin_dir(dir: &std::path::Path) -> Result<PathBuf, HostError> {
    let io = |source| HostError::PluginDir {
        path: dir.to_owned(),
        source,
    };
    let absolute = std::path::absolute(dir).map_err(io)?;
    match std::fs::metadata(&absolute) {
        Ok(meta) if meta.is_dir() => return Ok(absolute),
        Ok(_) => {
            return Err(HostError::PluginDirNotAFolder {
                path: dir.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let parent = absolute.parent().unwrap_or(&absolute);
    if !parent.is_dir() {
        return Err(HostError::PluginDirMissing {
            path: dir.to_owned(),
            parent: parent.to_owned(),
        });
    }
    std::fs::create_dir(&absolute).map_err(io)?;
    tracing::info!(dir = %absolute.display(), "created the plugin folder");
    Ok(absolute)
}

/// A running host. Dropping it without [`Host::shutdown`] stops it abruptly
/// (in-flight messages come back when their leases expire).
#[derive(Debug)]
pub struct Host {
    ingest: Store,
    store: Store,
    routes: Routes,
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
    folder: JoinHandle<()>,
    _watcher: FolderWatcher,
    plugin_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// False once the plugin folder's events stop being applied.
    watching: Arc<AtomicBool>,
    http: Option<http::Server>,
    plugin_host: PluginHost,
}

impl Host {
    /// Opens the store (creating it if needed), reclaims leases left by a
    /// previous run, loads every plugin in the folder (creating the folder if
    /// needed), starts watching it, and starts the dispatcher.
    ///
    /// Must be called inside a multi-threaded tokio runtime.
    ///
    /// # Errors
    ///
    /// [`HostError`] naming what could not be set up.
    pub async fn start(config: &Config) -> Result<Self, HostError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Host::start`], reading time from `clock`.
    ///
    /// # Errors
    ///
    /// As [`Host::start`].
    pub async fn start_with_clock(config: &Config, clock: SharedClock) -> Result<Self, HostError> {
        // Bound first, so a taken port fails the start before any work is done.
        let listener = match config.http.listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| HostError::Http { addr, source })?,
            ),
            None => None,
        };
        // Checked before the store is touched: a mistyped folder must not
        // leave a store created or migrated behind it.
        let plugin_dir = prepare_plugin_dir(&config.plugins.dir)?;
        let metrics = Arc::new(Metrics::new().with_clock(clock.clone()));
        let location = config.store_location();
        // One health for both handles: damage seen by the dispatcher stops
        // enqueues too, and `/readyz` and the metrics see every failure.
        let health = Arc::new(StoreHealth::default());
        metrics.watch_store(health.clone());
        let open = |durability: Durability| {
            let mut options = config.open_options(true);
            options.durability = durability;
            options.clock = clock.clone();
            options.health = health.clone();
            let location = location.clone();
            async move { Store::open(&location, &options).await }
        };
        // Enqueues are acknowledged only once synced (per the configured
        // durability). Claims, acks and failures need no sync: losing them to
        // a power cut means a redelivery, never a loss, because an ack and
        // the events it emits commit together.
        let ingest = open(config.store.durability).await?;
        let store = open(Durability::Fast).await?;
        check_at_start(&store).await?;
        store.register_host().await?;
        let reclaimed = store.reclaim().await?;
        metrics.reclaimed(&reclaimed);
        if reclaimed.requeued + reclaimed.dead > 0 {
            tracing::warn!(
                requeued = reclaimed.requeued,
                dead = reclaimed.dead,
                "reclaimed messages left in flight by a previous run"
            );
        }

        let plugin_host = {
            let host_config = HostConfig {
                limits: config.sandbox_limits(),
                cache_dir: Some(config.cache_dir()),
                ..HostConfig::default()
            };
            let access = config.plugin_access();
            let observer: Arc<dyn crate::plugin::OutboundObserver> = metrics.clone();
            tokio::task::spawn_blocking(move || {
                PluginHost::with_access(host_config, access, Some(observer))
            })
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?
        };
        let routes = Routes::new();
        let wake = Arc::new(Notify::new());
        let loader = Loader::new(
            plugin_host.clone(),
            routes.clone(),
            store.clone(),
            plugin_dir.clone(),
            wake.clone(),
        )
        .with_metrics(metrics.clone());

        // Watch before the first scan, so a file landing in between is not missed.
        let (events_tx, events) = mpsc::unbounded_channel();
        let watcher = watcher::watch(&plugin_dir, watcher::DEFAULT_DEBOUNCE, events_tx)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let commits = store.commit_signal().await;
        let dispatcher = Dispatcher {
            store: store.clone(),
            routes: routes.clone(),
            settings: config.dispatcher.clone(),
            clock,
            wake: wake.clone(),
            commits,
            shutdown: shutdown_rx,
            delivery_timeout: config.plugins.timeout,
            metrics: metrics.clone(),
            max_emit_bytes: config.plugins.max_emit_bytes,
            type_slots: crate::dispatcher::TypeSlots::from_policies(&config.policies()),
        };
        let dispatcher = tokio::spawn(dispatcher.run());
        // The dispatcher runs while the folder is scanned: a plugin serves as
        // soon as it loads, whatever others still compile.
        loader.scan().await;
        let watching = Arc::new(AtomicBool::new(true));
        let folder = tokio::spawn({
            let watching = watching.clone();
            async move {
                loader.run(events).await;
                watching.store(false, Ordering::Relaxed);
            }
        });
        tracing::info!(
            store = %location,
            plugins = %plugin_dir.display(),
            event_types = ?routes.event_types(),
            concurrency = config.dispatcher.concurrency,
            "mailroom host running"
        );
        let mut host = Self {
            ingest,
            store,
            routes,
            wake,
            shutdown,
            dispatcher,
            folder,
            _watcher: watcher,
            plugin_dir,
            metrics,
            watching,
            http: None,
            plugin_host,
        };
        if let (Some(listener), Some(addr)) = (listener, config.http.listen) {
            let state = http::ApiState::for_host(&host, http::Settings::from_config(config));
            host.http = Some(
                http::Server::start(listener, state)
                    .map_err(|source| HostError::Http { addr, source })?,
            );
        }
        Ok(host)
    }

    /// Enqueues messages in one durable transaction and wakes the dispatcher.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] / [`StoreError::InvalidInBatch`] (nothing
    /// stored), or a store failure.
    pub async fn enqueue(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>, StoreError> {
        let counted = messages.clone();
        let enqueued = self.ingest.enqueue_batch(messages).await?;
        self.metrics.enqueued(&counted, &enqueued);
        self.wake.notify_one();
        Ok(enqueued)
    }

    /// The producer connection (configured durability), for other ways in.
    pub fn ingest(&self) -> &Store {
        &self.ingest
    }

    /// The dispatcher's connection (claims, acks, the plugin registry).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wakes the dispatcher (after enqueueing through [`Host::ingest`]).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The routing table: which plugin serves each event type.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The watched plugin folder.
    pub fn plugin_dir(&self) -> &std::path::Path {
        &self.plugin_dir
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replaces what each plugin may reach and read with `config`'s
    /// `[plugin.<name>]` tables (`mailroom run` does it on SIGHUP): from the
    /// next delivery on, without reloading any plugin.
    pub fn set_plugin_access(&self, config: &Config) {
        self.plugin_host.set_access(config.plugin_access());
    }

    /// The address the HTTP API serves on, when `http.listen` is set (with
    /// the real port when it asked for port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(http::Server::local_addr)
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn readiness(&self) -> http::Readiness {
        http::Readiness {
            plugin_dir: self.plugin_dir.clone(),
            watching: self.watching.clone(),
        }
    }

    /// Stops the HTTP API (requests in progress finish), stops claiming,
    /// lets running deliveries finish within the grace period, commits their
    /// outcomes, releases what did not finish, and stops watching the plugin
    /// folder.
    ///
    /// Bounded whatever the store is doing: it returns within
    /// `dispatcher.shutdown_grace` plus [`SHUTDOWN_BOUND`]. Store work that
    /// does not finish by then is left behind: a lease not released is
    /// reclaimed later, costing its message an attempt, never the message.
    pub async fn shutdown(mut self) {
        // HTTP first: requests in progress finish (an enqueue is answered)
        // while the dispatcher still runs.
        if let Some(server) = self.http.take()
            && tokio::time::timeout(HTTP_STOP_BOUND, server.stop())
                .await
                .is_err()
        {
            tracing::warn!("HTTP requests still running after {HTTP_STOP_BOUND:?} were cut off");
        }
        let _ = self.shutdown.send(true);
        if let Err(e) = self.dispatcher.await {
            tracing::error!("the dispatcher stopped abnormally: {e}");
        }
        self.folder.abort();
        // Wait until the aborted task has dropped its loader (its store
        // handle), and let other processes stop showing this host at once;
        // neither may hold the stop up.
        let _ = tokio::time::timeout(LAST_WORDS_BOUND, async {
            let _ = self.folder.await;
            self.store.close().await;
        })
        .await;
    }
}
