//! The sweep: stamping and forgetting the idempotency keys of removed
//! messages (see [`crate::store::Swept`] for the rule).

use super::PgStore;
use crate::store::retention::forget_stamped_until;
use crate::store::{StoreError, Swept};

const STAMP: &str = "UPDATE mailroom.retained_keys SET removed_at = $1 WHERE removed_at IS NULL";

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
            })
        })
        .await
    }
}
