//! What operators look at and do on PostgreSQL: any message by id, the
//! dead letters (list, redrive, purge) and the counts.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::connect::Errors;
use super::messages::{budget, count, notify, priority};
use crate::clock::Millis;
use crate::message::MessageId;
use crate::state_machine::{MessageState, Policies};
use crate::store::dead_letters::not_dead;
use crate::store::stats::CountRow;
use crate::store::{
    DeadLetter, DeadLetterFilter, DeadLetterMatch, DeadLetterPage, Selection, Stats, StoreError,
    StoredMessage,
};

const SUMMARY_COLUMNS: &str = "id, event_type, key, source, correlation_id, priority, attempts, \
     max_attempts, last_error, last_plugin_digest, octet_length(payload), created_at, dead_at, seq";

/// The conditions of a [`DeadLetterMatch`] as the four parameters from
/// `$first` (event type, error text, died after, died before); a NULL
/// parameter is no condition.
fn matching(first: usize) -> String {
    let (t, e, a, b) = (first, first + 1, first + 2, first + 3);
    format!(
        "(${t}::text IS NULL OR event_type = ${t})
         AND (${e}::text IS NULL OR strpos(last_error, ${e}) > 0)
         AND (${a}::bigint IS NULL OR dead_at >= ${a})
         AND (${b}::bigint IS NULL OR dead_at < ${b})"
    )
}

/// A page of dead letters in order of death after the position
/// (`$1`, `$2`), meeting the conditions `$3`..`$6`, at most `$7`.
fn page_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM mailroom.messages
          WHERE state = 'dead' AND (dead_at, seq) > ($1, $2) AND {}
          ORDER BY dead_at, seq LIMIT $7",
        matching(3)
    )
}

/// Messages of one state by event type and priority, one query per state
/// so each reads its partial index.
const COUNTS: [(MessageState, &str); 3] = [
    (
        MessageState::Queued,
        "SELECT event_type, priority, count(*) FROM mailroom.messages
          WHERE state = 'queued' GROUP BY event_type, priority",
    ),
    (
        MessageState::Inflight,
        "SELECT event_type, priority, count(*) FROM mailroom.messages
          WHERE state = 'inflight' GROUP BY event_type, priority",
    ),
    (
        MessageState::Dead,
        "SELECT event_type, priority, count(*) FROM mailroom.messages
          WHERE state = 'dead' GROUP BY event_type, priority",
    ),
];

const DUE: &str = "SELECT count(*), min(available_at) FROM mailroom.messages
    WHERE state = 'queued' AND available_at <= $1";

/// The earliest due time of each type's messages due at `$1`.
const OLDEST_DUE_BY_TYPE: &str = "SELECT event_type, min(available_at) FROM mailroom.messages
    WHERE state = 'queued' AND available_at <= $1 GROUP BY event_type";

pub(super) fn summary(
    row: &Row,
    errors: &Errors,
    policies: &Policies,
) -> Result<DeadLetter, StoreError> {
    let event_type: String = row.get(1);
    Ok(DeadLetter {
        id: MessageId(row.get(0)),
        max_attempts: budget(row.get(7), &event_type, policies),
        event_type,
        key: row.get(2),
        source: row.get(3),
        correlation_id: row.get(4),
        priority: priority(row.get(5), errors)?,
        attempts: count(row.get(6)),
        last_error: row.get(8),
        plugin_digest: row.get(9),
        payload_bytes: u64::try_from(row.get::<_, i32>(10)).unwrap_or(0),
        created_at: row.get(11),
        dead_at: row.get(12),
    })
}

impl PgStore {
    pub(crate) async fn dead_letters(
        &self,
        filter: DeadLetterFilter,
    ) -> Result<DeadLetterPage, StoreError> {
        let limit = filter.page_size();
        let (after_dead, after_seq) = filter.after()?;
        let m = filter.matching();
        let errors = self.errors();
        let client = self.client().await?;
        let rows = client
            .query(
                &page_sql(),
                &[
                    &after_dead,
                    &after_seq,
                    &m.event_type,
                    &m.error_contains,
                    &m.died_after,
                    &m.died_before,
                    &i64::try_from(limit + 1).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        let rows = rows
            .iter()
            .map(|row| Ok((summary(row, errors, &self.inner.policies)?, row.get(13))))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(crate::store::dead_letters::dead_letter_page(rows, limit))
    }

    pub(crate) async fn message(&self, id: MessageId) -> Result<StoredMessage, StoreError> {
        use super::queue::{LEASE_JOIN, MESSAGE_COLUMNS, PAYLOAD_COLUMN};
        let errors = self.errors();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {MESSAGE_COLUMNS}, m.payload
                       FROM mailroom.messages m {LEASE_JOIN} WHERE m.id = $1"
                ),
                &[&id.0],
            )
            .await
            .map_err(|e| errors.pg(&e))?
            .ok_or(StoreError::NoSuchMessage { id })?;
        let (m, _) = super::queue::message_summary(&row, errors, &self.inner.policies)?;
        Ok(StoredMessage {
            summary: m.summary,
            state: m.state,
            available_at: m.available_at,
            lease: m.lease,
            payload: row.get(PAYLOAD_COLUMN),
        })
    }

    pub(crate) async fn redrive(&self, selection: Selection) -> Result<usize, StoreError> {
        let now = self.now();
        self.on_dead(
            &selection,
            "UPDATE mailroom.messages m SET state = 'queued', attempts = 0, available_at = $1,
                    dead_at = NULL, updated_at = $1",
            "FROM",
            &[&now],
            true,
        )
        .await
    }

    pub(crate) async fn purge(&self, selection: Selection) -> Result<usize, StoreError> {
        self.on_dead(&selection, "DELETE FROM mailroom.messages m", "USING", &[], false)
            .await
    }

    pub(crate) async fn count_dead_letters(
        &self,
        m: DeadLetterMatch,
    ) -> Result<u64, StoreError> {
        let errors = self.errors();
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM mailroom.messages WHERE state = 'dead' AND {}",
                    matching(1)
                ),
                &[&m.event_type, &m.error_contains, &m.died_after, &m.died_before],
            )
            .await
            .map_err(|e| errors.pg(&e))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs `statement` (an UPDATE or DELETE of `mailroom.messages m`
    /// without WHERE, whose own parameters are `params`; `join` is the word
    /// that adds a table to it: FROM or USING) on the dead letters
    /// `selection` names; `wake` notifies hosts (the messages are queued
    /// again).
    async fn on_dead(
        &self,
        selection: &Selection,
        statement: &str,
        join: &str,
        params: &[&(dyn ToSql + Sync)],
        wake: bool,
    ) -> Result<usize, StoreError> {
        let n = params.len();
        let id;
        let conditions;
        let limit: Option<i64>;
        let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
        let sql = match selection.as_matching() {
            None => {
                let Selection::One(one) = selection else {
                    unreachable!("only one message has no conditions")
                };
                id = one.0;
                all.push(&id);
                format!("{statement} WHERE state = 'dead' AND id = ${}", n + 1)
            }
            Some((m, most)) => {
                conditions = m;
                limit = most.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
                all.extend([
                    &conditions.event_type as &(dyn ToSql + Sync),
                    &conditions.error_contains,
                    &conditions.died_after,
                    &conditions.died_before,
                    &limit,
                ]);
                // Picked once (materialized): a subquery with a limit
                // under `IN` may be run again per row and pick others.
                format!(
                    "WITH picked AS MATERIALIZED (
                        SELECT seq FROM mailroom.messages WHERE state = 'dead' AND {}
                         ORDER BY dead_at, seq LIMIT ${}
                         FOR UPDATE SKIP LOCKED)
                     {statement} {join} picked WHERE m.seq = picked.seq AND m.state = 'dead'",
                    matching(n + 1),
                    n + 5
                )
            }
        };
        let errors = self.errors();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
        let changed = tx
            .execute(&sql, &all)
            .await
            .map_err(|e| errors.pg(&e))?;
        if wake && changed > 0 {
            notify(&tx, errors).await?;
        }
        tx.commit().await.map_err(|e| errors.pg(&e))?;
        if changed == 0
            && let Selection::One(id) = selection
        {
            return Err(not_dead(*id, self.message(*id).await));
        }
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    pub(crate) async fn stats(&self) -> Result<Stats, StoreError> {
        let registry = self.plugin_registry().await?;
        let served = registry.served_event_types();
        let now = self.now();
        let errors = self.errors();
        let client = self.client().await?;
        let mut counts = Vec::new();
        for (state, sql) in COUNTS {
            for row in client.query(sql, &[]).await.map_err(|e| errors.pg(&e))? {
                counts.push(CountRow {
                    state,
                    event_type: row.get(0),
                    priority: priority(row.get(1), errors)?,
                    count: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                });
            }
        }
        let due = client
            .query_one(DUE, &[&now])
            .await
            .map_err(|e| errors.pg(&e))?;
        let oldest: Option<Millis> = due.get(1);
        let by_type = client
            .query(OLDEST_DUE_BY_TYPE, &[&now])
            .await
            .map_err(|e| errors.pg(&e))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        drop(client);
        let paused = self.paused().await?;
        Ok(Stats::from_rows(
            counts,
            &served,
            u64::try_from(due.get::<_, i64>(0)).unwrap_or(0),
            oldest,
            now,
        )
        .with_queues(by_type, &paused, &registry, now)
        .with_limits(&self.inner.policies))
    }
}
