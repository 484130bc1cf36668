//! The loop that ties the mailbox to the plugins: claim due messages for the
//! event types that have a handler, run the handlers concurrently (bounded),
//! and commit their outcomes in groups.
//!
//! It wakes at once when this process enqueues (a [`Notify`]); when another
//! process commits (the store's [`CommitSignal`]: the WAL file's
//! notifications on SQLite, `LISTEN` on PostgreSQL), with a slow poll as the
//! safety net; when the next delayed message falls due; and after every
//! group of outcomes it commits. Idle, it sleeps.
//! Expired leases are reclaimed at start and every reclaim interval.
//!
//! On shutdown it stops claiming, lets running deliveries finish within the
//! grace period, commits their outcomes, and releases the rest (their
//! attempt is not counted).

mod delivery;
mod settler;
mod slots;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant, sleep_until};

use crate::clock::SharedClock;
use crate::config::DispatcherConfig;
use crate::store::{Claimed, CommitSignal, Lease, Store, StoreError};
use crate::routing::Routes;
use delivery::{Finished, deliver};
use settler::Settler;
pub(crate) use slots::TypeSlots;

/// A delivery starts only if its lease outlasts the plugin time limit by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// After a store error, wait this long before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The dispatcher and what it shares with the rest of the host.
#[derive(Debug)]
pub struct Dispatcher {
    pub(crate) store: Store,
    pub(crate) routes: Routes,
    pub(crate) settings: DispatcherConfig,
    pub(crate) clock: SharedClock,
    /// Poked by in-process enqueues and routing changes.
    pub(crate) wake: Arc<Notify>,
    /// Wakes when another process commits to the store.
    pub(crate) commits: CommitSignal,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The plugin time limit: how long a delivery may take.
    pub(crate) delivery_timeout: Duration,
    /// Counts each committed outcome.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Each event type's `concurrency`.
    pub(crate) type_slots: TypeSlots,
}

/// The dispatcher's working state.
struct Run {
    /// Claimed, waiting for a free delivery slot. Claiming a whole batch at
    /// once (rather than one message per free slot) keeps claims and commits
    /// large, which is where the throughput comes from.
    ready: VecDeque<Claimed>,
    running: JoinSet<Finished>,
    /// The lease of each running delivery, to release it if it is cut short.
    leases: HashMap<TaskId, Lease>,
    /// The event type of each running delivery, and how many of each type run.
    task_types: HashMap<TaskId, String>,
    running_by_type: HashMap<String, usize>,
    /// Finished deliveries, handed to the settler to commit.
    finished: Vec<Finished>,
    /// Claim before sleeping again.
    want_claim: bool,
    next_due: Option<i64>,
    next_reclaim: Instant,
}

impl Dispatcher {
    /// Runs until shutdown is signalled. Store failures are logged and
    /// retried; they never end the loop.
    pub async fn run(mut self) {
        // Commits run in their own task, so deliveries keep starting while
        // a group of outcomes is being committed (and the next group grows).
        let (settler, settled) = Settler {
            store: self.store.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            // After each commit: follow-ups may be claimable.
            committed: self.wake.clone(),
        }
        .spawn(self.settings.batch_size * 4);
        let mut run = Run {
            ready: VecDeque::new(),
            running: JoinSet::new(),
            leases: HashMap::new(),
            task_types: HashMap::new(),
            running_by_type: HashMap::new(),
            finished: Vec::new(),
            want_claim: true,
            next_due: None,
            next_reclaim: Instant::now(),
        };
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            if run.next_reclaim <= Instant::now() {
                self.reclaim(&mut run).await;
            }
            if run.want_claim {
                self.claim(&mut run).await;
            }
            self.start(&mut run).await;
            let deadline = self.next_wake(&run);
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {}
                Some(done) = run.running.join_next_with_id(), if !run.running.is_empty() => {
                    run.collect(done);
                    while let Some(done) = run.running.try_join_next_with_id() {
                        run.collect(done);
                    }
                }
                () = self.wake.notified() => run.want_claim = true,
                // Busy, it claims after every commit anyway; other
                // processes' commits are looked for once it is idle.
                () = self.commits.changed(), if run.running.is_empty() && run.ready.is_empty() => {
                    run.want_claim = true;
                }
                () = sleep_until(deadline) => self.on_tick(&mut run).await,
            }
            for finished in run.finished.drain(..) {
                // Waits only when commits fall far behind: back-pressure.
                if settler.send(finished).await.is_err() {
                    tracing::error!(
                        "the settler stopped; outcomes will be redelivered after their lease"
                    );
                }
            }
        }
        self.drain(run, settler, settled).await;
    }

    /// Claims a batch when fewer messages are waiting than there are
    /// delivery slots.
    async fn claim(&self, run: &mut Run) {
        let mut held = run.running_by_type.clone();
        for c in &run.ready {
            *held.entry(c.event_type.clone()).or_default() += 1;
        }
        let types = self
            .type_slots
            .claimable(&self.routes.event_types(), &held);
        if types.is_empty() {
            // Claimed again when a plugin is loaded (the loader wakes us).
            run.want_claim = false;
            return;
        }
        if run.ready.len() >= self.settings.concurrency {
            return;
        }
        let limit = self.settings.batch_size;
        let lease = self.settings.lease;
        let claimed = async {
            let claimed = self.store.claim(limit, lease, &types).await?;
            // Only asked when the queue ran dry: when to look again.
            let next_due = if claimed.len() < limit {
                self.store.next_due_at(&types).await?
            } else {
                None
            };
            Ok::<_, StoreError>((claimed, next_due))
        }
        .await;
        let (claimed, next_due) = match claimed {
            Ok(c) => c,
            Err(e) => {
                self.store_failed("claim", &e);
                run.want_claim = true;
                run.next_due = Some(self.clock.now_ms() + crate::clock::duration_ms(STORE_RETRY));
                return;
            }
        };
        // A full batch means more may be waiting.
        run.want_claim = claimed.len() == limit;
        run.next_due = next_due;
        run.ready.extend(claimed);
    }

    /// Starts deliveries from the claimed batch while slots are free.
    async fn start(&self, run: &mut Run) {
        let mut release = Vec::new();
        let now = self.clock.now_ms();
        // A message whose lease would run out before its handler could time
        // out goes back unspent rather than risk being claimed twice.
        let needed = crate::clock::duration_ms(self.delivery_timeout + LEASE_MARGIN);
        while run.running.len() < self.settings.concurrency {
            let Some(c) = run.ready.pop_front() else {
                break;
            };
            match self.routes.get(&c.event_type) {
                Some(plugin)
                    if c.lease_expires_at - now >= needed
                        && self.type_slots.may_start(&c.event_type, &run.running_by_type) =>
                {
                    let lease = c.lease.clone();
                    let event_type = c.event_type.clone();
                    let handle = run.running.spawn(deliver(plugin, c));
                    run.leases.insert(handle.id(), lease);
                    *run.running_by_type.entry(event_type.clone()).or_default() += 1;
                    run.task_types.insert(handle.id(), event_type);
                }
                // Unloaded since the claim, held too long, or over its
                // type's concurrency (a claim of many at once may overshoot
                // it): hand it back unspent.
                _ => release.push(c.lease),
            }
        }
        if !release.is_empty() {
            run.want_claim = true;
            self.release(release).await;
        }
    }

    /// When to wake if nothing else happens first.
    fn next_wake(&self, run: &Run) -> Instant {
        let now = Instant::now();
        let mut wake = (now + self.settings.poll_interval).min(run.next_reclaim);
        if let Some(due) = run.next_due {
            let wait = u64::try_from(due - self.clock.now_ms()).unwrap_or(0);
            wake = wake.min(now + Duration::from_millis(wait));
        }
        wake
    }

    /// A timer fired: claim if a delayed message fell due, or (the slow
    /// poll) if another process committed.
    async fn on_tick(&mut self, run: &mut Run) {
        if run.next_due.is_some_and(|due| due <= self.clock.now_ms()) || self.commits.poll().await {
            run.want_claim = true;
        }
    }

    async fn reclaim(&self, run: &mut Run) {
        run.next_reclaim = Instant::now() + self.settings.reclaim_interval;
        let idle = run.running.is_empty();
        let reclaimed = async {
            let reclaimed = self.store.reclaim().await?;
            // Every interval, busy or not, so remembered idempotency keys
            // are forgotten and messages past their ttl expire on time.
            let swept = self.store.sweep().await?;
            if swept.expired > 0 {
                tracing::warn!(
                    expired = swept.expired,
                    "dead-lettered queued messages that outlived their event type's ttl"
                );
            }
            if idle {
                self.store.maintain().await?;
            }
            Ok::<_, StoreError>(reclaimed)
        }
        .await;
        match reclaimed {
            Ok(r) if r.requeued + r.dead > 0 => {
                self.metrics.reclaimed(&r);
                tracing::warn!(
                    requeued = r.requeued,
                    dead = r.dead,
                    dead_hosts = r.dead_owners,
                    "reclaimed messages whose lease expired or whose host is gone"
                );
                run.want_claim = true;
            }
            Ok(_) => {}
            Err(e) => self.store_failed("reclaim", &e),
        }
    }

    async fn release(&self, leases: Vec<Lease>) {
        let n = leases.len();
        if let Err(e) = self.store.release(leases).await {
            tracing::warn!(
                "could not release {n} claimed messages ({e}); they return when their lease expires"
            );
        }
    }

    /// Shutdown: no more claims; running deliveries get the grace period.
    async fn drain(
        &self,
        mut run: Run,
        settler: tokio::sync::mpsc::Sender<Finished>,
        settled: tokio::task::JoinHandle<()>,
    ) {
        let waiting: Vec<Lease> = run.ready.drain(..).map(|c| c.lease).collect();
        if !waiting.is_empty() {
            self.release(waiting).await;
        }
        if !run.running.is_empty() {
            tracing::info!(
                running = run.running.len(),
                grace = ?self.settings.shutdown_grace,
                "shutting down: waiting for running deliveries"
            );
        }
        let deadline = Instant::now() + self.settings.shutdown_grace;
        while !run.running.is_empty() {
            tokio::select! {
                Some(done) = run.running.join_next_with_id() => run.collect(done),
                () = sleep_until(deadline) => break,
            }
        }
        run.running.abort_all();
        while let Some(done) = run.running.join_next_with_id().await {
            run.collect(done);
        }
        for finished in run.finished.drain(..) {
            let _ = settler.send(finished).await;
        }
        // Closing the channel lets the settler commit what it holds and stop.
        drop(settler);
        if let Err(e) = settled.await {
            tracing::error!("the settler stopped abnormally: {e}");
        }
        let unfinished: Vec<Lease> = run.leases.drain().map(|(_, lease)| lease).collect();
        if !unfinished.is_empty() {
            tracing::info!(
                released = unfinished.len(),
                "released deliveries that did not finish in time"
            );
            self.release(unfinished).await;
        }
    }

    fn store_failed(&self, what: &str, e: &StoreError) {
        tracing::error!("the store failed during {what}: {e}; retrying");
    }
}

impl Run {
    /// One delivery of the task `id` no longer runs.
    fn stopped(&mut self, id: TaskId) {
        if let Some(event_type) = self.task_types.remove(&id)
            && let Some(n) = self.running_by_type.get_mut(&event_type)
        {
            *n = n.saturating_sub(1);
        }
    }

    fn collect(&mut self, done: Result<(TaskId, Finished), tokio::task::JoinError>) {
        match &done {
            Ok((id, _)) => self.stopped(*id),
            Err(e) => self.stopped(e.id()),
        }
        match done {
            Ok((id, finished)) => {
                self.leases.remove(&id);
                self.finished.push(finished);
            }
            // Aborted at shutdown: its lease stays in `leases` to be released.
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                // A delivery task never panics (plugin calls turn every
                // failure into an outcome); if one did, its message comes back
                // when the lease expires.
                let lease = self.leases.remove(&e.id());
                tracing::error!(message_id = ?lease.map(|l| l.id), "a delivery task failed: {e}");
            }
        }
    }
}
