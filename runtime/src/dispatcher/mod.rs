//! The loop that ties the mailbox to the plugins: claim due messages for the
//! event types that have a handler, run the handlers concurrently (bounded),
//! and commit their outcomes in groups.
//!
//! A claim asks for as many messages of each event type as the delivery
//! slots get through in 20 ms at the pace that type's deliveries have been
//! taking, or for the free slots if more, up to a batch in all (`pace`).
//! Claims run beside the loop: the next is asked for as soon as less than a
//! whole one waits, and deliveries go on while it is made. On SQLite a claim
//! rides with the next commit, in its transaction (see `settler`); on
//! PostgreSQL it runs on another pooled connection than the commits. While a
//! backlog lasts, the watch on other processes' commits is set aside.
//!
//! It wakes at once when this process enqueues (a [`Notify`]); when another
//! process commits (the store's [`CommitSignal`]: the WAL file's
//! notifications on SQLite, `LISTEN` on PostgreSQL), with a slow poll as the
//! safety net; when the next delayed message falls due; and after every
//! group of outcomes it commits. Idle, it sleeps.
//! Expired leases are reclaimed at start and every reclaim interval.
//!
//! Scheduling is fair across event types (`fair`): claims take due messages
//! in turns across types, a free slot goes to the waiting type with the
//! fewest deliveries running, and while more than one type is routable
//! `dispatcher.reserved_slots` slots are kept for types with nothing
//! running. When every waiting message is of a type that may not take the
//! free slots, the dispatcher claims again for the other types only.
//!
//! On shutdown it stops claiming, lets running deliveries finish within the
//! grace period, commits their outcomes, and releases the rest (their
//! attempt is not counted); the store work after the grace period gets a
//! fixed bound ([`SHUTDOWN_STORE_BOUND`]), whatever the store is doing.
//!
//! Every loop here that can fail (claims, commits, reclaims and heartbeats,
//! claims handed back for want of lease) backs off and logs through
//! [`crate::backoff::Retry`]; a store that reported damage gets no more
//! claims, commits or reclaims.

mod delivery;
mod fair;
mod pace;
mod ready;
mod settler;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant, sleep_until};

use crate::backoff::Retry;
use crate::clock::SharedClock;
use crate::config::DispatcherConfig;
use crate::store::{Claimed, CommitSignal, Lease, Store, StoreError, TypeCaps, type_limit};
use crate::routing::Routes;
use delivery::{Finished, deliver};
use pace::{Paces, Plan};
use ready::Ready;
use settler::{ClaimOrder, Settler, SettlerInbox};
pub(crate) use slots::TypeSlots;

/// A delivery starts only if its lease outlasts the plugin time limit by this much.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The shortest `dispatcher.lease` that works with a plugin time limit of
/// `timeout`: a delivery needs `timeout` + [`LEASE_MARGIN`] of lease left
/// when it starts, and a claimed message may wait up to another margin for
/// its delivery slot. A shorter lease would hand every claim straight back.
pub fn min_lease(timeout: Duration) -> Duration {
    timeout + LEASE_MARGIN * 2
}

/// How long the shutdown waits for the last outcomes to commit and the
/// unfinished leases to be released, beyond the grace period. Past it the
/// host stops anyway: a lease left behind is reclaimed later (which costs
/// that message an attempt, never the message).
pub const SHUTDOWN_STORE_BOUND: Duration = Duration::from_secs(3);

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
    /// `plugins.max_emit_bytes`: what one delivery's follow-ups may weigh.
    pub(crate) max_emit_bytes: usize,
    /// Each event type's `concurrency`.
    pub(crate) type_slots: TypeSlots,
}

/// A running delivery, as the dispatcher keeps track of it.
struct Running {
    lease: Lease,
    event_type: String,
}

/// What a claim took, and (when it ran dry) when the next message falls due.
type Claim = (Vec<Claimed>, Option<crate::clock::Millis>);

/// What a claim asked for.
#[derive(Debug, Clone, Copy)]
struct Asked {
    limit: usize,
    /// Only for slots no waiting message may take (`fair`), not the next
    /// batch.
    top_up: bool,
}

/// The dispatcher's working state.
struct Run {
    /// Claimed, waiting for a free delivery slot. Claiming a whole batch at
    /// once (rather than one message per free slot) keeps claims and commits
    /// large, which is where the throughput comes from.
    ready: Ready,
    running: JoinSet<Finished>,
    /// How many are in `running`, for the settler.
    running_count: Arc<AtomicUsize>,
    /// Each running delivery's lease (to release it if it is cut short)
    /// and event type.
    running_of: HashMap<TaskId, Running>,
    /// How many deliveries run per event type.
    running_by_type: HashMap<String, usize>,
    /// The leases of deliveries aborted at shutdown, to be released.
    aborted: Vec<Lease>,
    /// Slots are free but no waiting message may take them (`fair`):
    /// claim for the other types.
    starved: bool,
    /// Finished deliveries, handed to the settler to commit.
    finished: Vec<Finished>,
    /// Claim before sleeping again.
    want_claim: bool,
    /// The claim being made: its answer to come, and what was asked.
    claiming: Option<(oneshot::Receiver<Result<Claim, StoreError>>, Asked)>,
    /// Where claims go to ride with the next commit, when the store says
    /// they should ([`Store::claims_join_commits`]).
    claim_orders: Option<mpsc::Sender<ClaimOrder>>,
    /// The last claim took all it asked for: more is waiting, and this
    /// dispatcher will look again after each of its commits and as the
    /// claimed messages waiting fall below a batch.
    backlog: bool,
    /// Shared with the settler: a claim order is on its way (a backlog,
    /// where claims join commits), and its next commit waits for it.
    claim_coming: Arc<AtomicBool>,
    /// How long each type's deliveries take: how many messages a claim
    /// asks for.
    paces: Paces,
    next_due: Option<i64>,
    next_reclaim: Instant,
    /// No claim before this (backing off after failed claims, or claims
    /// that had to be handed back).
    claim_after: Option<Instant>,
    claim_retry: Retry,
    reclaim_retry: Retry,
    /// Claimed messages handed back because too little of their lease was left.
    handback: Retry,
}

impl Dispatcher {
    /// Runs until shutdown is signalled. Store failures are logged and
    /// retried with backoff; they never end the loop.
    pub async fn run(mut self) {
        // Commits run in their own task, so deliveries keep starting while
        // a group of outcomes is being committed (and the next group grows).
        let running = Arc::new(AtomicUsize::new(0));
        let claim_coming = Arc::new(AtomicBool::new(false));
        let (inbox, settled) = Settler {
            store: self.store.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            // After each commit: follow-ups may be claimable.
            committed: self.wake.clone(),
            running: running.clone(),
            // Half a batch: groups of a whole one made commits with
            // follow-ups slower (docs/BENCHMARKS.md).
            group: (self.settings.batch_size / 2).max(1),
            claim_coming: claim_coming.clone(),
        }
        .spawn(self.settings.batch_size * 4);
        // Follow-ups waiting to be committed hold KiB of this budget: as
        // much as the running deliveries may buffer, so the host never holds
        // more than twice that in follow-ups, however slow the store.
        let budget = follow_up_budget_kib(self.settings.concurrency, self.max_emit_bytes);
        let pending = Arc::new(tokio::sync::Semaphore::new(budget as usize));
        let mut run = Run {
            ready: Ready::default(),
            running: JoinSet::new(),
            running_count: running,
            running_of: HashMap::new(),
            running_by_type: HashMap::new(),
            aborted: Vec::new(),
            starved: false,
            finished: Vec::new(),
            want_claim: true,
            claiming: None,
            claim_orders: self
                .store
                .claims_join_commits()
                .then(|| inbox.claims.clone()),
            backlog: false,
            claim_coming,
            paces: Paces::default(),
            next_due: None,
            next_reclaim: Instant::now(),
            claim_after: None,
            claim_retry: Retry::store("claiming messages"),
            reclaim_retry: Retry::store("reclaiming expired leases"),
            handback: Retry::store("starting claimed deliveries"),
        };
        let tick = sleep_until(self.next_wake(&run));
        tokio::pin!(tick);
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            if run.next_reclaim <= Instant::now() {
                self.reclaim(&mut run).await;
            }
            if run.want_claim
                && run.claiming.is_none()
                && run.claim_after.is_none_or(|at| at <= Instant::now())
            {
                run.claim_after = None;
                self.claim(&mut run);
            }
            self.start(&mut run).await;
            // Other processes' commits matter only once idle (or starved)
            // with no claim on its way, whose answer says whether more
            // waits; through a backlog, the watch on them is set aside.
            // (Armed, every page the settler writes raises a file event:
            // arming while a claim is made only to disarm at its answer
            // cost a few percent of a core through a backlog.)
            let attending = ((run.running.is_empty() && run.ready.is_empty()) || run.starved)
                && run.claim_after.is_none()
                && run.claiming.is_none();
            if attending {
                self.commits.attend(true);
            } else if run.backlog {
                self.commits.attend(false);
            }
            // Re-armed only to wake sooner, or once it fired: re-armed on
            // every turn (the poll interval moves with the clock), it cost a
            // timer registration per delivery. Woken early, it only looks.
            let deadline = self.next_wake(&run);
            if tick.is_elapsed() || deadline < tick.deadline() {
                tick.as_mut().reset(deadline);
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {}
                Some(done) = run.running.join_next_with_id(), if !run.running.is_empty() => {
                    run.collect(done);
                    while let Some(done) = run.running.try_join_next_with_id() {
                        run.collect(done);
                    }
                }
                answer = async {
                    match run.claiming.as_mut() {
                        Some((claiming, _)) => claiming.await,
                        None => std::future::pending().await,
                    }
                }, if run.claiming.is_some() => {
                    if let Some((_, asked)) = run.claiming.take() {
                        match answer {
                            Ok(answer) => self.claimed(&mut run, answer, asked),
                            // Only a panic in the task making it drops a
                            // claim unanswered; whatever it claimed returns
                            // when its lease expires.
                            Err(_) => run.claim_failed(&"the claim was never answered"),
                        }
                    }
                }
                // Backing off, wake-ups wait (a notification is kept): they
                // could only repeat the failure.
                () = self.wake.notified(), if run.claim_after.is_none() => run.want_claim = true,
                // Busy, it claims after every commit anyway; other
                // processes' commits are looked for once it is idle.
                () = self.commits.changed(), if attending => {
                    run.want_claim = true;
                }
                () = &mut tick => self.on_tick(&mut run).await,
            }
            for mut finished in run.finished.drain(..) {
                // Waits only when commits fall far behind: back-pressure.
                let kib = u32::try_from(finished.follow_up_bytes().div_ceil(1024))
                    .unwrap_or(u32::MAX)
                    .min(budget);
                if kib > 0 {
                    finished.held = pending.clone().acquire_many_owned(kib).await.ok();
                }
                if inbox.outcomes.send(finished).await.is_err() {
                    tracing::error!(
                        "the settler stopped; outcomes will be redelivered after their lease"
                    );
                }
            }
        }
        self.drain(run, inbox, settled).await;
    }

    /// Claimed messages waiting below which the next claim is asked for: a
    /// batch (or a slot each, if more). `claim` skips its counting at or
    /// above it, and `start` asks as the waiting fall below it.
    fn enough_waiting(&self) -> usize {
        self.settings.batch_size.max(self.settings.concurrency)
    }

    /// Starts a claim of the types with fewer messages waiting than their
    /// room ([`Paces::plan`]), up to that room of each; or, when
    /// slots are free that no waiting message may take, of as many as are
    /// free, of the types neither waiting nor running.
    fn claim(&self, run: &mut Run) {
        // A batch is waiting: the common case, asked after every commit, so
        // it is answered before anything is counted. Below that, each type
        // is claimed a whole claim ahead, so deliveries do not stop while it
        // is made (half a batch ran dry on 2 cores while the claim waited
        // behind a commit: docs/BENCHMARKS.md).
        if run.ready.len() >= self.enough_waiting() && !run.starved {
            return;
        }
        let waiting: HashMap<&str, usize> = run.ready.types().collect();
        // Types at their `concurrency` (running or claimed) are not claimed.
        let mut held = run.running_by_type.clone();
        for (t, n) in &waiting {
            *held.entry((*t).to_owned()).or_default() += n;
        }
        let routable = self.routes.event_types();
        run.paces.keep_only(&routable);
        let mut types = self.type_slots.claimable(&routable, &held);
        if types.is_empty() || self.store.health().damage().is_some() {
            // Claimed again when a plugin is loaded (the loader wakes us).
            run.want_claim = false;
            run.claim_coming.store(false, Ordering::Relaxed);
            return;
        }
        let top_up = run.starved && run.ready.len() >= self.settings.concurrency;
        let plan = if top_up {
            types.retain(|t| {
                !run.running_by_type.contains_key(t) && !waiting.contains_key(t.as_str())
            });
            (!types.is_empty()).then(|| Plan {
                event_types: types,
                limit: self.settings.concurrency.saturating_sub(run.running.len()).max(1),
                caps: TypeCaps::new(),
            })
        } else {
            let slots = pace::Slots {
                concurrency: self.settings.concurrency,
                free: self.settings.concurrency.saturating_sub(run.running.len()),
                batch_size: self.settings.batch_size,
            };
            run.paces.plan(types, &waiting, slots)
        };
        let Some(Plan {
            event_types: types,
            limit,
            caps,
        }) = plan
        else {
            // Enough of every type is waiting: claimed again after the
            // next commit, which must not wait for the claim.
            run.want_claim = false;
            run.claim_coming.store(false, Ordering::Relaxed);
            return;
        };
        let asked = Asked { limit, top_up };
        // The claim runs beside the loop, which goes on starting and
        // collecting deliveries meanwhile; its answer comes back through
        // `Run::claiming` (see [`Dispatcher::claimed`]).
        let (answer, claiming) = oneshot::channel();
        let lease = self.settings.lease;
        match &run.claim_orders {
            Some(orders) => {
                let order = ClaimOrder {
                    limit,
                    lease,
                    event_types: types,
                    caps,
                    answer,
                };
                // At most one claim is out at a time, so the order always
                // fits; a settler that stopped answers nothing, and the
                // claim fails.
                let _ = orders.try_send(order);
            }
            None => {
                let store = self.store.clone();
                tokio::spawn(async move {
                    let claimed = match store.claim_capped(limit, lease, &types, &caps).await {
                        Ok(claimed) => claimed,
                        Err(e) => {
                            let _ = answer.send(Err(e));
                            return;
                        }
                    };
                    let next_due = next_due_after(&store, &claimed, limit, &caps, &types).await;
                    let _ = answer.send(Ok((claimed, next_due)));
                });
            }
        }
        run.want_claim = false;
        run.claiming = Some((claiming, asked));
    }

    /// The answer to a claim.
    fn claimed(&self, run: &mut Run, answer: Result<Claim, StoreError>, asked: Asked) {
        let (claimed, next_due) = match answer {
            Ok(c) => {
                run.claim_retry.succeeded();
                c
            }
            Err(e) => {
                run.claim_failed(&e);
                return;
            }
        };
        // A full claim means more may be waiting; so does a wake-up that
        // came while the claim was made (it may have read the store before
        // what woke us was committed).
        let full = claimed.len() == asked.limit;
        run.want_claim |= full;
        run.backlog = full && !asked.top_up;
        // Through a backlog on SQLite, the settler holds its next commit
        // for the next claim: one transaction per batch instead of two. The
        // claim is asked for at once, or once less than a batch waits;
        // where it is not (`claim`), the settler is told so.
        run.claim_coming
            .store(run.backlog && run.claim_orders.is_some(), Ordering::Relaxed);
        run.next_due = next_due;
        run.ready.extend(claimed);
    }

    /// Starts deliveries from the claimed batch while slots are free, each
    /// free slot going to the message `fair::pick` chooses.
    async fn start(&self, run: &mut Run) {
        let mut release = Vec::new();
        let now = self.clock.now_ms();
        let held = run.ready.len();
        // A message whose lease would run out before its handler could time
        // out goes back unspent rather than risk being claimed twice.
        let needed = crate::clock::duration_ms(self.delivery_timeout + LEASE_MARGIN);
        let (mut started, mut short) = (0_usize, None);
        // With one routable type there is nobody to keep slots for.
        let slots = fair::Slots {
            concurrency: self.settings.concurrency,
            reserved: if self.routes.event_type_count() > 1 {
                self.settings.reserved_slots()
            } else {
                0
            },
        };
        loop {
            let fewest = fair::fewest_running(run.ready.types().map(|(t, _)| t), &run.running_by_type);
            let waiting = run.ready.iter().map(|c| c.event_type.as_str());
            let Some(index) =
                fair::pick(waiting, &run.running_by_type, run.running.len(), slots, fewest)
            else {
                break;
            };
            let Some(c) = run.ready.remove(index) else {
                break;
            };
            let left = c.lease_expires_at - now;
            match self.routes.get(&c.event_type) {
                Some(plugin)
                    if left >= needed
                        && self.type_slots.may_start(&c.event_type, &run.running_by_type) =>
                {
                    let lease = c.lease.clone();
                    let event_type = c.event_type.clone();
                    let handle = run.running.spawn(deliver(plugin, c));
                    run.running_count.fetch_add(1, Ordering::Relaxed);
                    // The type's name is copied when it starts running, not
                    // per delivery.
                    match run.running_by_type.get_mut(&event_type) {
                        Some(n) => *n += 1,
                        None => {
                            run.running_by_type.insert(event_type.clone(), 1);
                        }
                    }
                    run.running_of.insert(handle.id(), Running { lease, event_type });
                    started += 1;
                }
                Some(_) if left < needed => {
                    short = Some(short.map_or(left, |s: i64| s.min(left)));
                    release.push(c.lease);
                }
                // Unloaded since the claim, or over its type's concurrency (a
                // claim of many at once may overshoot it): hand it back unspent.
                _ => release.push(c.lease),
            }
        }
        // Less than a batch left waiting: the next claim is asked for now,
        // not only after the next commit, so that it is answered before the
        // batch runs out (asked after commits, claims came back to a few
        // messages left, and with instance reuse the dispatcher had nothing
        // to run for 16-33% of the benchmark's run: docs/BENCHMARKS.md).
        let enough = self.enough_waiting();
        if held >= enough && run.ready.len() < enough {
            run.want_claim = true;
        }
        let starved = run.running.len() < self.settings.concurrency && !run.ready.is_empty();
        if starved && !run.starved {
            run.want_claim = true;
        }
        run.starved = starved;
        if let Some(left) = short {
            // Held too long: handed back unspent. Claiming again at once
            // would only repeat it, so it is said and backed off.
            let why = format!(
                "claimed messages had {left} ms of their lease left, less than plugins.timeout + {LEASE_MARGIN:?} ({needed} ms), and were handed back; raise dispatcher.lease or lower dispatcher.batch_size"
            );
            let delay = run.handback.failed(&why);
            run.claim_later(delay);
        } else if started > 0 {
            run.handback.succeeded();
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
        if let Some(at) = run.claim_after {
            wake = wake.min(at);
        }
        if let Some(due) = run.next_due {
            let wait = u64::try_from(due - self.clock.now_ms()).unwrap_or(0);
            wake = wake.min(now + Duration::from_millis(wait));
        }
        wake
    }

    /// A timer fired: claim if a delayed message fell due, or (the slow
    /// poll) if another process committed.
    async fn on_tick(&mut self, run: &mut Run) {
        if run.next_due.is_some_and(|due| due <= self.clock.now_ms()) {
            // Acted on once: the claim's answer sets the next due time. A
            // claim skipped because enough of every type waits is made after
            // the next commit.
            run.next_due = None;
            run.want_claim = true;
        }
        if self.commits.poll().await {
            run.want_claim = true;
        }
    }

    async fn reclaim(&self, run: &mut Run) {
        run.next_reclaim = Instant::now() + self.settings.reclaim_interval;
        if self.store.health().damage().is_some() {
            return;
        }
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
                run.reclaim_retry.succeeded();
                self.metrics.reclaimed(&r);
                tracing::warn!(
                    requeued = r.requeued,
                    dead = r.dead,
                    dead_hosts = r.dead_owners,
                    "reclaimed messages whose lease expired or whose host is gone"
                );
                run.want_claim = true;
            }
            Ok(_) => run.reclaim_retry.succeeded(),
            Err(e) => {
                let delay = run.reclaim_retry.failed(&e);
                run.next_reclaim = Instant::now() + delay.max(self.settings.reclaim_interval);
            }
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
        settler: SettlerInbox,
        settled: tokio::task::JoinHandle<()>,
    ) {
        // No more claims: the last outcomes are committed without waiting.
        run.claim_coming.store(false, Ordering::Relaxed);
        // A claim still being made is waited for, and handed back with the
        // rest, within one bound.
        let bound = Instant::now() + SHUTDOWN_STORE_BOUND;
        if let Some((claiming, _)) = run.claiming.take()
            // Not in time: its messages return when their lease expires.
            && let Ok(Ok(Ok((claimed, _)))) = tokio::time::timeout_at(bound, claiming).await
        {
            run.ready.extend(claimed);
        }
        let waiting: Vec<Lease> = run.ready.take_all().into_iter().map(|c| c.lease).collect();
        if !waiting.is_empty() {
            self.release_within(waiting, bound).await;
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
        // Whatever the store is doing (locked by another process, a full
        // disk), the store work left gets a fixed bound: a blocked SQLite
        // call cannot be cancelled, so it is left behind rather than waited
        // for. An outcome not committed is delivered again; a lease not
        // released is reclaimed later, costing that message an attempt.
        let bound = Instant::now() + SHUTDOWN_STORE_BOUND;
        let settler_abort = settled.abort_handle();
        let committed = tokio::time::timeout_at(bound, async {
            for finished in run.finished.drain(..) {
                let _ = settler.outcomes.send(finished).await;
            }
            // Closing the channels lets the settler commit what it holds and stop.
            drop(settler);
            drop(run.claim_orders.take());
            if let Err(e) = settled.await {
                tracing::error!("the settler stopped abnormally: {e}");
            }
        })
        .await;
        if committed.is_err() {
            settler_abort.abort();
            tracing::warn!(
                "the last outcomes were not committed within {SHUTDOWN_STORE_BOUND:?}; their messages are delivered again"
            );
        }
        let mut unfinished = std::mem::take(&mut run.aborted);
        unfinished.extend(run.running_of.drain().map(|(_, r)| r.lease));
        if !unfinished.is_empty() {
            tracing::info!(
                released = unfinished.len(),
                "releasing deliveries that did not finish in time"
            );
            self.release_within(unfinished, bound.max(Instant::now() + LEASE_MARGIN))
                .await;
        }
    }

    /// Releases `leases`, giving up at `deadline` (they return when their
    /// lease expires).
    async fn release_within(&self, leases: Vec<Lease>, deadline: Instant) {
        let n = leases.len();
        if tokio::time::timeout_at(deadline, self.release(leases))
            .await
            .is_err()
        {
            tracing::warn!(
                "could not release {n} claimed messages in time (the store did not answer); they return when their lease expires, at the cost of an attempt"
            );
        }
    }
}

/// When the next message of `event_types` falls due, asked only when a claim
/// of up to `limit` came back short, of the types that ran dry (fewer
/// claimed than their cap in `caps`): when to look again. A type that
/// reached its cap is claimed again once fewer of it wait. The claim is
/// committed: should this look fail, its messages are still delivered, and
/// the poll stands in for the due time.
async fn next_due_after(
    store: &Store,
    claimed: &[Claimed],
    limit: usize,
    caps: &TypeCaps,
    event_types: &[String],
) -> Option<crate::clock::Millis> {
    if claimed.len() >= limit {
        return None;
    }
    let mut taken: HashMap<&str, usize> = HashMap::new();
    for c in claimed {
        *taken.entry(c.event_type.as_str()).or_default() += 1;
    }
    let dry: Vec<String> = event_types
        .iter()
        .filter(|t| taken.get(t.as_str()).copied().unwrap_or(0) < type_limit(limit, caps, t))
        .cloned()
        .collect();
    if dry.is_empty() {
        return None;
    }
    store.next_due_at(&dry).await.unwrap_or_else(|e| {
        tracing::warn!("could not read when the next message falls due: {e}");
        None
    })
}

/// The follow-up budget in KiB: `concurrency` deliveries' worth, within
/// what a semaphore counts.
fn follow_up_budget_kib(concurrency: usize, max_emit_bytes: usize) -> u32 {
    let kib = concurrency.max(1).saturating_mul(max_emit_bytes.div_ceil(1024)).max(1);
    let most = tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize);
    u32::try_from(kib.min(most)).unwrap_or(u32::MAX)
}

impl Run {
    /// A claim failed: the next one backs off.
    fn claim_failed(&mut self, error: &dyn std::fmt::Display) {
        let delay = self.claim_retry.failed(error);
        self.want_claim = true;
        self.claim_later(delay);
    }

    /// No claim for `delay` (backing off): the settler's groups do not wait
    /// for one meanwhile.
    fn claim_later(&mut self, delay: Duration) {
        self.claim_after = Some(Instant::now() + delay);
        self.claim_coming.store(false, Ordering::Relaxed);
    }

    /// One delivery of the task `id` no longer runs.
    fn collect(&mut self, done: Result<(TaskId, Finished), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        self.running_count.fetch_sub(1, Ordering::Relaxed);
        let running = self.running_of.remove(&id);
        if let Some(r) = &running
            && let Some(count) = self.running_by_type.get_mut(&r.event_type)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running_by_type.remove(&r.event_type);
            }
        }
        match done {
            Ok((_, finished)) => {
                self.paces.observe(&finished.claimed.event_type, finished.took);
                self.finished.push(finished);
            }
            // Aborted at shutdown: its lease is released with the rest.
            Err(e) if e.is_cancelled() => self.aborted.extend(running.map(|r| r.lease)),
            Err(e) => {
                // A delivery task never panics (plugin calls turn every
                // failure into an outcome); if one did, its message comes back
                // when the lease expires.
                tracing::error!(message_id = ?running.map(|r| r.lease.id), "a delivery task failed: {e}");
            }
        }
    }
}
