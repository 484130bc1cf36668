//! The sweep: stamping and forgetting the idempotency keys of removed
//! messages (see [`crate::store::Swept`] for the rule), and dead-lettering
//! queued messages that outlived their event type's ttl.

use rusqlite::params;

use super::Mailbox;
use crate::state_machine::{expired_if_created_by, expiry_reason};
use crate::store::retention::forget_stamped_until;
use crate::store::{StoreError, Swept};

impl Mailbox {
    /// Stamps newly remembered keys with now, then forgets the keys
    /// stamped at least `key_retention` ago; dead-letters the queued
    /// messages of each type with a ttl that outlived it. One transaction.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn sweep(&mut self) -> Result<Swept, StoreError> {
        let now = self.now();
        let cutoff = forget_stamped_until(now, self.key_retention);
        let ctx = self.ctx.clone();
        let ttls: Vec<(String, std::time::Duration)> = self
            .policies
            .ttls()
            .map(|(t, ttl)| (t.to_owned(), ttl))
            .collect();
        let tx = self.tx()?;
        let expired = (|| {
            let mut n = 0;
            for (event_type, ttl) in &ttls {
                n += tx
                    .prepare_cached(
                        "UPDATE messages SET state = 'dead', dead_at = ?1, updated_at = ?1,
                                last_error = ?2
                          WHERE state = 'queued' AND event_type = ?3 AND created_at <= ?4",
                    )?
                    .execute(params![
                        now,
                        expiry_reason(*ttl),
                        event_type,
                        expired_if_created_by(now, *ttl)
                    ])?;
            }
            Ok(n)
        })()
        .map_err(|e| ctx.err(e))?;
        let forgotten = (|| {
            tx.prepare_cached("UPDATE retained_keys SET removed_at = ?1 WHERE removed_at IS NULL")?
                .execute(params![now])?;
            tx.prepare_cached(
                "DELETE FROM retained_keys WHERE removed_at IS NOT NULL AND removed_at <= ?1",
            )?
            .execute(params![cutoff])
        })()
        .map_err(|e| ctx.err(e))?;
        tx.commit().map_err(|e| ctx.err(e))?;
        Ok(Swept {
            keys_forgotten: forgotten,
            expired,
        })
    }
}
