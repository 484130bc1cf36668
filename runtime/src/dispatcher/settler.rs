//! Committing finished deliveries: everything that finished since the last
//! commit goes into one transaction (group commit), in a task of its own so
//! the dispatcher never waits for a commit before starting deliveries.
//!
//! While deliveries are still running, a group waits up to [`LINGER`] for
//! their outcomes to join it, until it holds half a batch: much of a
//! transaction's cost is per commit (the pages it writes), so a group of 32
//! costs far less per message than the groups of a few that form when every
//! commit starts as soon as the last one ends. An idle host, or one whose
//! last delivery just finished, commits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::backoff::Retry;
use super::delivery::Finished;
use crate::clock::SharedClock;
use crate::store::{Settled, Settlement, Store, StoreError};
use crate::metrics::Metrics;
use crate::state_machine::Failure;

/// Commits outcomes and reports each one (log line and metrics).
pub(crate) struct Settler {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<Metrics>,
    /// Notified after every commit.
    pub(crate) committed: Arc<Notify>,
    /// Deliveries running: their outcomes are worth waiting for.
    pub(crate) running: Arc<AtomicUsize>,
    /// The group a commit waits to fill while deliveries run.
    pub(crate) group: usize,
}

/// How long a group waits for running deliveries' outcomes: far below the
/// latency a message may take, far above the time between outcomes under
/// load.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

impl Settler {
    /// Starts the task. At most `backlog` outcomes wait uncommitted before
    /// senders are held back. The task ends when every sender is dropped and
    /// what it received is committed.
    pub(crate) fn spawn(self, backlog: usize) -> (mpsc::Sender<Finished>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        (tx, tokio::spawn(self.run(rx, backlog.max(1))))
    }

    async fn run(self, mut rx: mpsc::Receiver<Finished>, max_batch: usize) {
        let mut batch = Vec::new();
        let mut retry = Retry::store("committing delivery outcomes");
        while rx.recv_many(&mut batch, max_batch).await > 0 {
            self.linger(&mut rx, &mut batch, max_batch).await;
            self.commit(&mut retry, std::mem::take(&mut batch)).await;
        }
    }

    /// Lets `batch` grow toward a group while deliveries are running, for
    /// at most [`LINGER`].
    async fn linger(
        &self,
        rx: &mut mpsc::Receiver<Finished>,
        batch: &mut Vec<Finished>,
        max_batch: usize,
    ) {
        let until = tokio::time::Instant::now() + LINGER;
        let group = self.group.min(max_batch);
        while batch.len() < group && self.running.load(Ordering::Relaxed) > 0 {
            let room = max_batch - batch.len();
            match tokio::time::timeout_at(until, rx.recv_many(batch, room)).await {
                Ok(received) if received > 0 => {}
                // Every sender dropped, or the wait is over.
                _ => return,
            }
        }
    }

    /// Commits `batch` in one transaction, retrying (backing off) while the
    /// store fails: the leases stay held meanwhile, until they expire. A
    /// store that reported damage gets nothing more: the outcomes are
    /// dropped, and the messages are delivered again once it is restored.
    async fn commit(&self, retry: &mut Retry, mut batch: Vec<Finished>) {
        loop {
            if self.store.health().damage().is_some() {
                tracing::warn!(
                    outcomes = batch.len(),
                    "outcomes not committed: the store is damaged; their messages are delivered again once it is restored"
                );
                return;
            }
            let (returned, result) = self.store.settle(batch).await;
            batch = returned;
            match result {
                Ok(results) => {
                    retry.succeeded();
                    self.metrics.committed(batch.len());
                    let now = self.clock.now_ms();
                    for (finished, result) in batch.iter().zip(results) {
                        self.metrics.delivered(
                            &finished.claimed.event_type,
                            &finished.plugin,
                            finished.took,
                            &finished.settlement,
                            &result,
                        );
                        log_outcome(finished, &result, now);
                    }
                    self.committed.notify_one();
                    return;
                }
                Err(e) => tokio::time::sleep(retry.failed(&e)).await,
            }
        }
    }
}

fn log_outcome(f: &Finished, result: &Result<Settled, StoreError>, now: i64) {
    let c = &f.claimed;
    let took_ms = u64::try_from(f.took.as_millis()).unwrap_or(u64::MAX);
    let reason = match &f.settlement {
        Settlement::Fail(crate::state_machine::Failure::Retry { reason, .. })
        | Settlement::Fail(Failure::Fatal { reason }) => reason.as_str(),
        _ => "",
    };
    macro_rules! line {
        ($level:ident, $outcome:expr, $($rest:tt)*) => {
            tracing::$level!(
                message_id = %c.id(), event_type = %c.event_type, plugin = %f.plugin, attempt = c.attempts,
                took_ms, outcome = $outcome, $($rest)*
            )
        };
    }
    match result {
        Ok(Settled::Acked) => {
            let emitted = match &f.settlement {
                Settlement::Ack { follow_ups } => follow_ups.len(),
                Settlement::Fail(_) => 0,
            };
            line!(info, "acked", emitted, "delivered");
        }
        Ok(Settled::Requeued { available_at }) => {
            let retry_in_ms = available_at - now;
            line!(
                warn,
                "retry",
                retry_in_ms,
                reason,
                "delivery failed; will retry"
            );
        }
        Ok(Settled::Dead) => line!(error, "dead", reason, "delivery failed; dead-lettered"),
        Err(e) => line!(warn, "lost", error = %e, "outcome not committed"),
    }
}
