//! Hosts on PostgreSQL: registration, heartbeats, reclaiming the leases of
//! hosts that are gone (or that ran out), and the plugin registry.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::PgStore;
use super::messages::{FailureRows, count};
use crate::clock::Millis;
use crate::state_machine::Failure;
use crate::store::reclaim::host_is_gone;
use crate::store::registry::Loaded;
use crate::store::settle::decide;
use crate::store::{
    HostRecord, Lease, PluginRecord, PluginRegistry, PluginStatus, Reclaimed, StoreError,
};

const REGISTER: &str = "INSERT INTO mailroom.hosts
        (owner, hostname, pid, process_start, started_at, heartbeat_at)
    VALUES ($1, $2, $3, $4, $5, $5)
    ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

const HOSTS: &str = "SELECT owner, hostname, pid, process_start, started_at, heartbeat_at
    FROM mailroom.hosts ORDER BY started_at, owner";

/// In-flight messages whose lease ran out, whose owner is gone (`$2`), or
/// whose owner was never recorded; locked, skipping any a live claimer or
/// another reclaimer holds.
const STUCK: &str = "SELECT id, lease_token, event_type, attempts, max_attempts
    FROM mailroom.messages
    WHERE state = 'inflight'
      AND (lease_expires_at <= $1
           OR lease_owner = ANY($2)
           OR lease_owner NOT IN (SELECT owner FROM mailroom.hosts))
    FOR UPDATE SKIP LOCKED";

const FORGET_HOSTS: &str = "WITH gone AS (
        DELETE FROM mailroom.plugin_registry WHERE owner = ANY($1)
    )
    DELETE FROM mailroom.hosts WHERE owner = ANY($1)";

impl PgStore {
    pub(crate) async fn register_host(&self) -> Result<(), StoreError> {
        let owner = &self.inner.owner;
        let client = self.client().await?;
        let pid = i32::try_from(owner.pid).unwrap_or(i32::MAX);
        let start = owner.process_start.and_then(|s| i64::try_from(s).ok());
        client
            .execute(
                REGISTER,
                &[&owner.id, &owner.hostname, &pid, &start, &self.now()],
            )
            .await
            .map_err(|e| self.errors().pg(&e))?;
        self.inner.registered.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The hosts still alive, each with its owner id.
    async fn live_hosts(&self) -> Result<Vec<(String, HostRecord)>, StoreError> {
        let now = self.now();
        let client = self.client().await?;
        let rows = client
            .query(HOSTS, &[])
            .await
            .map_err(|e| self.errors().pg(&e))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let hostname: String = row.get(1);
                let pid = count(row.get(2));
                let start = row
                    .get::<_, Option<i64>>(3)
                    .and_then(|s| u64::try_from(s).ok());
                let heartbeat_at: Millis = row.get(5);
                if host_is_gone(
                    &hostname,
                    pid,
                    start,
                    heartbeat_at,
                    now,
                    self.inner.host_silence,
                ) {
                    return None;
                }
                Some((
                    row.get(0),
                    HostRecord {
                        host: HostRecord::label(&hostname, pid),
                        hostname,
                        pid,
                        started_at: row.get(4),
                        heartbeat_at,
                    },
                ))
            })
            .collect())
    }

    pub(crate) async fn reclaim(&self) -> Result<Reclaimed, StoreError> {
        self.timed(async {
            let errors = self.errors();
            let mut client = self.client().await?;
            self.sync_clock(&client).await?;
            let now = self.now();
            let me = &self.inner.owner.id;
            let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
            if self.inner.registered.load(Ordering::Relaxed) {
                tx.execute(
                    "UPDATE mailroom.hosts SET heartbeat_at = $1 WHERE owner = $2",
                    &[&now, me],
                )
                .await
                .map_err(|e| errors.pg(&e))?;
            }
            let hosts = tx
                .query(
                    "SELECT owner, hostname, pid, process_start, heartbeat_at
                       FROM mailroom.hosts WHERE owner != $1",
                    &[me],
                )
                .await
                .map_err(|e| errors.pg(&e))?;
            let gone: Vec<String> = hosts
                .iter()
                .filter(|row| {
                    let start = row
                        .get::<_, Option<i64>>(3)
                        .and_then(|s| u64::try_from(s).ok());
                    host_is_gone(
                        row.get(1),
                        count(row.get(2)),
                        start,
                        row.get(4),
                        now,
                        self.inner.host_silence,
                    )
                })
                .map(|row| row.get(0))
                .collect();
            let stuck = tx
                .query(STUCK, &[&now, &gone])
                .await
                .map_err(|e| errors.pg(&e))?;
            let mut rows = FailureRows::default();
            let mut event_types = HashMap::new();
            for row in &stuck {
                let lease = Lease {
                    id: crate::message::MessageId(row.get(0)),
                    token: row.get(1),
                };
                let event_type: String = row.get(2);
                let max_attempts =
                    super::messages::budget(row.get(4), &event_type, &self.inner.policies);
                let transition = decide(
                    &event_type,
                    count(row.get(3)),
                    max_attempts,
                    &Failure::LeaseExpired,
                    &self.inner.policies,
                    now,
                );
                event_types.insert(lease.id.0, (event_type, transition.clone()));
                rows.push(&lease, &transition, None, now);
            }
            let applied = rows.apply(&tx, now, errors).await?;
            let mut result = Reclaimed::default();
            for id in &applied {
                if let Some((event_type, transition)) = event_types.remove(id) {
                    match transition {
                        crate::state_machine::Transition::Dead { .. } => {
                            result.dead += 1;
                            *result.dead_by_event_type.entry(event_type).or_default() += 1;
                        }
                        crate::state_machine::Transition::Requeue { .. } => result.requeued += 1,
                    }
                }
            }
            if !gone.is_empty() {
                tx.execute(FORGET_HOSTS, &[&gone])
                    .await
                    .map_err(|e| errors.pg(&e))?;
            }
            if result.requeued > 0 {
                super::messages::notify(&tx, errors).await?;
            }
            tx.commit().await.map_err(|e| errors.pg(&e))?;
            result.dead_owners = gone.len();
            Ok(result)
        })
        .await
    }

    pub(crate) async fn plugin_registry(&self) -> Result<PluginRegistry, StoreError> {
        let hosts = self.live_hosts().await?;
        let labels: HashMap<&str, &str> = hosts
            .iter()
            .map(|(owner, h)| (owner.as_str(), h.host.as_str()))
            .collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT path, status, name, version, event_types, digest, reason, updated_at, owner
                   FROM mailroom.plugin_registry ORDER BY path, updated_at DESC",
                &[],
            )
            .await
            .map_err(|e| self.errors().pg(&e))?;
        let records = rows
            .iter()
            .filter_map(|row| {
                let host = labels.get(row.get::<_, &str>(8))?;
                let types: Option<String> = row.get(4);
                Some(PluginRecord {
                    path: row.get(0),
                    status: PluginStatus::from_stored(row.get(1)),
                    name: row.get(2),
                    version: row.get(3),
                    event_types: types
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    digest: row.get(5),
                    reason: row.get(6),
                    updated_at: row.get(7),
                    host: (*host).to_owned(),
                })
            })
            .collect();
        Ok(PluginRegistry::from_records(
            records,
            hosts.into_iter().map(|(_, h)| h).collect(),
        ))
    }

    /// Writes one registry row for this host (`fields`: name, version,
    /// event types as JSON, digest, reason).
    async fn upsert_record(
        &self,
        path: &str,
        status: PluginStatus,
        fields: [Option<&str>; 5],
    ) -> Result<(), StoreError> {
        if !self.inner.registered.load(Ordering::Relaxed) {
            self.register_host().await?;
        }
        let errors = self.errors();
        let owner = &self.inner.owner.id;
        let [name, version, types, digest, reason] = fields;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
        if status == PluginStatus::Loaded {
            tx.execute(
                "DELETE FROM mailroom.plugin_registry WHERE owner = $1 AND path = $2",
                &[owner, &path],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        }
        tx.execute(
            "INSERT INTO mailroom.plugin_registry
                 (owner, path, status, name, version, event_types, digest, reason, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (owner, path, status) DO UPDATE
                SET name = excluded.name, version = excluded.version,
                    event_types = excluded.event_types, digest = excluded.digest,
                    reason = excluded.reason, updated_at = excluded.updated_at",
            &[
                owner,
                &path,
                &status.as_str(),
                &name,
                &version,
                &types,
                &digest,
                &reason,
                &self.now(),
            ],
        )
        .await
        .map_err(|e| errors.pg(&e))?;
        tx.commit().await.map_err(|e| errors.pg(&e))
    }

    pub(crate) async fn record_plugin_loaded(&self, p: Loaded) -> Result<(), StoreError> {
        let types = serde_json::to_string(&p.event_types).unwrap_or_else(|_| "[]".to_owned());
        self.upsert_record(
            &p.path,
            PluginStatus::Loaded,
            [
                Some(&p.name),
                Some(&p.version),
                Some(&types),
                Some(&p.digest),
                None,
            ],
        )
        .await
    }

    pub(crate) async fn record_plugin_rejected(
        &self,
        path: String,
        reason: String,
    ) -> Result<(), StoreError> {
        self.upsert_record(
            &path,
            PluginStatus::Rejected,
            [None, None, None, None, Some(&reason)],
        )
        .await
    }

    pub(crate) async fn forget_plugin(&self, path: String) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM mailroom.plugin_registry WHERE owner = $1 AND path = $2",
                &[&self.inner.owner.id, &path],
            )
            .await
            .map(|_| ())
            .map_err(|e| self.errors().pg(&e))
    }

    pub(crate) async fn close(&self) {
        if !self.inner.registered.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Ok(client) = self.client().await {
            let owners = vec![self.inner.owner.id.clone()];
            let _ = client.execute(FORGET_HOSTS, &[&owners]).await;
        }
    }
}
