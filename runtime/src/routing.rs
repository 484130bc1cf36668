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

/// Why a plugin could not be routed: every event type of it another file
/// already serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plugin `{plugin_name}` ({}) was refused: {}; remove one of the files, or drop \
     the event types from `Plugin::EVENT_TYPES` of one of the plugins (it is loaded again \
     once the other plugin is gone)",
    plugin_path.display(),
    owned_by(taken)
)]
pub struct RouteConflict {
    /// Each contested event type and the plugin that keeps serving it.
    pub taken: Vec<TakenType>,
    /// The refused plugin.
    pub plugin_name: String,
    /// Its file.
    pub plugin_path: PathBuf,
}

/// An event type a refused plugin declared that another plugin serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenType {
    /// The contested event type.
    pub event_type: String,
    /// The plugin that keeps serving it.
    pub owner_name: String,
    /// Its file.
    pub owner_path: PathBuf,
}

/// "event type `a` is already handled by plugin `p` (path), `b` by …"
fn owned_by(taken: &[TakenType]) -> String {
    taken
        .iter()
        .map(|t| {
            format!(
                "event type `{}` is already handled by plugin `{}` ({})",
                t.event_type,
                t.owner_name,
                t.owner_path.display()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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
        let taken: Vec<TakenType> = plugin
            .event_types()
            .iter()
            .filter_map(|event_type| {
                let owner_path = table.by_event_type.get(event_type)?;
                (*owner_path != path).then(|| TakenType {
                    event_type: event_type.clone(),
                    owner_name: table.by_path[owner_path].name().to_owned(),
                    owner_path: owner_path.clone(),
                })
            })
            .collect();
        if !taken.is_empty() {
            return Err(RouteConflict {
                taken,
                plugin_name: plugin.name().to_owned(),
                plugin_path: path,
            });
        }
        let previous = table.by_path.remove(&path);
        // Only this file's own types: the cost follows the plugin's (capped)
        // declarations, not the size of the table.
        for event_type in previous.iter().flat_map(|old| old.event_types()) {
            table.by_event_type.remove(event_type);
        }
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
        for event_type in removed.event_types() {
            table.by_event_type.remove(event_type);
        }
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

    /// How many event types are routed.
    pub fn event_type_count(&self) -> usize {
        self.read().by_event_type.len()
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
