//! The hosts that use the store, and the plugins each running host has loaded
//! or rejected. Recorded in the store so that another process (`mailroom
//! plugins`, `mailroom stats`) sees what the hosts really run.

use std::collections::BTreeSet;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::owner::LeaseOwner;
use super::row::get_u32;
use super::{Mailbox, MailboxError};
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
    fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Rejected => "rejected",
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
}

/// The plugins of every running host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginRegistry {
    /// Plugins serving their event types.
    pub loaded: Vec<PluginRecord>,
    /// Files that were refused, with the reason.
    pub rejected: Vec<PluginRecord>,
}

impl PluginRegistry {
    /// Every event type some running host serves.
    pub fn served_event_types(&self) -> BTreeSet<&str> {
        self.loaded
            .iter()
            .flat_map(|p| p.event_types.iter().map(String::as_str))
            .collect()
    }
}

impl Mailbox {
    /// Records that this host loaded the plugin at `path` (clearing an
    /// earlier rejection of the file).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn record_plugin_loaded(
        &mut self,
        path: &str,
        name: &str,
        version: &str,
        event_types: &[String],
        digest: &str,
    ) -> Result<(), MailboxError> {
        let types = serde_json::to_string(event_types).unwrap_or_else(|_| "[]".to_owned());
        self.upsert_record(
            path,
            PluginStatus::Loaded,
            [Some(name), Some(version), Some(&types), Some(digest), None],
        )
    }

    /// Records that this host rejected the file at `path`, and why. A version
    /// of the file loaded earlier stays recorded: it keeps serving.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn record_plugin_rejected(&mut self, path: &str, reason: &str) -> Result<(), MailboxError> {
        self.upsert_record(
            path,
            PluginStatus::Rejected,
            [None, None, None, None, Some(reason)],
        )
    }

    /// Forgets what this host recorded about `path` (the file was removed).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn forget_plugin(&mut self, path: &str) -> Result<(), MailboxError> {
        let owner = self.owner.id.clone();
        self.conn
            .prepare_cached("DELETE FROM plugin_registry WHERE owner = ?1 AND path = ?2")
            .and_then(|mut s| s.execute(params![owner, path]))
            .map(|_| ())
            .map_err(|e| self.ctx.err(e))
    }

    /// `fields`: name, version, event types (JSON), digest, reason.
    fn upsert_record(
        &mut self,
        path: &str,
        status: PluginStatus,
        fields: [Option<&str>; 5],
    ) -> Result<(), MailboxError> {
        let now = self.now();
        let owner = self.owner.clone();
        let first = !self.registered;
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let [name, version, types, digest, reason] = fields;
        (|| {
            if first {
                register_owner(&tx, &owner, now)?;
            }
            if status == PluginStatus::Loaded {
                tx.prepare_cached("DELETE FROM plugin_registry WHERE owner = ?1 AND path = ?2")?
                    .execute(params![owner.id, path])?;
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO plugin_registry
                   (owner, path, status, name, version, event_types, digest, reason, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                owner.id,
                path,
                status.as_str(),
                name,
                version,
                types,
                digest,
                reason,
                now
            ])
            .map(|_| ())
        })()
        .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        self.registered = true;
        Ok(())
    }

    /// The plugins of every host that is still running, newest record first.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn plugin_registry(&self) -> Result<PluginRegistry, MailboxError> {
        let read = || -> rusqlite::Result<PluginRegistry> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT r.path, r.status, r.name, r.version, r.event_types, r.digest, r.reason,
                        r.updated_at, h.hostname, h.pid, h.process_start
                   FROM plugin_registry r JOIN hosts h ON h.owner = r.owner
                  ORDER BY r.path, r.updated_at DESC",
            )?;
            let mut registry = PluginRegistry::default();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let hostname: String = row.get(8)?;
                let start = row
                    .get::<_, Option<i64>>(10)?
                    .and_then(|s| u64::try_from(s).ok());
                if LeaseOwner::is_known_dead(&hostname, get_u32(row, 9)?, start) {
                    continue;
                }
                let status: String = row.get(1)?;
                let types: Option<String> = row.get(4)?;
                let record = PluginRecord {
                    path: row.get(0)?,
                    status: if status == PluginStatus::Loaded.as_str() {
                        PluginStatus::Loaded
                    } else {
                        PluginStatus::Rejected
                    },
                    name: row.get(2)?,
                    version: row.get(3)?,
                    event_types: types
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    digest: row.get(5)?,
                    reason: row.get(6)?,
                    updated_at: row.get(7)?,
                };
                match record.status {
                    PluginStatus::Loaded => registry.loaded.push(record),
                    PluginStatus::Rejected => registry.rejected.push(record),
                }
            }
            Ok(registry)
        };
        read().map_err(|e| self.ctx.err(e))
    }
}

/// Records `owner` in `hosts` (inside the transaction of its first claim or
/// registry write, so no lease can name an unrecorded owner).
pub(crate) fn register_owner(
    tx: &Connection,
    owner: &LeaseOwner,
    now: Millis,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO hosts (owner, hostname, pid, process_start, started_at, heartbeat_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        owner.id,
        owner.hostname,
        owner.pid,
        owner.process_start.and_then(|s| i64::try_from(s).ok()),
        now,
    ])?;
    Ok(())
}

/// Forgets a host and its plugin records.
pub(crate) fn forget_owner(conn: &Connection, owner: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM plugin_registry WHERE owner = ?1")?
        .execute([owner])?;
    conn.prepare_cached("DELETE FROM hosts WHERE owner = ?1")?
        .execute([owner])?;
    Ok(())
}
