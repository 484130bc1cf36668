//! Counts for operators: by state, by event type and by priority, messages
//! waiting for a handler, how long the oldest due message has waited, and
//! the hosts serving the store; per event type, whether it is paused, how
//! long its oldest due message has waited and which plugin serves it on
//! each host. Backends read the rows; this module adds them up, the same way
//! for both.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::queue::PausedType;
use super::registry::{HostRecord, PluginRegistry};
use crate::clock::Millis;
use crate::message::Priority;
use crate::state_machine::{MessageState, Policies};

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

/// One event type's queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventTypeStats {
    /// Its messages per state.
    #[serde(flatten)]
    pub counts: StateCounts,
    /// Whether it is paused: no host claims its messages until it is resumed.
    pub paused: bool,
    /// How long its longest-waiting due message has been due, in ms.
    pub oldest_due_age_ms: Option<Millis>,
    /// The plugin serving it on each running host.
    pub handlers: Vec<Handler>,
    /// Its capacity (`max_queued`): enqueues beyond it are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
    /// Its messages' time to live (`ttl`), in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// The most deliveries at once per host (`concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

/// The plugin serving an event type on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handler {
    /// The host, as `hostname:pid`.
    pub host: String,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
}

/// A snapshot of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Totals per state.
    #[serde(flatten)]
    pub totals: StateCounts,
    /// Per event type: every type with messages, a handler, or a pause.
    pub by_event_type: BTreeMap<String, EventTypeStats>,
    /// Per priority.
    pub by_priority: BTreeMap<Priority, StateCounts>,
    /// Queued messages that are due now.
    pub due: u64,
    /// Queued messages whose event type no running host has a plugin for:
    /// they wait, spending no attempts, until one is loaded.
    pub waiting_for_handler: u64,
    /// How long the longest-waiting due message has been due, in ms.
    pub oldest_due_age_ms: Option<Millis>,
    /// The hosts running on this store, with what each serves.
    pub hosts: Vec<HostRecord>,
}

/// One group of counted messages, as a backend reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CountRow {
    pub(crate) state: MessageState,
    pub(crate) event_type: String,
    pub(crate) priority: Priority,
    pub(crate) count: u64,
}

impl Stats {
    /// Adds up `rows`; `served` are the event types some host serves,
    /// `due` and `oldest_due` the due count and earliest due time.
    pub(crate) fn from_rows(
        rows: Vec<CountRow>,
        served: &BTreeSet<&str>,
        due: u64,
        oldest_due: Option<Millis>,
        now: Millis,
    ) -> Self {
        let mut stats = Stats::default();
        for row in rows {
            let n = row.count;
            stats.totals.add(row.state, n);
            stats
                .by_priority
                .entry(row.priority)
                .or_default()
                .add(row.state, n);
            if row.state == MessageState::Queued && !served.contains(row.event_type.as_str()) {
                stats.waiting_for_handler += n;
            }
            stats
                .by_event_type
                .entry(row.event_type)
                .or_default()
                .counts
                .add(row.state, n);
        }
        stats.due = due;
        stats.oldest_due_age_ms = oldest_due.map(|at| now.saturating_sub(at).max(0));
        stats
    }

    /// Adds each type's queue information: `oldest_due` is the earliest due
    /// time of each type with due messages, `paused` the paused types,
    /// `registry` what the hosts serve (and the hosts themselves).
    pub(crate) fn with_queues(
        mut self,
        oldest_due: Vec<(String, Millis)>,
        paused: &[PausedType],
        registry: &PluginRegistry,
        now: Millis,
    ) -> Self {
        for (event_type, at) in oldest_due {
            self.by_event_type.entry(event_type).or_default().oldest_due_age_ms =
                Some(now.saturating_sub(at).max(0));
        }
        for p in paused {
            self.by_event_type.entry(p.event_type.clone()).or_default().paused = true;
        }
        for record in &registry.loaded {
            for event_type in &record.event_types {
                self.by_event_type
                    .entry(event_type.clone())
                    .or_default()
                    .handlers
                    .push(Handler {
                        host: record.host.clone(),
                        plugin: record.name.clone().unwrap_or_default(),
                        version: record.version.clone().unwrap_or_default(),
                    });
            }
        }
        self.hosts = registry.hosts.clone();
        self
    }

    /// Adds each type's configured limits (`max_queued`, `ttl`,
    /// `concurrency`), listing the types that have limits but no messages.
    pub(crate) fn with_limits(mut self, policies: &Policies) -> Self {
        for (event_type, limits) in &policies.limits {
            let queue = self.by_event_type.entry(event_type.clone()).or_default();
            queue.max_queued = limits.max_queued;
            queue.ttl_ms = limits
                .ttl
                .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            queue.concurrency = limits.concurrency;
        }
        self
    }
}
