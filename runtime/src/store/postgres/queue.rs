//! Operating live queues on PostgreSQL: messages in any state, cancelling
//! queued ones, pausing event types.

use tokio_postgres::Row;

use super::PgStore;
use super::connect::Errors;
use super::inspect::summary;
use super::messages::notify;
use crate::message::MessageId;
use crate::state_machine::{MessageState, Policies, UnknownState};
use crate::store::StoreError;
use crate::store::queue::{
    Cancelled, LeaseHolder, MessageFilter, MessagePage, MessageSummary, PauseChange, PausedType,
    refusal,
};

/// A message's summary, state, due time and lease, read by
/// [`message_summary`]; the table is `m`, joined by [`LEASE_JOIN`].
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.event_type, m.key, m.source, m.correlation_id, \
     m.priority, m.attempts, m.max_attempts, m.last_error, m.last_plugin_digest, \
     octet_length(m.payload), m.created_at, m.dead_at, m.seq, m.state, m.available_at, \
     coalesce(h.hostname || ':' || h.pid, m.lease_owner), m.lease_expires_at";

/// Names the host holding a lease as `stats` lists hosts.
pub(super) const LEASE_JOIN: &str = "LEFT JOIN mailroom.hosts h ON h.owner = m.lease_owner";

/// The column after [`MESSAGE_COLUMNS`], where `message` reads the payload.
pub(super) const PAYLOAD_COLUMN: usize = 18;

/// Reads [`MESSAGE_COLUMNS`]: the message and its position.
pub(super) fn message_summary(
    row: &Row,
    errors: &Errors,
    policies: &Policies,
) -> Result<(MessageSummary, i64), StoreError> {
    let state: MessageState = row
        .get::<_, String>(14)
        .parse()
        .map_err(|e: UnknownState| errors.corrupt(e.to_string()))?;
    let owner: Option<String> = row.get(16);
    let lease = owner
        .filter(|_| state == MessageState::Inflight)
        .map(|owner| LeaseHolder {
            owner,
            expires_at: row.get(17),
        });
    Ok((
        MessageSummary {
            state,
            summary: summary(row, errors, policies)?,
            available_at: row.get(15),
            lease,
        },
        row.get(13),
    ))
}

impl PgStore {
    pub(crate) async fn messages(&self, filter: MessageFilter) -> Result<MessagePage, StoreError> {
        let limit = filter.page_size();
        let after = filter.after()?;
        let errors = self.errors();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM mailroom.messages m {LEASE_JOIN}
                      WHERE m.seq > $1 AND ($2::text IS NULL OR m.event_type = $2)
                        AND ($3::text IS NULL OR m.state = $3)
                      ORDER BY m.seq LIMIT $4"
                ),
                &[
                    &after,
                    &filter.event_type,
                    &filter.state_text(),
                    &i64::try_from(limit + 1).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        let rows = rows
            .iter()
            .map(|row| message_summary(row, errors, &self.inner.policies))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(MessagePage::from_rows(rows, limit))
    }

    pub(crate) async fn cancel_ids(&self, ids: Vec<MessageId>) -> Result<Cancelled, StoreError> {
        let errors = self.errors();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
        let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
        let removed: Vec<uuid::Uuid> = tx
            .query(
                "DELETE FROM mailroom.messages
                  WHERE id = ANY($1) AND state = 'queued' RETURNING id",
                &[&uuids],
            )
            .await
            .map_err(|e| errors.pg(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let left: Vec<uuid::Uuid> = uuids
            .iter()
            .filter(|id| !removed.contains(id))
            .copied()
            .collect();
        let states: Vec<(uuid::Uuid, String)> = tx
            .query(
                "SELECT id, state FROM mailroom.messages WHERE id = ANY($1)",
                &[&left],
            )
            .await
            .map_err(|e| errors.pg(&e))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        tx.commit().await.map_err(|e| errors.pg(&e))?;
        let mut done = Cancelled {
            cancelled: removed.len(),
            ..Cancelled::default()
        };
        for id in left {
            let state = states
                .iter()
                .find(|(found, _)| *found == id)
                .map(|(_, state)| state.parse::<MessageState>())
                .transpose()
                .map_err(|e| errors.corrupt(e.to_string()))?;
            done.refused.push(refusal(MessageId(id), state));
        }
        Ok(done)
    }

    pub(crate) async fn cancel_queued(
        &self,
        event_type: String,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let errors = self.errors();
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM mailroom.messages WHERE seq IN (
                     SELECT seq FROM mailroom.messages
                      WHERE state = 'queued' AND event_type = $1
                      ORDER BY priority DESC, seq LIMIT $2
                      FOR UPDATE SKIP LOCKED)",
                &[&event_type, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    pub(crate) async fn inflight_of(&self, event_type: String) -> Result<u64, StoreError> {
        let errors = self.errors();
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM mailroom.messages
                  WHERE state = 'inflight' AND event_type = $1",
                &[&event_type],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    pub(crate) async fn set_paused(
        &self,
        event_type: String,
        paused: bool,
    ) -> Result<PauseChange, StoreError> {
        let now = self.now();
        let errors = self.errors();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
        let changed = if paused {
            tx.execute(
                "INSERT INTO mailroom.paused_event_types (event_type, paused_at) VALUES ($1, $2)
                 ON CONFLICT (event_type) DO NOTHING",
                &[&event_type, &now],
            )
            .await
        } else {
            tx.execute(
                "DELETE FROM mailroom.paused_event_types WHERE event_type = $1",
                &[&event_type],
            )
            .await
        }
        .map_err(|e| errors.pg(&e))?;
        if !paused && changed > 0 {
            // Its queued messages may be claimed again: wake the hosts.
            notify(&tx, errors).await?;
        }
        tx.commit().await.map_err(|e| errors.pg(&e))?;
        Ok(PauseChange {
            paused,
            changed: changed == 1,
        })
    }

    pub(crate) async fn paused(&self) -> Result<Vec<PausedType>, StoreError> {
        let errors = self.errors();
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT event_type, paused_at FROM mailroom.paused_event_types ORDER BY event_type",
                &[],
            )
            .await
            .map_err(|e| errors.pg(&e))?
            .iter()
            .map(|row| PausedType {
                event_type: row.get(0),
                paused_at: row.get(1),
            })
            .collect())
    }
}
