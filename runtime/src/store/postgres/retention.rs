//! The sweep: stamping and forgetting the idempotency keys of removed
//! messages (see [`crate::store::Swept`] for the rule), and dead-lettering
//! queued messages that outlived their event type's ttl.

use super::PgStore;
use crate::state_machine::{expired_if_created_by, expiry_reason};
use crate::store::retention::forget_stamped_until;
use crate::store::{StoreError, Swept};

const STAMP: &str = "UPDATE mailroom.retained_keys SET removed_at = $1 WHERE removed_at IS NULL";

/// Queued messages of one type (`$3`) enqueued at or before `$4`: dead.
const EXPIRE: &str = "UPDATE mailroom.messages
       SET state = 'dead', dead_at = $1, updated_at = $1, last_error = $2
     WHERE state = 'queued' AND event_type = $3 AND created_at <= $4";

const FORGET: &str = "DELETE FROM mailroom.retained_keys
    WHERE removed_at IS NOT NULL AND removed_at <= $1";

impl PgStore {
    pub(crate) async fn sweep(&self) -> Result<Swept, StoreError> {
        self.timed(async {
            let mut client = self.client().await?;
            let errors = self.errors();
            let now = self.now();
            let cutoff = forget_stamped_until(now, self.inner.key_retention);
            let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
            let mut expired = 0;
            for (event_type, ttl) in self.inner.policies.ttls() {
                expired += tx
                    .execute(
                        EXPIRE,
                        &[
                            &now,
                            &expiry_reason(ttl),
                            &event_type,
                            &expired_if_created_by(now, ttl),
                        ],
                    )
                    .await
                    .map_err(|e| errors.pg(&e))?;
            }
            tx.execute(STAMP, &[&now])
                .await
                .map_err(|e| errors.pg(&e))?;
            let forgotten = tx
                .execute(FORGET, &[&cutoff])
                .await
                .map_err(|e| errors.pg(&e))?;
            tx.commit().await.map_err(|e| errors.pg(&e))?;
            Ok(Swept {
                keys_forgotten: usize::try_from(forgotten).unwrap_or(usize::MAX),
                expired: usize::try_from(expired).unwrap_or(usize::MAX),
            })
        })
        .await
    }
}
