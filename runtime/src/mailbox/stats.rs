//! Counts for operators: by state, by event type and by priority, messages
//! waiting for a handler, and how long the oldest due message has waited.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::{Mailbox, MailboxError};
use crate::clock::Millis;
use crate::message::Priority;
use crate::state_machine::MessageState;

/// Message counts per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Waiting to be claimed.
    pub queued: u64,
    /// Claimed, being handled.
    pub inflight: u64,
    /// Dead-lettered.
    pub dead: u64,
}

impl StateCounts {
    fn add(&mut self, state: MessageState, n: u64) {
        match state {
            MessageState::Queued => self.queued += n,
            MessageState::Inflight => self.inflight += n,
            MessageState::Dead => self.dead += n,
        }
    }

    /// All messages counted.
    pub fn total(&self) -> u64 {
        self.queued + self.inflight + self.dead
    }
}

/// A snapshot of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Totals per state.
    #[serde(flatten)]
    pub totals: StateCounts,
    /// Per event type.
    pub by_event_type: BTreeMap<String, StateCounts>,
    /// Per priority.
    pub by_priority: BTreeMap<Priority, StateCounts>,
    /// Queued messages that are due now.
    pub due: u64,
    /// Queued messages whose event type no running host has a plugin for:
    /// they wait, spending no attempts, until one is loaded.
    pub waiting_for_handler: u64,
    /// How long the longest-waiting due message has been due, in ms.
    pub oldest_due_age_ms: Option<Millis>,
}

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

/// Queued messages due at `?1`, and the earliest due time among them.
pub(super) const DUE: &str =
    "SELECT count(*), min(available_at) FROM messages INDEXED BY messages_due
    WHERE state = 'queued' AND available_at <= ?1";

impl Mailbox {
    /// Counts the store's messages.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn stats(&self) -> Result<Stats, MailboxError> {
        let now = self.now();
        let registry = self.plugin_registry()?;
        let served = registry.served_event_types();
        let read = || -> rusqlite::Result<Stats> {
            let mut stats = Stats::default();
            for (state, sql) in COUNTS {
                let mut stmt = self.conn.prepare_cached(sql)?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let event_type: String = row.get(0)?;
                    let priority: Priority = row.get(1)?;
                    let n = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
                    stats.totals.add(state, n);
                    stats.by_priority.entry(priority).or_default().add(state, n);
                    if state == MessageState::Queued && !served.contains(event_type.as_str()) {
                        stats.waiting_for_handler += n;
                    }
                    stats
                        .by_event_type
                        .entry(event_type)
                        .or_default()
                        .add(state, n);
                }
            }
            let (due, oldest_due): (i64, Option<Millis>) = self
                .conn
                .prepare_cached(DUE)?
                .query_row(params![now], |row| Ok((row.get(0)?, row.get(1)?)))?;
            stats.due = u64::try_from(due).unwrap_or(0);
            stats.oldest_due_age_ms = oldest_due.map(|at| now.saturating_sub(at).max(0));
            Ok(stats)
        };
        read().map_err(|e| self.ctx.err(e))
    }
}
