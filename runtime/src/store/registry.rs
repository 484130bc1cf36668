//! The hosts that use the store, and the plugins each running host has
//! loaded or rejected. Recorded in the store so that another process
//! (`mailroom plugins`, `mailroom stats`) sees what the hosts really run.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::clock::Millis;

/// Whether a host could load a plugin file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    /// Serving its event types.
    Loaded,
    /// Refused; `reason` says why.
    Rejected,
}

impl PluginStatus {
    /// The value stored in the registry.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Rejected => "rejected",
        }
    }

    /// The status a stored value names (anything but `loaded` is a rejection).
    pub(crate) fn from_stored(s: &str) -> Self {
        if s == Self::Loaded.as_str() {
            Self::Loaded
        } else {
            Self::Rejected
        }
    }
}

/// One plugin file as a running host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRecord {
    /// The file.
    pub path: String,
    /// Loaded or rejected.
    pub status: PluginStatus,
    /// The plugin's name (loaded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The plugin's version (loaded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The event types it serves (loaded only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// The digest of the file's bytes (loaded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why it was rejected (rejected only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the host recorded this, in milliseconds since the Unix epoch.
    pub updated_at: Millis,
    /// The host that recorded it, as `hostname:pid`.
    pub host: String,
}

/// The plugins of every running host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginRegistry {
    /// Plugins serving their event types.
    pub loaded: Vec<PluginRecord>,
    /// Files that were refused, with the reason.
    pub rejected: Vec<PluginRecord>,
    /// The hosts running on the store.
    pub hosts: Vec<HostRecord>,
}

impl PluginRegistry {
    /// Every event type some running host serves.
    pub fn served_event_types(&self) -> BTreeSet<&str> {
        self.loaded
            .iter()
            .flat_map(|p| p.event_types.iter().map(String::as_str))
            .collect()
    }

    /// Event types that running hosts serve with different plugin builds
    /// (a rolling deploy in progress, or hosts with different folders), each
    /// with the digests seen.
    pub fn mixed_builds(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut digests: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for record in &self.loaded {
            for event_type in &record.event_types {
                digests
                    .entry(event_type)
                    .or_default()
                    .insert(record.digest.as_deref().unwrap_or(""));
            }
        }
        digests.retain(|_, d| d.len() > 1);
        digests
    }

    /// Assembles a registry from every record (of live hosts only).
    pub(crate) fn from_records(records: Vec<PluginRecord>, hosts: Vec<HostRecord>) -> Self {
        let mut registry = Self {
            hosts,
            ..Self::default()
        };
        for record in records {
            match record.status {
                PluginStatus::Loaded => registry.loaded.push(record),
                PluginStatus::Rejected => registry.rejected.push(record),
            }
        }
        registry
    }
}

/// A host process running on the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// `hostname:pid`, as the plugin records name it.
    pub host: String,
    /// The machine's host name.
    pub hostname: String,
    /// The process id on that machine.
    pub pid: u32,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at: Millis,
    /// Its last heartbeat, in milliseconds since the Unix epoch.
    pub heartbeat_at: Millis,
}

impl HostRecord {
    /// The name plugin records give a host.
    pub(crate) fn label(hostname: &str, pid: u32) -> String {
        format!("{hostname}:{pid}")
    }
}


/// What a host records about a plugin it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) event_types: Vec<String>,
    pub(crate) digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(host: &str, digest: &str, types: &[&str]) -> PluginRecord {
        PluginRecord {
            path: "p.wasm".into(),
            status: PluginStatus::Loaded,
            name: Some("p".into()),
            version: Some("1".into()),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            digest: Some(digest.into()),
            reason: None,
            updated_at: 0,
            host: host.into(),
        }
    }

    #[test]
    fn a_type_served_by_different_builds_is_reported() {
        let registry = PluginRegistry::from_records(
            vec![
                loaded("a:1", "sha256:old", &["order.created", "order.paid"]),
                loaded("b:2", "sha256:new", &["order.created"]),
                loaded("c:3", "sha256:old", &["order.paid"]),
            ],
            vec![],
        );
        let mixed = registry.mixed_builds();
        assert_eq!(mixed.len(), 1, "{mixed:?}");
        assert_eq!(
            mixed["order.created"].iter().copied().collect::<Vec<_>>(),
            vec!["sha256:new", "sha256:old"]
        );
        assert_eq!(
            registry.served_event_types().into_iter().collect::<Vec<_>>(),
            vec!["order.created", "order.paid"]
        );
    }
}
