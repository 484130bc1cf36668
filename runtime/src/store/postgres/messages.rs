//! The hot path on PostgreSQL: enqueue, claim, release and settle. Each is
//! one transaction; the statements of a batch are pipelined over its
//! connection rather than sent one round trip at a time.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::PgStore;
use super::connect::Errors;
use super::schema::CHANNEL;
use crate::clock::{Millis, duration_ms};
use crate::message::{MessageId, NewMessage, Priority};
use crate::state_machine::{Policies, Transition};
use crate::store::claim::{Parent, TypeCaps, fair_order, split_expired, type_limit};
use crate::store::enqueue::capped_types;
use crate::store::settle::{Room, acked_follow_ups, decide_claimed};
use crate::store::{Claimed, Enqueued, Lease, SettleEntry, Settled, Settlement, StoreError};

/// Inserts the messages given column by column, in order, skipping those
/// whose key is stored, remembered from a removed message, or carried by an
/// earlier message of the same statement; answers the ids inserted.
const INSERT: &str = "INSERT INTO mailroom.messages
        (id, event_type, payload, key, source, correlation_id, priority, state, attempts,
         max_attempts, available_at, created_at, updated_at, depth)
    SELECT id, event_type, payload, key, source, correlation_id, priority, 'queued', 0,
           max_attempts, available_at, $10, $10, depth
      FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[],
                  $7::int2[], $8::int4[], $9::int8[], $11::int4[]) WITH ORDINALITY
           AS m(id, event_type, payload, key, source, correlation_id, priority, max_attempts,
                available_at, depth, n)
     WHERE m.key IS NULL
        OR NOT EXISTS (SELECT 1 FROM mailroom.retained_keys r WHERE r.key = m.key)
     ORDER BY n
    ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
    RETURNING id";

/// Serializes the enqueues of one capped event type (`$1`) until commit.
const CAPACITY_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('mailroom.max_queued'), hashtext($1))";

/// How many messages of type `$1` are queued, counting at most `$2`.
const QUEUED_UP_TO: &str = "SELECT count(*) FROM (SELECT 1 FROM mailroom.messages
    WHERE state = 'queued' AND event_type = $1 LIMIT $2) q";

/// The stored messages holding these keys, and the removed ones whose keys
/// are still remembered.
const BY_KEYS: &str = "SELECT key, id FROM mailroom.messages WHERE key = ANY($1)
    UNION ALL SELECT key, id FROM mailroom.retained_keys WHERE key = ANY($1)";

/// The first due queued messages of each routable type (`$1`, each with
/// the most of it to take in `$7`), in claim order, locked unless another
/// claimer holds them; the first `$3` of all of them, in the order of
/// `fair_order` (priority, then turns across types, then age), are taken
/// under the lease. Read per type, so messages of types no plugin handles
/// are never scanned past.
const CLAIM: &str = "WITH candidates AS (
        SELECT t.event_type, c.seq, c.priority
          FROM unnest($1::text[], $7::int8[]) AS t(event_type, cap)
        CROSS JOIN LATERAL (
            SELECT m.seq, m.priority FROM mailroom.messages m
             WHERE m.state = 'queued' AND m.event_type = t.event_type AND m.available_at <= $2
               AND NOT EXISTS (SELECT 1 FROM mailroom.paused_event_types p
                                WHERE p.event_type = t.event_type)
             ORDER BY m.priority DESC, m.seq
             LIMIT t.cap
             FOR UPDATE SKIP LOCKED
        ) c
    ), picked AS (
        SELECT seq FROM (
            SELECT seq, priority,
                   row_number() OVER (PARTITION BY event_type, priority ORDER BY seq) AS turn
              FROM candidates
        ) turns
        ORDER BY priority DESC, turn, seq
        LIMIT $3
    )
    UPDATE mailroom.messages m
       SET state = 'inflight', attempts = m.attempts + 1, lease_owner = $4, lease_token = $5,
           lease_expires_at = $6, updated_at = $2
      FROM picked
     WHERE m.seq = picked.seq AND m.state = 'queued'
    RETURNING m.id, m.event_type, m.payload, m.key, m.source, m.correlation_id, m.priority,
              m.attempts, m.max_attempts, m.created_at, m.seq, m.depth";

/// The earliest due time among queued messages of the types `$1`: one
/// index probe per type (`messages_due`).
const NEXT_DUE: &str = "SELECT min(d.available_at) FROM unnest($1::text[]) AS t(event_type)
    CROSS JOIN LATERAL (
        SELECT m.available_at FROM mailroom.messages m
         WHERE m.state = 'queued' AND (m.event_type || '') = t.event_type
           AND NOT EXISTS (SELECT 1 FROM mailroom.paused_event_types p
                            WHERE p.event_type = t.event_type)
         ORDER BY (m.event_type || ''), m.available_at
         LIMIT 1
    ) d";

const RELEASE: &str = "UPDATE mailroom.messages m
       SET state = 'queued', attempts = greatest(m.attempts - 1, 0), lease_owner = NULL,
           lease_token = NULL, lease_expires_at = NULL, updated_at = $1
      FROM unnest($2::uuid[], $3::text[]) AS r(id, token)
     WHERE m.id = r.id AND m.state = 'inflight' AND m.lease_token = r.token";

const ACK: &str = "DELETE FROM mailroom.messages m
     USING unnest($1::uuid[], $2::text[]) AS r(id, token)
     WHERE m.id = r.id AND m.state = 'inflight' AND m.lease_token = r.token
    RETURNING m.id";

/// Moves in-flight messages per their transitions, guarded by the lease.
pub(super) const APPLY_FAILURES: &str = "UPDATE mailroom.messages m
       SET state = r.state, available_at = coalesce(r.available_at, m.available_at),
           last_error = r.last_error, dead_at = r.dead_at,
           last_plugin_digest = coalesce(r.digest, m.last_plugin_digest),
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $8
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[],
                  $7::text[]) AS r(id, token, state, available_at, last_error, dead_at, digest)
     WHERE m.id = r.id AND m.state = 'inflight' AND m.lease_token = r.token
    RETURNING m.id";

/// A failure's transition, as the columns [`APPLY_FAILURES`] takes.
#[derive(Debug, Default)]
pub(super) struct FailureRows {
    ids: Vec<uuid::Uuid>,
    tokens: Vec<String>,
    states: Vec<&'static str>,
    available_at: Vec<Option<i64>>,
    last_errors: Vec<String>,
    dead_at: Vec<Option<i64>>,
    digests: Vec<Option<String>>,
}

impl FailureRows {
    pub(super) fn push(
        &mut self,
        lease: &Lease,
        transition: &Transition,
        digest: Option<&str>,
        now: Millis,
    ) {
        let (state, available_at, last_error, dead_at) = match transition {
            Transition::Requeue {
                available_at,
                last_error,
            } => ("queued", Some(*available_at), last_error, None),
            Transition::Dead { last_error } => ("dead", None, last_error, Some(now)),
        };
        self.ids.push(lease.id.0);
        self.tokens.push(lease.token.clone());
        self.states.push(state);
        self.available_at.push(available_at);
        self.last_errors.push(last_error.clone());
        self.dead_at.push(dead_at);
        self.digests.push(digest.map(str::to_owned));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Applies every row; returns the ids whose lease was still held.
    pub(super) async fn apply(
        &self,
        tx: &Transaction<'_>,
        now: Millis,
        errors: &Errors,
    ) -> Result<HashSet<uuid::Uuid>, StoreError> {
        if self.is_empty() {
            return Ok(HashSet::new());
        }
        let stmt = tx
            .prepare_cached(APPLY_FAILURES)
            .await
            .map_err(|e| errors.pg(&e))?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &self.ids,
                    &self.tokens,
                    &self.states,
                    &self.available_at,
                    &self.last_errors,
                    &self.dead_at,
                    &self.digests,
                    &now,
                ],
            )
            .await
            .map_err(|e| errors.pg(&e))?;
        Ok(rows.iter().map(|r| r.get::<_, uuid::Uuid>(0)).collect())
    }
}

/// Inserts `messages` in order with one statement inside `tx`; each comes
/// with the message whose handler emitted it, if any.
async fn insert_all(
    tx: &Transaction<'_>,
    messages: &[(&NewMessage, Option<Parent<'_>>)],
    policies: &Policies,
    now: Millis,
    errors: &Errors,
) -> Result<Vec<Enqueued>, StoreError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let n = messages.len();
    let (mut ids, mut event_types, mut payloads, mut keys, mut sources) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut correlations, mut priorities, mut budgets, mut due, mut depths) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (m, inherited) in messages {
        let id = MessageId::new();
        ids.push(id.0);
        event_types.push(m.event_type.as_str());
        payloads.push(m.payload.as_slice());
        keys.push(m.key.as_deref());
        sources.push(m.source.as_deref());
        correlations.push(
            m.correlation_id
                .clone()
                .or_else(|| inherited.map(|p| p.correlation_id.to_owned()))
                .unwrap_or_else(|| id.to_string()),
        );
        priorities.push(rank(m.priority));
        budgets.push(
            i32::try_from(
                m.max_attempts
                    .unwrap_or_else(|| policies.for_event_type(&m.event_type).max_attempts),
            )
            .unwrap_or(i32::MAX),
        );
        due.push(now.saturating_add(duration_ms(m.delay)));
        depths.push(i32::try_from(Parent::child_depth(*inherited)).unwrap_or(i32::MAX));
    }
    let insert = tx
        .prepare_cached(INSERT)
        .await
        .map_err(|e| errors.pg(&e))?;
    let inserted: HashSet<uuid::Uuid> = tx
        .query(
            &insert,
            &[
                &ids,
                &event_types,
                &payloads,
                &keys,
                &sources,
                &correlations,
                &priorities,
                &budgets,
                &due,
                &now,
                &depths,
            ],
        )
        .await
        .map_err(|e| errors.pg(&e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Only a key can conflict (ids are fresh UUIDs): the rest answer the
    // stored message's id.
    let conflicting: Vec<&str> = messages
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !inserted.contains(*id))
        .filter_map(|((m, _), _)| m.key.as_deref())
        .collect();
    let stored: std::collections::HashMap<String, uuid::Uuid> = if conflicting.is_empty() {
        std::collections::HashMap::new()
    } else {
        tx.query(BY_KEYS, &[&conflicting])
            .await
            .map_err(|e| errors.pg(&e))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    };
    messages
        .iter()
        .zip(ids)
        .map(|((m, _), id)| {
            if inserted.contains(&id) {
                return Ok(Enqueued {
                    id: MessageId(id),
                    duplicate: false,
                });
            }
            m.key
                .as_deref()
                .and_then(|key| stored.get(key))
                .map(|existing| Enqueued {
                    id: MessageId(*existing),
                    duplicate: true,
                })
                .ok_or_else(|| errors.corrupt("a message was neither stored nor a duplicate"))
        })
        .collect()
}

/// The stored rank of a priority.
pub(super) fn rank(priority: Priority) -> i16 {
    i16::try_from(priority.rank()).unwrap_or(1)
}

/// The priority a stored rank names.
pub(super) fn priority(rank: i16, errors: &Errors) -> Result<Priority, StoreError> {
    Priority::from_rank(i64::from(rank))
        .ok_or_else(|| errors.corrupt(format!("unknown priority rank {rank}")))
}

/// A stored counter, which is never negative.
pub(super) fn count(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// The attempt budget of a stored message: its own, or its type's policy
/// when it was enqueued through SQL without one.
pub(super) fn budget(stored: Option<i32>, event_type: &str, policies: &Policies) -> u32 {
    stored.map_or_else(
        || policies.for_event_type(event_type).max_attempts,
        count,
    )
}

impl PgStore {
    pub(crate) async fn enqueue_batch(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        for (index, message) in messages.iter().enumerate() {
            message
                .validate(self.inner.max_payload_bytes)
                .map_err(|source| {
                    if messages.len() == 1 {
                        StoreError::Invalid(source)
                    } else {
                        StoreError::InvalidInBatch { index, source }
                    }
                })?;
        }
        self.timed(async {
            let mut client = self.client().await?;
            let errors = self.errors();
            let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
            let capped = capped_types(&messages, &self.inner.policies);
            // One enqueuer at a time per capped type, so two hosts cannot
            // both fit into the last free place (types in one order: no
            // deadlock). Uncapped types take no lock.
            for (event_type, _) in &capped {
                tx.execute(CAPACITY_LOCK, &[event_type])
                    .await
                    .map_err(|e| errors.pg(&e))?;
            }
            let rows: Vec<(&NewMessage, Option<Parent<'_>>)> =
                messages.iter().map(|m| (m, None)).collect();
            let out = insert_all(&tx, &rows, &self.inner.policies, self.now(), errors).await?;
            for (event_type, max_queued) in capped {
                let limit = i64::try_from(max_queued.saturating_add(1)).unwrap_or(i64::MAX);
                let n: i64 = tx
                    .query_one(QUEUED_UP_TO, &[&event_type, &limit])
                    .await
                    .map_err(|e| errors.pg(&e))?
                    .get(0);
                if u64::try_from(n).unwrap_or(0) > max_queued {
                    // Dropping `tx` rolls the inserts back.
                    return Err(StoreError::OverCapacity {
                        event_type,
                        max_queued,
                    });
                }
            }
            notify(&tx, errors).await?;
            tx.commit().await.map_err(|e| errors.pg(&e))?;
            Ok(out)
        })
        .await
    }

    pub(crate) async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        event_types: Vec<String>,
        caps: TypeCaps,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.timed(async {
            if !self.inner.registered.load(std::sync::atomic::Ordering::Relaxed) {
                self.register_host().await?;
            }
            let now = self.now();
            let expires = now.saturating_add(duration_ms(lease));
            let token = uuid::Uuid::now_v7().to_string();
            let client = self.client().await?;
            let errors = self.errors();
            let stmt = client
                .prepare_cached(CLAIM)
                .await
                .map_err(|e| errors.pg(&e))?;
            let mut types = event_types;
            types.sort();
            types.dedup();
            let type_caps: Vec<i64> = types
                .iter()
                .map(|t| i64::try_from(type_limit(limit, &caps, t)).unwrap_or(i64::MAX))
                .collect();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    &stmt,
                    &[&types, &now, &limit, &self.inner.owner.id, &token, &expires, &type_caps],
                )
                .await
                .map_err(|e| errors.pg(&e))?;
            let mut claimed = rows
                .iter()
                .map(|row| self.claimed(row, &token, expires))
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING gives no order guarantee: restore the claim order.
            fair_order(&mut claimed, |(seq, c)| (c.event_type.as_str(), c.priority, *seq));
            let claimed = claimed.into_iter().map(|(_, c)| c).collect();
            let (live, expired) = split_expired(claimed, &self.inner.policies, now);
            if !expired.is_empty() {
                // A crash before this commits leaves them in flight: their
                // lease expires and the next claim expires them again.
                let mut rows = FailureRows::default();
                for (lease, transition) in &expired {
                    rows.push(lease, transition, None, now);
                }
                let mut client = client;
                let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
                rows.apply(&tx, now, errors).await?;
                tx.commit().await.map_err(|e| errors.pg(&e))?;
            }
            Ok(live)
        })
        .await
    }

    fn claimed(&self, row: &Row, token: &str, expires: Millis) -> Result<(i64, Claimed), StoreError> {
        let errors = self.errors();
        let event_type: String = row.get(1);
        let max_attempts = budget(row.get(8), &event_type, &self.inner.policies);
        Ok((
            row.get(10),
            Claimed {
                lease: Lease {
                    id: MessageId(row.get(0)),
                    token: token.to_owned(),
                },
                event_type,
                payload: row.get(2),
                key: row.get(3),
                source: row.get(4),
                correlation_id: row.get(5),
                priority: priority(row.get(6), errors)?,
                attempts: count(row.get(7)),
                max_attempts,
                created_at: row.get(9),
                lease_expires_at: expires,
                depth: count(row.get(11)),
            },
        ))
    }

    pub(crate) async fn next_due_at(
        &self,
        event_types: Vec<String>,
    ) -> Result<Option<Millis>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let errors = self.errors();
            let stmt = client
                .prepare_cached(NEXT_DUE)
                .await
                .map_err(|e| errors.pg(&e))?;
            let row = client
                .query_one(&stmt, &[&event_types])
                .await
                .map_err(|e| errors.pg(&e))?;
            Ok(row.get(0))
        })
        .await
    }

    pub(crate) async fn release(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        self.timed(async {
            let mut client = self.client().await?;
            let errors = self.errors();
            let ids: Vec<uuid::Uuid> = leases.iter().map(|l| l.id.0).collect();
            let tokens: Vec<&str> = leases.iter().map(|l| l.token.as_str()).collect();
            let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
            let released = tx
                .execute(RELEASE, &[&self.now(), &ids, &tokens])
                .await
                .map_err(|e| errors.pg(&e))?;
            if released > 0 {
                notify(&tx, errors).await?;
            }
            tx.commit().await.map_err(|e| errors.pg(&e))?;
            Ok(usize::try_from(released).unwrap_or(usize::MAX))
        })
        .await
    }

    pub(crate) async fn settle<E>(
        &self,
        batch: Vec<E>,
    ) -> (Vec<E>, Result<Vec<Result<Settled, StoreError>>, StoreError>)
    where
        E: SettleEntry + Send + Sync + 'static,
    {
        let result = self.timed(self.settle_in(&batch)).await;
        (batch, result)
    }

    async fn settle_in<E: SettleEntry>(
        &self,
        batch: &[E],
    ) -> Result<Vec<Result<Settled, StoreError>>, StoreError> {
        let now = self.now();
        let policies = &self.inner.policies;
        let errors = self.errors();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| errors.pg(&e))?;
        // The capped queues the acks emit into: locked as an enqueue locks
        // them, and counted, so emitted events cannot overfill them.
        let emitted = batch.iter().flat_map(|e| match e.settlement() {
            Settlement::Ack { follow_ups } => follow_ups.as_slice(),
            Settlement::Fail(_) => &[],
        });
        let mut counts = Vec::new();
        for (event_type, max) in capped_types(emitted, policies) {
            tx.execute(CAPACITY_LOCK, &[&event_type])
                .await
                .map_err(|e| errors.pg(&e))?;
            let limit = i64::try_from(max.saturating_add(1)).unwrap_or(i64::MAX);
            let n: i64 = tx
                .query_one(QUEUED_UP_TO, &[&event_type, &limit])
                .await
                .map_err(|e| errors.pg(&e))?
                .get(0);
            counts.push((event_type, u64::try_from(n).unwrap_or(0), max));
        }
        let mut room = Room::new(counts);
        // Decide every entry first: invalid follow-ups fail their entry
        // alone, as do acks whose events do not fit (a retryable failure);
        // failures get their transition from the state machine.
        let mut results: Vec<Option<Result<Settled, StoreError>>> = Vec::with_capacity(batch.len());
        let mut ack_ids = Vec::new();
        let mut ack_tokens = Vec::new();
        let mut failures = FailureRows::default();
        let mut transitions = Vec::new();
        for entry in batch {
            let claimed = entry.claimed();
            match entry.settlement() {
                Settlement::Ack { follow_ups } => {
                    if let Some(invalid) = follow_ups
                        .iter()
                        .find_map(|m| m.validate(self.inner.max_payload_bytes).err())
                    {
                        results.push(Some(Err(StoreError::Invalid(invalid))));
                        transitions.push(None);
                        continue;
                    }
                    if let Err(failure) = room.take(follow_ups) {
                        let transition = decide_claimed(claimed, &failure, policies, now);
                        failures.push(&claimed.lease, &transition, entry.digest(), now);
                        transitions.push(Some(transition));
                        results.push(None);
                        continue;
                    }
                    ack_ids.push(claimed.lease.id.0);
                    ack_tokens.push(claimed.lease.token.as_str());
                    transitions.push(None);
                }
                Settlement::Fail(failure) => {
                    let transition = decide_claimed(claimed, failure, policies, now);
                    failures.push(&claimed.lease, &transition, entry.digest(), now);
                    transitions.push(Some(transition));
                }
            }
            results.push(None);
        }
        let mut acked: HashSet<uuid::Uuid> = if ack_ids.is_empty() {
            HashSet::new()
        } else {
            let ack = tx.prepare_cached(ACK).await.map_err(|e| errors.pg(&e))?;
            tx.query(&ack, &[&ack_ids, &ack_tokens])
                .await
                .map_err(|e| errors.pg(&e))?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let failed = failures.apply(&tx, now, errors).await?;
        let results: Vec<Result<Settled, StoreError>> = batch
            .iter()
            .zip(results)
            .zip(transitions)
            .map(|((entry, decided), transition)| {
                if let Some(result) = decided {
                    return result;
                }
                let id = entry.claimed().lease.id;
                // A transition was applied as a failure (an ack whose events
                // did not fit included); otherwise it was an ack, and the
                // first of several acks of one message takes it.
                let held = match transition {
                    Some(_) => failed.contains(&id.0),
                    None => acked.remove(&id.0),
                };
                if !held {
                    return Err(StoreError::LeaseLost { id });
                }
                Ok(transition.as_ref().map_or(Settled::Acked, Settled::of))
            })
            .collect();
        // Every acked entry's follow-ups, in one statement.
        let follow_ups: Vec<(&NewMessage, Option<Parent<'_>>)> =
            acked_follow_ups(batch, &results).collect();
        if !follow_ups.is_empty() {
            insert_all(&tx, &follow_ups, policies, now, errors).await?;
            notify(&tx, errors).await?;
        }
        tx.commit().await.map_err(|e| errors.pg(&e))?;
        Ok(results)
    }
}

/// Wakes every listening host when the transaction commits (several
/// notifications in one transaction are delivered as one).
pub(super) async fn notify(tx: &Transaction<'_>, errors: &Errors) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map(|_| ())
        .map_err(|e| errors.pg(&e))
}
