//! Keeps the routing table in step with the plugin folder: loads new files,
//! replaces changed ones once the new version validates, unloads removed
//! ones, and records each outcome in the store so other processes see what
//! this host runs. A file that fails to load changes nothing but its own
//! "rejected" record: the last good version of it keeps serving.

use std::path::{Path, PathBuf};

use tokio::sync::Notify;

use crate::store::{Store, StoreError};
use crate::plugin::{PluginHost, file_digest};
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
        }
    }

    /// Counts loads and rejections in `metrics` (by default, in metrics of
    /// its own).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reacts to one folder event.
    pub async fn apply(&self, event: FolderEvent) {
        match event {
            FolderEvent::Changed(path) => self.load(&path).await,
            FolderEvent::Removed(path) => self.unload(&path).await,
            FolderEvent::Rescan => self.scan().await,
        }
    }

    /// Brings the table in line with the whole folder: loads every plugin
    /// file not yet loaded (or changed), unloads what is gone. Run at start-up
    /// and whenever the watcher may have lost events.
    pub async fn scan(&self) {
        let files = match list_plugin_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), "cannot list the plugin folder: {e}");
                return;
            }
        };
        for plugin in self.routes.plugins() {
            if !files.contains(&plugin.path().to_owned()) {
                self.unload(plugin.path()).await;
            }
        }
        for file in files {
            self.load(&file).await;
        }
    }

    async fn load(&self, path: &Path) {
        let owned = path.to_owned();
        let host = self.host.clone();
        let current = self.routes.at(path).map(|p| p.digest().to_owned());
        let loaded = tokio::task::spawn_blocking(move || {
            // An unchanged file (a touch, a rescan) is not reloaded.
            if let Some(current) = current
                && std::fs::read(&owned).is_ok_and(|bytes| file_digest(&bytes) == current)
            {
                return None;
            }
            Some(host.load(&owned))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        let path_text = path.display().to_string();
        let outcome = match loaded {
            // The file is the version already serving, so nothing loads; but
            // a broken version written over it in between was recorded as
            // rejected, and recording the serving version clears that.
            None => {
                if let Some(plugin) = self.routes.at(path) {
                    self.record_loaded(&plugin, path_text).await;
                }
                return;
            }
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(plugin)) => match self.routes.insert(plugin.clone()) {
                Ok(routed) => Ok((plugin, routed)),
                Err(conflict) => Err(conflict.to_string()),
            },
        };
        match outcome {
            Ok((plugin, routed)) => {
                self.metrics.plugin_loaded(plugin.name());
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
            }
        }
    }

    async fn unload(&self, path: &Path) {
        let path_text = path.display().to_string();
        if let Some(plugin) = self.routes.remove(path) {
            tracing::info!(
                plugin = plugin.name(), version = plugin.version(), path = %path_text,
                "plugin unloaded: messages of its event types wait for a handler"
            );
        }
        self.record(self.store.forget_plugin(path_text)).await;
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

/// The plugin files directly in `dir`, sorted.
fn list_plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_plugin_file(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
