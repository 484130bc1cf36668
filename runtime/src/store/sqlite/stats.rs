//! Counts for operators, read from each state's partial index.

use rusqlite::params;

use super::Mailbox;
use crate::clock::Millis;
use crate::message::Priority;
use crate::state_machine::MessageState;
use crate::store::StoreError;
use crate::store::stats::{CountRow, Stats};

/// Messages of one state by event type and priority. Each state's query
/// reads that state's partial index (queued ones never touch the table),
/// so a scrape of a store holding a large backlog reads small index
/// entries rather than every row.
pub(super) const COUNTS: [(MessageState, &str); 3] = [
    (
        MessageState::Queued,
        "SELECT event_type, priority, count(*) FROM messages INDEXED BY messages_queue
          WHERE state = 'queued' GROUP BY event_type, priority",
    ),
    (
        MessageState::Inflight,
        "SELECT event_type, priority, count(*) FROM messages INDEXED BY messages_leases
          WHERE state = 'inflight' GROUP BY event_type, priority",
    ),
    (
        MessageState::Dead,
        "SELECT event_type, priority, count(*) FROM messages INDEXED BY messages_dead
          WHERE state = 'dead' GROUP BY event_type, priority",
    ),
];

/// The earliest due time of each type's messages due at `?1` (the claim
/// index carries each queued message's due time).
pub(super) const OLDEST_DUE_BY_TYPE: &str =
    "SELECT event_type, min(available_at) FROM messages INDEXED BY messages_queue
    WHERE state = 'queued' AND available_at <= ?1 GROUP BY event_type";

/// Queued messages due at `?1`, and the earliest due time among them.
pub(super) const DUE: &str =
    "SELECT count(*), min(available_at) FROM messages INDEXED BY messages_queue
    WHERE state = 'queued' AND available_at <= ?1";

impl Mailbox {
    /// Counts the store's messages.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let now = self.now();
        let registry = self.plugin_registry()?;
        let served = registry.served_event_types();
        type Read = (Vec<CountRow>, i64, Option<Millis>, Vec<(String, Millis)>);
        let read = || -> rusqlite::Result<Read> {
            let mut counts = Vec::new();
            for (state, sql) in COUNTS {
                let mut stmt = self.conn.prepare_cached(sql)?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    counts.push(CountRow {
                        state,
                        event_type: row.get(0)?,
                        priority: row.get::<_, Priority>(1)?,
                        count: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    });
                }
            }
            let (due, oldest_due): (i64, Option<Millis>) = self
                .conn
                .prepare_cached(DUE)?
                .query_row(params![now], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let by_type = self
                .conn
                .prepare_cached(OLDEST_DUE_BY_TYPE)?
                .query_map(params![now], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((counts, due, oldest_due, by_type))
        };
        let (counts, due, oldest_due, by_type) = read().map_err(|e| self.ctx.err(e))?;
        let paused = self.paused()?;
        Ok(Stats::from_rows(
            counts,
            &served,
            u64::try_from(due).unwrap_or(0),
            oldest_due,
            now,
        )
        .with_queues(by_type, &paused, &registry, now)
        .with_limits(&self.policies))
    }
}
