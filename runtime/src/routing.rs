//! The routing table: which loaded plugin handles each event type.
//!
//! One handler per event type. A plugin file that claims a type another file
//! already serves is refused and the first keeps serving. Replacing a file's
//! plugin swaps every one of its types at once; deliveries already running
//! hold their own handle on the old version and finish on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::plugin::Plugin;

/// Why a plugin could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event type `{event_type}` is already handled by plugin `{owner_name}` ({owner_path}); \
     plugin `{plugin_name}` ({plugin_path}) was refused: remove one of the two files, or \
     drop the event type from one of them"
)]
pub struct RouteConflict {
    /// The contested event type.
    pub event_type: String,
    /// The plugin that keeps serving it.
    pub owner_name: String,
    /// Its file.
    pub owner_path: PathBuf,
    /// The refused plugin.
    pub plugin_name: String,
    /// Its file.
    pub plugin_path: PathBuf,
}

/// What routing a plugin changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A new file now serves its types.
    Added,
    /// The file's previous version was replaced.
    Replaced {
        /// The version that stopped serving.
        previous_version: String,
    },
}

#[derive(Debug, Default)]
struct Table {
    by_path: BTreeMap<PathBuf, Plugin>,
    by_event_type: BTreeMap<String, PathBuf>,
}

/// The shared routing table. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    table: Arc<RwLock<Table>>,
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `plugin`'s event types to it, replacing what the same file
    /// served before (types the new version dropped stop being routed).
    ///
    /// # Errors
    ///
    /// [`RouteConflict`] when another file serves one of its types; nothing
    /// changes then.
    pub fn insert(&self, plugin: Plugin) -> Result<Routed, RouteConflict> {
        let mut table = self.write();
        let path = plugin.path().to_owned();
        for event_type in plugin.event_types() {
            if let Some(owner_path) = table.by_event_type.get(event_type)
                && *owner_path != path
            {
                let owner = &table.by_path[owner_path];
                return Err(RouteConflict {
                    event_type: event_type.clone(),
                    owner_name: owner.name().to_owned(),
                    owner_path: owner_path.clone(),
                    plugin_name: plugin.name().to_owned(),
                    plugin_path: path,
                });
            }
        }
        let previous = table.by_path.remove(&path);
        table.by_event_type.retain(|_, owner| *owner != path);
        for event_type in plugin.event_types() {
            table.by_event_type.insert(event_type.clone(), path.clone());
        }
        table.by_path.insert(path, plugin);
        Ok(match previous {
            None => Routed::Added,
            Some(old) => Routed::Replaced {
                previous_version: old.version().to_owned(),
            },
        })
    }

    /// Stops routing to the plugin loaded from `path`; returns it if there was one.
    pub fn remove(&self, path: &Path) -> Option<Plugin> {
        let mut table = self.write();
        let removed = table.by_path.remove(path)?;
        table.by_event_type.retain(|_, owner| owner != path);
        Some(removed)
    }

    /// The plugin that handles `event_type`.
    pub fn get(&self, event_type: &str) -> Option<Plugin> {
        let table = self.read();
        let path = table.by_event_type.get(event_type)?;
        table.by_path.get(path).cloned()
    }

    /// The plugin loaded from `path`.
    pub fn at(&self, path: &Path) -> Option<Plugin> {
        self.read().by_path.get(path).cloned()
    }

    /// Every routed event type, sorted.
    pub fn event_types(&self) -> Vec<String> {
        self.read().by_event_type.keys().cloned().collect()
    }

    /// Every loaded plugin, by path.
    pub fn plugins(&self) -> Vec<Plugin> {
        self.read().by_path.values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated
        // (every mutation above completes or returns before mutating), so a
        // poisoned lock is still consistent.
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
