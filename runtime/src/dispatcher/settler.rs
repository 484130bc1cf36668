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
//!
//! Where the store says claims join commits (SQLite), the dispatcher hands
//! its claims here too ([`ClaimOrder`]): the next commit claims in the same
//! transaction, at once rather than after a linger, and with nothing to
//! commit the claim is made alone. Through a backlog (the last claim took
//! all it asked for) the next claim is on its way within a batch of
//! deliveries, so a group waits for it rather than for half a batch: one
//! transaction per batch settles the last one and claims the next, where
//! a commit of its own beside each claim cost a second transaction (and
//! with a fresh batch not yet started, no delivery running to wait for).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::backoff::Retry;
use super::delivery::Finished;
use super::Claim;
use crate::clock::SharedClock;
use crate::store::{Claimed, Settled, Settlement, Store, StoreError, TypeCaps};
use crate::metrics::{Delivered, Metrics};
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
    /// Set by the dispatcher while a claim order is on its way: groups
    /// wait for it ([`CLAIM_WAIT`] at most).
    pub(crate) claim_coming: Arc<AtomicBool>,
}

/// A claim for the settler to make with its next commit.
pub(crate) struct ClaimOrder {
    pub(crate) limit: usize,
    pub(crate) lease: Duration,
    pub(crate) event_types: Vec<String>,
    /// The most of some types ([`TypeCaps`]).
    pub(crate) caps: TypeCaps,
    /// Where the claim's answer goes.
    pub(crate) answer: oneshot::Sender<Result<Claim, StoreError>>,
}

/// The settler's inputs.
pub(crate) struct SettlerInbox {
    /// Finished deliveries to commit.
    pub(crate) outcomes: mpsc::Sender<Finished>,
    /// Claims to make with the next commit: one at a time.
    pub(crate) claims: mpsc::Sender<ClaimOrder>,
}

/// How long a group waits for running deliveries' outcomes: far below the
/// latency a message may take, far above the time between outcomes under
/// load.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// How long a group waits for a claim order that is on its way: the
/// dispatcher orders once less than a batch waits, and the claims that
/// make a backlog hold what the slots get through in
/// [`super::pace::CLAIM_AHEAD`]. A bound, not a wait: the order comes as
/// soon as a few deliveries have started.
pub(crate) const CLAIM_WAIT: Duration = super::pace::CLAIM_AHEAD;

impl Settler {
    /// Starts the task. At most `backlog` outcomes wait uncommitted before
    /// senders are held back. The task ends when every sender of outcomes
    /// is dropped and what it received is committed.
    pub(crate) fn spawn(self, backlog: usize) -> (SettlerInbox, JoinHandle<()>) {
        let (outcomes, rx) = mpsc::channel(backlog.max(1));
        let (claims, orders) = mpsc::channel(1);
        let task = tokio::spawn(self.run(rx, orders, backlog.max(1)));
        (SettlerInbox { outcomes, claims }, task)
    }

    async fn run(
        self,
        mut rx: mpsc::Receiver<Finished>,
        mut orders: mpsc::Receiver<ClaimOrder>,
        max_batch: usize,
    ) {
        let mut batch = Vec::new();
        let mut retry = Retry::store("committing delivery outcomes");
        loop {
            let order = tokio::select! {
                biased;
                Some(order) = orders.recv() => {
                    // Whatever finished meanwhile joins the claim, without
                    // waiting for more.
                    while batch.len() < max_batch
                        && let Ok(finished) = rx.try_recv()
                    {
                        batch.push(finished);
                    }
                    Some(order)
                }
                received = rx.recv_many(&mut batch, max_batch) => {
                    if received == 0 {
                        // Every sender dropped, and all is committed.
                        return;
                    }
                    self.linger(&mut rx, &mut orders, &mut batch, max_batch).await
                }
            };
            self.commit(&mut retry, std::mem::take(&mut batch), order).await;
        }
    }

    /// Lets `batch` grow toward a group while deliveries are running, for
    /// at most [`LINGER`], and not past the arrival of a claim order (the
    /// dispatcher is running short of claimed messages), which it returns.
    /// While one is on its way, waits for it instead ([`CLAIM_WAIT`] at
    /// most, and not past `max_batch`).
    async fn linger(
        &self,
        rx: &mut mpsc::Receiver<Finished>,
        orders: &mut mpsc::Receiver<ClaimOrder>,
        batch: &mut Vec<Finished>,
        max_batch: usize,
    ) -> Option<ClaimOrder> {
        let coming = self.claim_coming.load(Ordering::Relaxed);
        let (wait, group) = if coming {
            (CLAIM_WAIT, max_batch)
        } else {
            (LINGER, self.group.min(max_batch))
        };
        let until = tokio::time::Instant::now() + wait;
        while batch.len() < group && (coming || self.running.load(Ordering::Relaxed) > 0) {
            let room = max_batch - batch.len();
            tokio::select! {
                biased;
                Some(order) = orders.recv() => return Some(order),
                received = tokio::time::timeout_at(until, rx.recv_many(batch, room)) => {
                    match received {
                        Ok(received) if received > 0 => {}
                        // Every sender dropped, or the wait is over.
                        _ => break,
                    }
                }
            }
        }
        // An order that came as the group filled joins it.
        orders.try_recv().ok()
    }

    /// Commits `batch` in one transaction, with `order`'s claim when there
    /// is one, retrying (backing off) while the store fails: the leases stay
    /// held meanwhile, until they expire, and the claim waits. A store that
    /// reported damage gets nothing more: the outcomes are dropped, and the
    /// messages are delivered again once it is restored.
    async fn commit(&self, retry: &mut Retry, mut batch: Vec<Finished>, order: Option<ClaimOrder>) {
        if batch.is_empty() {
            if let Some(order) = order {
                self.claim_alone(order).await;
            }
            return;
        }
        loop {
            if self.store.health().damage().is_some() {
                tracing::warn!(
                    outcomes = batch.len(),
                    "outcomes not committed: the store is damaged; their messages are delivered again once it is restored"
                );
                if let Some(order) = order {
                    // Refused by the store, which says why.
                    self.claim_alone(order).await;
                }
                return;
            }
            let (returned, result) = match &order {
                Some(o) => {
                    self.store
                        .settle_and_claim(batch, o.limit, o.lease, o.event_types.clone(), o.caps.clone())
                        .await
                }
                None => {
                    let (batch, result) = self.store.settle(batch).await;
                    (batch, result.map(|results| (results, Vec::new())))
                }
            };
            batch = returned;
            match result {
                Ok((results, claimed)) => {
                    retry.succeeded();
                    self.metrics.committed(batch.len());
                    self.metrics.delivered(batch.iter().zip(&results).map(|(f, result)| {
                        Delivered {
                            event_type: &f.claimed.event_type,
                            plugin: f.plugin.name(),
                            took: f.took,
                            settlement: &f.settlement,
                            result,
                        }
                    }));
                    let now = self.clock.now_ms();
                    // A line each, written together.
                    let lines = crate::logging::batch();
                    for (finished, result) in batch.iter().zip(&results) {
                        log_outcome(finished, result, now);
                    }
                    drop(lines);
                    if let Some(order) = order {
                        self.answer(order, claimed).await;
                    }
                    self.committed.notify_one();
                    return;
                }
                Err(e) => tokio::time::sleep(retry.failed(&e)).await,
            }
        }
    }

    /// Makes `order`'s claim in a transaction of its own.
    async fn claim_alone(&self, order: ClaimOrder) {
        match self
            .store
            .claim_capped(order.limit, order.lease, &order.event_types, &order.caps)
            .await
        {
            Ok(claimed) => self.answer(order, claimed).await,
            Err(e) => {
                let _ = order.answer.send(Err(e));
            }
        }
    }

    /// Answers `order` with what it claimed, and when the next message falls
    /// due if the queue ran dry.
    async fn answer(&self, order: ClaimOrder, claimed: Vec<Claimed>) {
        let next_due =
            super::next_due_after(&self.store, &claimed, order.limit, &order.caps, &order.event_types)
                .await;
        // The dispatcher stopped waiting (shutting down): the claimed
        // messages return when their lease expires.
        let _ = order.answer.send(Ok((claimed, next_due)));
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
                message_id = %c.id(), event_type = %c.event_type, plugin = f.plugin.name(), attempt = c.attempts,
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
