//! Reclaiming leases whose holder will not finish: expired ones, and ones
//! whose owner process on this machine is gone. Runs on open of a host and
//! periodically; a crash therefore costs one attempt, never the message.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::claim::Lease;
use super::owner::LeaseOwner;
use super::row::get_u32;
use super::settle::{Settled, apply_failure};
use super::{Mailbox, MailboxError};
use crate::clock::Millis;
use crate::state_machine::{self, Failure, Policies};

/// In-flight messages whose lease ran out or whose owner is gone (`?2`: a
/// JSON array of owners known dead) or was never recorded.
pub(super) const STUCK: &str =
    "SELECT id, lease_token, event_type, attempts, max_attempts FROM messages
    WHERE state = 'inflight'
      AND (lease_expires_at <= ?1
           OR lease_owner IN (SELECT value FROM json_each(?2))
           OR lease_owner NOT IN (SELECT owner FROM hosts))";

/// What one reclaim pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Messages put back in the queue.
    pub requeued: usize,
    /// Messages dead-lettered because their attempts were spent.
    pub dead: usize,
    /// Those dead-lettered messages, counted by event type.
    pub dead_by_event_type: BTreeMap<String, usize>,
    /// Owners found gone and forgotten.
    pub dead_owners: usize,
}

impl Mailbox {
    /// Returns every message whose lease expired, or whose owner process is
    /// gone, to the queue (or to the dead letters when its attempts are
    /// spent), with a last error saying the lease expired. Leases of live
    /// hosts that have not expired are never taken. One transaction.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn reclaim(&mut self) -> Result<Reclaimed, MailboxError> {
        let now = self.now();
        let policies = self.policies.clone();
        let me = self.owner.id.clone();
        let registered = self.registered;
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
        let result = reclaim_in(&tx, &me, registered, &policies, now).map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(result)
    }
}

fn reclaim_in(
    tx: &Connection,
    me: &str,
    registered: bool,
    policies: &Policies,
    now: Millis,
) -> rusqlite::Result<Reclaimed> {
    if registered {
        tx.prepare_cached("UPDATE hosts SET heartbeat_at = ?1 WHERE owner = ?2")?
            .execute(params![now, me])?;
    }
    let dead_owners: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT owner, hostname, pid, process_start FROM hosts WHERE owner != ?1",
        )?;
        let rows = stmt.query_map([me], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                get_u32(row, 2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut dead = Vec::new();
        for row in rows {
            let (owner, hostname, pid, start) = row?;
            let start = start.and_then(|s| u64::try_from(s).ok());
            if LeaseOwner::is_known_dead(&hostname, pid, start) {
                dead.push(owner);
            }
        }
        dead
    };
    let dead_json = serde_json::to_string(&dead_owners).unwrap_or_else(|_| "[]".to_owned());

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
        let transition = state_machine::after_failure(
            &Failure::LeaseExpired,
            attempts,
            max_attempts,
            policies.for_event_type(&event_type),
            now,
            rand::random::<f64>(),
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
