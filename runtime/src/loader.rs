//! Keeps the routing table in step with the plugin folder: loads new files,
//! replaces changed ones once the new version validates, unloads removed
//! ones, and records each outcome in the store so other processes see what
//! this host runs. A file that fails to load changes nothing but its own
//! "rejected" record: the last good version of it keeps serving. Several
//! files load at once; a file refused because another serves its event
//! types is tried again once that other plugin is unloaded or replaced.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

use crate::plugin::{PluginHost, file_digest, read_plugin_file};
use crate::store::{Store, StoreError};
use crate::routing::{Routed, Routes};
use crate::watcher::{FolderEvent, is_plugin_file};

/// Loads the plugin folder into the routing table.
#[derive(Debug, Clone)]
pub struct Loader {
    host: PluginHost,
    routes: Routes,
    store: Store,
    dir: PathBuf,
    /// Poked when routes change, so the dispatcher claims for new types at once.
    routes_changed: std::sync::Arc<Notify>,
    /// Counts loads and rejections.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Files refused because another file serves one of their event types:
    /// tried again whenever a plugin is unloaded or replaced.
    conflicted: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl Loader {
    /// A loader for `dir`.
    pub fn new(
        host: PluginHost,
        routes: Routes,
        store: Store,
        dir: PathBuf,
        routes_changed: std::sync::Arc<Notify>,
    ) -> Self {
        let metrics = std::sync::Arc::default();
        Self {
            host,
            routes,
            store,
            dir,
            routes_changed,
            metrics,
            conflicted: Arc::default(),
        }
    }

    /// Counts loads and rejections in `metrics` (by default, in metrics of
    /// its own).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Applies folder events from `events` until the channel closes and what
    /// they started is done: up to
    /// [`MAX_CONCURRENT_LOADS`] files load at once, so a plugin that is slow
    /// to compile never holds up another; events for one file apply in the
    /// order they came (a replacement then a removal ends removed). Dropping
    /// the future (the host shutting down) stops every load at once.
    pub async fn run(&self, mut events: UnboundedReceiver<FolderEvent>) {
        let mut work = Work::default();
        let mut open = true;
        while open || !work.running.is_empty() {
            tokio::select! {
                event = events.recv(), if open => match event {
                    Some(event) => self.submit(&mut work, event),
                    None => open = false,
                },
                Some(done) = work.running.join_next(), if !work.running.is_empty() => {
                    self.finished(&mut work, done);
                }
            }
        }
    }

    /// Reacts to one folder event, and to what it causes (a refused file
    /// tried again once the file it conflicted with is gone).
    pub async fn apply(&self, event: FolderEvent) {
        let mut work = Work::default();
        self.submit(&mut work, event);
        while let Some(done) = work.running.join_next().await {
            self.finished(&mut work, done);
        }
    }

    /// Brings the table in line with the whole folder: loads every plugin
    /// file not yet loaded (or changed), unloads what is gone. Run at start-up
    /// and whenever the watcher may have lost events.
    pub async fn scan(&self) {
        self.apply(FolderEvent::Rescan).await;
    }

    /// Starts `event`, or queues it behind the work already running for its
    /// file or behind the limit on loads at once.
    fn submit(&self, work: &mut Work, event: FolderEvent) {
        let (path, removed) = match event {
            FolderEvent::Changed(path) => (path, false),
            FolderEvent::Removed(path) => (path, true),
            FolderEvent::Rescan => {
                let files = match list_plugin_files(&self.dir) {
                    Ok(files) => files,
                    Err(e) => {
                        tracing::error!(dir = %self.dir.display(), "cannot list the plugin folder: {e}");
                        return;
                    }
                };
                for plugin in self.routes.plugins() {
                    if !files.contains(&plugin.path().to_owned()) {
                        self.submit(work, FolderEvent::Removed(plugin.path().to_owned()));
                    }
                }
                for file in files {
                    self.submit(work, FolderEvent::Changed(file));
                }
                return;
            }
        };
        // The latest event for a file says what to do: a load reads the file
        // as it is then, so an earlier event still waiting adds nothing.
        work.next.insert(path.clone(), removed);
        if !work.busy.contains(&path) && !work.queue.contains(&path) {
            work.queue.push_back(path);
        }
        self.start_queued(work);
    }

    fn start_queued(&self, work: &mut Work) {
        while work.running.len() < MAX_CONCURRENT_LOADS {
            let Some(index) = work.queue.iter().position(|p| !work.busy.contains(p)) else {
                return;
            };
            let path = work.queue.remove(index).expect("index is in range");
            let Some(removed) = work.next.remove(&path) else {
                continue;
            };
            work.busy.insert(path.clone());
            let loader = self.clone();
            work.running.spawn(async move {
                let freed = if removed {
                    loader.unload(&path).await
                } else {
                    loader.load(&path).await
                };
                (path, freed)
            });
        }
    }

    /// A load or unload is done: starts what waited for it, and tries the
    /// files refused for a conflict again when event types were freed.
    fn finished(&self, work: &mut Work, done: Result<(PathBuf, bool), tokio::task::JoinError>) {
        let (path, freed) = match done {
            Ok(done) => done,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Cancelled: only when the host stops.
            Err(_) => return,
        };
        work.busy.remove(&path);
        if work.next.contains_key(&path) && !work.queue.contains(&path) {
            work.queue.push_back(path);
        }
        if freed {
            let refused: Vec<PathBuf> = self.conflicted().iter().cloned().collect();
            for path in refused {
                self.submit(work, FolderEvent::Changed(path));
            }
        }
        self.start_queued(work);
    }

    fn conflicted(&self) -> std::sync::MutexGuard<'_, BTreeSet<PathBuf>> {
        self.conflicted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads (or replaces) the plugin at `path`; returns whether event types
    /// may have been freed (a replacement may drop some).
    async fn load(&self, path: &Path) -> bool {
        let current = self.routes.at(path).map(|p| p.digest().to_owned());
        if let Some(current) = current {
            // An unchanged file (a touch, a rescan) is not reloaded.
            let owned = path.to_owned();
            let max = self.host.limits().max_file_bytes;
            let unchanged = tokio::task::spawn_blocking(move || {
                read_plugin_file(&owned, max).is_ok_and(|bytes| file_digest(&bytes) == current)
            })
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
            if unchanged {
                // Nothing loads; but a broken version written over it in
                // between was recorded as rejected, and recording the serving
                // version clears that.
                if let Some(plugin) = self.routes.at(path) {
                    self.record_loaded(&plugin, path.display().to_string()).await;
                }
                return false;
            }
        }
        let loaded = self.host.load_async(path).await;
        if loaded.is_err() && path.symlink_metadata().is_err() {
            // Gone since it was reported (renamed or deleted at once): a
            // removal, not a rejection. A dangling link is still there and
            // is rejected with its reason.
            return self.unload(path).await;
        }
        let path_text = path.display().to_string();
        let mut conflict = false;
        let outcome = match loaded {
            Err(e) => Err(e.to_string()),
            Ok(plugin) => match self.routes.insert(plugin.clone()) {
                Ok(routed) => Ok((plugin, routed)),
                Err(e) => {
                    conflict = true;
                    Err(e.to_string())
                }
            },
        };
        if conflict {
            self.conflicted().insert(path.to_owned());
        } else {
            self.conflicted().remove(path);
        }
        match outcome {
            Ok((plugin, routed)) => {
                self.metrics.plugin_loaded(plugin.name());
                let replaced = matches!(routed, Routed::Replaced { .. });
                match routed {
                    Routed::Added => tracing::info!(
                        plugin = plugin.name(), version = plugin.version(), path = %path_text,
                        event_types = ?plugin.event_types(), digest = plugin.digest(), "plugin serving"
                    ),
                    Routed::Replaced { previous_version } => tracing::info!(
                        plugin = plugin.name(), version = plugin.version(), previous_version, path = %path_text,
                        event_types = ?plugin.event_types(), digest = plugin.digest(), "plugin replaced"
                    ),
                }
                self.record_loaded(&plugin, path_text).await;
                self.routes_changed.notify_one();
                replaced
            }
            Err(reason) => {
                let keeps = self
                    .routes
                    .at(path)
                    .map(|p| format!("; version {} keeps serving", p.version()))
                    .unwrap_or_default();
                tracing::error!(path = %path_text, "plugin rejected: {reason}{keeps}");
                self.metrics.plugin_rejected();
                self.record(self.store.record_plugin_rejected(path_text, reason))
                    .await;
                false
            }
        }
    }

    /// Unloads the plugin at `path`; returns whether one was loaded (its
    /// event types are free now).
    async fn unload(&self, path: &Path) -> bool {
        let path_text = path.display().to_string();
        self.conflicted().remove(path);
        let removed = self.routes.remove(path);
        if let Some(plugin) = &removed {
            tracing::info!(
                plugin = plugin.name(), version = plugin.version(), path = %path_text,
                "plugin unloaded: messages of its event types wait for a handler"
            );
        }
        self.record(self.store.forget_plugin(path_text)).await;
        removed.is_some()
    }

    /// Records `plugin` as loaded from `path_text` (clearing a rejection).
    async fn record_loaded(&self, plugin: &crate::plugin::Plugin, path_text: String) {
        self.record(self.store.record_plugin_loaded(
            path_text,
            plugin.name().to_owned(),
            plugin.version().to_owned(),
            plugin.event_types().to_vec(),
            plugin.digest().to_owned(),
        ))
        .await;
    }

    async fn record(&self, write: impl Future<Output = Result<(), StoreError>>) {
        if let Err(e) = write.await {
            tracing::warn!("could not record the plugin registry in the store: {e}");
        }
    }
}

/// Loads running at once. Each may hold a compiling child process (within
/// `plugins.compile_memory_mb`), so this also bounds compile memory.
pub const MAX_CONCURRENT_LOADS: usize = 4;

/// What the loader is doing: files loading, and events waiting.
#[derive(Default)]
struct Work {
    /// Loads and unloads running; each yields its file and whether it freed
    /// event types.
    running: JoinSet<(PathBuf, bool)>,
    /// Files with a load or unload running.
    busy: BTreeSet<PathBuf>,
    /// Files with an event waiting, in arrival order.
    queue: VecDeque<PathBuf>,
    /// The latest waiting event of each file: removed or not.
    next: BTreeMap<PathBuf, bool>,
}

/// Every entry directly in `dir` with a plugin file's name, sorted: not only
/// regular files, so that a FIFO or a device named `x.wasm` is rejected with
/// its reason rather than ignored (it is never read).
fn list_plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_plugin_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
