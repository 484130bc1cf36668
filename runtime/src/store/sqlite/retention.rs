//! The sweep: stamping and forgetting the idempotency keys of removed
//! messages (see [`crate::store::Swept`] for the rule).

use rusqlite::params;

use super::Mailbox;
use crate::store::retention::forget_stamped_until;
use crate::store::{StoreError, Swept};

impl Mailbox {
    /// Stamps newly remembered keys with now, then forgets the keys
    /// stamped at least `key_retention` ago. One transaction.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn sweep(&mut self) -> Result<Swept, StoreError> {
        let now = self.now();
        let cutoff = forget_stamped_until(now, self.key_retention);
        let ctx = self.ctx.clone();
        let tx = self.tx()?;
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
        })
    }
}
