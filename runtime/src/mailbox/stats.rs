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
            let mut stmt = self.conn.prepare_cached(
                "SELECT event_type, priority, state, count(*),
                        sum(state = ?1 AND available_at <= ?2),
                        min(CASE WHEN state = ?1 AND available_at <= ?2 THEN available_at END)
                   FROM messages GROUP BY event_type, priority, state",
            )?;
            let mut rows = stmt.query(params![MessageState::Queued, now])?;
            let mut stats = Stats::default();
            let mut oldest_due: Option<Millis> = None;
            while let Some(row) = rows.next()? {
                let event_type: String = row.get(0)?;
                let priority: Priority = row.get(1)?;
                let state: MessageState = row.get(2)?;
                let n = u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0);
                let due = u64::try_from(row.get::<_, Option<i64>>(4)?.unwrap_or(0)).unwrap_or(0);
                if let Some(at) = row.get::<_, Option<Millis>>(5)? {
                    oldest_due = Some(oldest_due.map_or(at, |o| o.min(at)));
                }
                stats.totals.add(state, n);
                stats.by_priority.entry(priority).or_default().add(state, n);
                stats.due += due;
                if state == MessageState::Queued && !served.contains(event_type.as_str()) {
                    stats.waiting_for_handler += n;
                }
                stats
                    .by_event_type
                    .entry(event_type)
                    .or_default()
                    .add(state, n);
            }
            stats.oldest_due_age_ms = oldest_due.map(|at| now.saturating_sub(at).max(0));
            Ok(stats)
        };
        read().map_err(|e| self.ctx.err(e))
    }
}
