//! Reclaiming leases whose holder will not finish: expired ones, and ones
//! whose host is gone (its process ended, or its heartbeat fell silent).

use std::time::Duration;

use rusqlite::{Connection, params};

use super::Mailbox;
use super::row::get_u32;
use super::settle::apply_failure;
use crate::clock::Millis;
use crate::state_machine::{Failure, Policies};
use crate::store::claim::Lease;
use crate::store::reclaim::{Reclaimed, host_is_gone};
use crate::store::settle::{Settled, decide};
use crate::store::StoreError;

/// In-flight messages whose lease ran out or whose owner is gone (`?2`: a
/// JSON array of owners known dead) or was never recorded.
pub(super) const STUCK: &str =
    "SELECT id, lease_token, event_type, attempts, max_attempts FROM messages
    WHERE state = 'inflight'
      AND (lease_expires_at <= ?1
           OR lease_owner IN (SELECT value FROM json_each(?2))
           OR lease_owner NOT IN (SELECT owner FROM hosts))";

impl Mailbox {
    /// Returns every message whose lease expired, or whose owner process is
    /// gone, to the queue (or to the dead letters when its attempts are
    /// spent), with a last error saying the lease expired. Leases of live
    /// hosts that have not expired are never taken. One transaction.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn reclaim(&mut self) -> Result<Reclaimed, StoreError> {
        let now = self.now();
        let policies = self.policies.clone();
        let me = self.owner.id.clone();
        let registered = self.registered;
        let silence = self.host_silence;
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let result = reclaim_in(&tx, &me, registered, silence, &policies, now)
            .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(result)
    }
}

fn reclaim_in(
    tx: &Connection,
    me: &str,
    registered: bool,
    silence: Duration,
    policies: &Policies,
    now: Millis,
) -> rusqlite::Result<Reclaimed> {
    if registered {
        tx.prepare_cached("UPDATE hosts SET heartbeat_at = ?1 WHERE owner = ?2")?
            .execute(params![now, me])?;
    }
    let dead_owners: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT owner, hostname, pid, process_start, heartbeat_at FROM hosts WHERE owner != ?1",
        )?;
        let rows = stmt.query_map([me], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                get_u32(row, 2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        let mut dead = Vec::new();
        for row in rows {
            let (owner, hostname, pid, start, heartbeat_at) = row?;
            let start = start.and_then(|s| u64::try_from(s).ok());
            if host_is_gone(&hostname, pid, start, heartbeat_at, now, silence) {
                dead.push(owner);
            }
        }
        dead
    };
    let dead_json = super::row::json_list(&dead_owners);

    // Expired, or held by an owner that is gone or was never recorded.
    let stuck: Vec<(Lease, String, u32, u32)> = {
        let mut stmt = tx.prepare_cached(STUCK)?;
        let rows = stmt.query_map(params![now, dead_json], |row| {
            Ok((
                Lease {
                    id: row.get(0)?,
                    token: row.get(1)?,
                },
                row.get(2)?,
                get_u32(row, 3)?,
                get_u32(row, 4)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };

    let mut result = Reclaimed::default();
    for (lease, event_type, attempts, max_attempts) in stuck {
        let transition = decide(
            &event_type,
            attempts,
            max_attempts,
            &Failure::LeaseExpired,
            policies,
            now,
        );
        match apply_failure(tx, &lease, &transition, None, now)? {
            Some(Settled::Dead) => {
                result.dead += 1;
                *result.dead_by_event_type.entry(event_type).or_default() += 1;
            }
            Some(_) => result.requeued += 1,
            None => {}
        }
    }
    for owner in &dead_owners {
        super::registry::forget_owner(tx, owner)?;
    }
    result.dead_owners = dead_owners.len();
    Ok(result)
}
