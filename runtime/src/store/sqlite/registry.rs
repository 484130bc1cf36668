//! The hosts that use the store, and the plugins each running host has loaded
//! or rejected. Recorded in the store so that another process (`mailroom
//! plugins`, `mailroom stats`) sees what the hosts really run.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::Mailbox;
use super::row::get_u32;
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::owner::LeaseOwner;
use crate::store::reclaim::host_is_gone;
use crate::store::registry::{HostRecord, PluginRecord, PluginRegistry, PluginStatus};

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
    ) -> Result<(), StoreError> {
        let types = super::row::json_list(event_types);
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
    pub fn record_plugin_rejected(&mut self, path: &str, reason: &str) -> Result<(), StoreError> {
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
    pub fn forget_plugin(&mut self, path: &str) -> Result<(), StoreError> {
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
    ) -> Result<(), StoreError> {
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

    /// The hosts that are still running, oldest first, each with its owner id.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub(crate) fn live_hosts(&self) -> Result<Vec<(String, HostRecord)>, StoreError> {
        let now = self.now();
        let read = || -> rusqlite::Result<Vec<(String, HostRecord)>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT owner, hostname, pid, process_start, started_at, heartbeat_at
                   FROM hosts ORDER BY started_at, owner",
            )?;
            let mut rows = stmt.query([])?;
            let mut hosts = Vec::new();
            while let Some(row) = rows.next()? {
                let hostname: String = row.get(1)?;
                let pid = get_u32(row, 2)?;
                let start = row
                    .get::<_, Option<i64>>(3)?
                    .and_then(|s| u64::try_from(s).ok());
                let heartbeat_at: Millis = row.get(5)?;
                if host_is_gone(&hostname, pid, start, heartbeat_at, now, self.host_silence) {
                    continue;
                }
                hosts.push((
                    row.get(0)?,
                    HostRecord {
                        host: HostRecord::label(&hostname, pid),
                        hostname,
                        pid,
                        started_at: row.get(4)?,
                        heartbeat_at,
                    },
                ));
            }
            Ok(hosts)
        };
        read().map_err(|e| self.ctx.err(e))
    }

    /// The plugins of every host that is still running, newest record first.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn plugin_registry(&self) -> Result<PluginRegistry, StoreError> {
        let hosts = self.live_hosts()?;
        let labels: HashMap<&str, &str> = hosts
            .iter()
            .map(|(owner, h)| (owner.as_str(), h.host.as_str()))
            .collect();
        let read = || -> rusqlite::Result<Vec<PluginRecord>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT path, status, name, version, event_types, digest, reason, updated_at, owner
                   FROM plugin_registry ORDER BY path, updated_at DESC",
            )?;
            let mut rows = stmt.query([])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                let owner: String = row.get(8)?;
                let Some(host) = labels.get(owner.as_str()) else {
                    continue;
                };
                let status: String = row.get(1)?;
                let types: Option<String> = row.get(4)?;
                records.push(PluginRecord {
                    path: row.get(0)?,
                    status: PluginStatus::from_stored(&status),
                    name: row.get(2)?,
                    version: row.get(3)?,
                    event_types: types
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    digest: row.get(5)?,
                    reason: row.get(6)?,
                    updated_at: row.get(7)?,
                    host: (*host).to_owned(),
                });
            }
            Ok(records)
        };
        let records = read().map_err(|e| self.ctx.err(e))?;
        Ok(PluginRegistry::from_records(
            records,
            hosts.into_iter().map(|(_, h)| h).collect(),
        ))
    }

    /// Records this mailbox's owner as a running host now, rather than at
    /// its first claim or registry write: a host that serves nothing yet is
    /// still shown.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn register_host(&mut self) -> Result<(), StoreError> {
        let now = self.now();
        let owner = self.owner.clone();
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        register_owner(&tx, &owner, now).map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        self.registered = true;
        Ok(())
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
