//! A property test: random sequences of enqueue / claim / ack / fail /
//! reclaim / redrive / purge / sweep / cancel / pause / resume against a real store, on both backends (an
//! SQLite file, a PostgreSQL database), checked after every step against a
//! small in-memory model of the contract.
//!
//! After each step: no message is lost or invented, every message is in the
//! state (and has the attempts) the model says, none is held by two live
//! leases, attempts never exceed the maximum, and `dead` is reached only by
//! the documented edges (the model has no other way to get there). The key
//! of an acked or purged message answers its original id until a sweep has
//! seen it gone for the key retention. Messages of `t1` have a ttl: past
//! it a claim or a sweep dead-letters them, and they are never handed out.

mod store_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mailroom::clock::{Clock, ManualClock, SharedClock};
use mailroom::message::{MessageId, NewMessage};
use mailroom::state_machine::{Failure, MessageState, Policies, QueueLimits, RetryPolicy};
use mailroom::store::{Claimed, Durability, OpenOptions, Selection, Settled, Store, StoreError};
use proptest::prelude::*;
use store_support::{Backend, TestLocation};

const TYPES: [&str; 3] = ["t0", "t1", "t2"];
const LEASE: Duration = Duration::from_secs(10);
const BASE_MS: i64 = 1000;
const CAP_MS: i64 = 4000;
const KEY_RETENTION: Duration = Duration::from_secs(20);
/// The ttl of `t1` (the other types have none).
const TTL_MS: i64 = 8000;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        ty: usize,
        key: Option<u8>,
        max_attempts: u32,
        delay_ms: u64,
    },
    Claim {
        n: usize,
        types: Vec<usize>,
    },
    Ack {
        pick: usize,
    },
    Retry {
        pick: usize,
    },
    Fatal {
        pick: usize,
    },
    StaleAck {
        pick: usize,
    },
    Reclaim,
    Advance {
        ms: u64,
    },
    Redrive {
        pick: Option<usize>,
    },
    Purge {
        pick: Option<usize>,
    },
    Sweep,
    /// Cancel one message by id, whatever its state (only queued ones go).
    Cancel {
        pick: usize,
    },
    /// Cancel every queued message of a type, `batch` at a time.
    CancelType {
        ty: usize,
        batch: usize,
    },
    Pause {
        ty: usize,
    },
    Resume {
        ty: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, proptest::option::weighted(0.3, 0..4u8), 1..4u32, prop_oneof![Just(0u64), 0..3000u64])
            .prop_map(|(ty, key, max_attempts, delay_ms)| Op::Enqueue { ty, key, max_attempts, delay_ms }),
        3 => (1..4usize, proptest::collection::vec(0..3usize, 1..3)).prop_map(|(n, types)| Op::Claim { n, types }),
        2 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Fatal { pick }),
        1 => any::<usize>().prop_map(|pick| Op::StaleAck { pick }),
        1 => Just(Op::Reclaim),
        2 => (0..15_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => proptest::option::of(any::<usize>()).prop_map(|pick| Op::Redrive { pick }),
        1 => proptest::option::of(any::<usize>()).prop_map(|pick| Op::Purge { pick }),
        1 => Just(Op::Sweep),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (0..3usize, 1..3usize).prop_map(|(ty, batch)| Op::CancelType { ty, batch }),
        1 => (0..3usize).prop_map(|ty| Op::Pause { ty }),
        1 => (0..3usize).prop_map(|ty| Op::Resume { ty }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Queued,
    /// Held by the lease at this index of `Harness::leases`.
    Inflight(usize),
    Dead,
}

#[derive(Debug, Clone)]
struct Msg {
    seq: u64,
    ty: usize,
    key: Option<u8>,
    state: Model,
    attempts: u32,
    max_attempts: u32,
    available_at: i64,
    lease_expires_at: i64,
    created_at: i64,
}

impl Msg {
    /// Whether it outlived its type's ttl at `now`.
    fn expired(&self, now: i64) -> bool {
        self.ty == 1 && now - self.created_at >= TTL_MS
    }
}

struct Harness {
    _at: TestLocation,
    clock: ManualClock,
    store: Store,
    msgs: BTreeMap<MessageId, Msg>,
    leases: Vec<Claimed>,
    next_seq: u64,
    /// Keys of removed messages: the message's id, and when a sweep first
    /// saw the key (none before that).
    retained: BTreeMap<u8, (MessageId, Option<i64>)>,
    /// The paused types.
    paused: std::collections::BTreeSet<usize>,
}

impl Harness {
    async fn new(backend: Backend) -> Self {
        let at = TestLocation::new(backend).await;
        let clock = ManualClock::new(1_700_000_000_000);
        let mut policies = Policies {
            default: RetryPolicy {
                max_attempts: 3,
                backoff_base: Duration::from_millis(BASE_MS as u64),
                backoff_cap: Duration::from_millis(CAP_MS as u64),
            },
            ..Policies::default()
        };
        policies.limits.insert(
            TYPES[1].to_owned(),
            QueueLimits {
                ttl: Some(Duration::from_millis(TTL_MS as u64)),
                ..QueueLimits::default()
            },
        );
        let store = at
            .open_with(OpenOptions {
                durability: Durability::Fast,
                clock: Arc::new(clock.clone()) as SharedClock,
                policies,
                key_retention: KEY_RETENTION,
                ..OpenOptions::default()
            })
            .await;
        Self {
            _at: at,
            clock,
            store,
            msgs: BTreeMap::new(),
            leases: Vec::new(),
            next_seq: 0,
            retained: BTreeMap::new(),
            paused: std::collections::BTreeSet::new(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn pick_where(&self, pick: usize, pred: impl Fn(&Msg) -> bool) -> Option<MessageId> {
        let ids: Vec<MessageId> = self
            .msgs
            .iter()
            .filter(|(_, m)| pred(m))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[pick % ids.len()])
    }

    /// The dead letters a redrive or purge selects: one picked (none if
    /// there is no dead letter), or all.
    fn dead_selection(&self, pick: Option<usize>) -> Option<(Selection, Vec<MessageId>)> {
        match pick {
            Some(p) => {
                let id = self.pick_where(p, |m| m.state == Model::Dead)?;
                Some((Selection::One(id), vec![id]))
            }
            None => {
                let all = self
                    .msgs
                    .iter()
                    .filter(|(_, m)| m.state == Model::Dead)
                    .map(|(id, _)| *id)
                    .collect();
                Some((Selection::All, all))
            }
        }
    }

    /// Removes a message; its key, if any, is remembered.
    fn remove(&mut self, id: MessageId) {
        let msg = self.msgs.remove(&id).expect("modelled");
        if let Some(k) = msg.key {
            self.retained.insert(k, (id, None));
        }
    }

    fn live_lease(&self, pick: usize) -> Option<(MessageId, usize)> {
        let id = self.pick_where(pick, |m| matches!(m.state, Model::Inflight(_)))?;
        match self.msgs[&id].state {
            Model::Inflight(lease) => Some((id, lease)),
            _ => None,
        }
    }

    /// Where a failed attempt leads, per the contract; `available_at` read back
    /// from the store must fall inside the jittered backoff window.
    fn after_failure(&mut self, id: MessageId, fatal: bool, settled: Settled) {
        let now = self.now();
        let msg = self.msgs.get_mut(&id).expect("modelled");
        if fatal || msg.attempts >= msg.max_attempts {
            assert_eq!(settled, Settled::Dead, "{id}: expected dead");
            msg.state = Model::Dead;
            return;
        }
        let Settled::Requeued { available_at } = settled else {
            panic!("{id}: expected a requeue, got {settled:?}");
        };
        let full = (BASE_MS << (msg.attempts - 1)).min(CAP_MS);
        let delay = available_at - now;
        assert!(
            delay >= full / 2 && delay <= full,
            "{id}: backoff {delay} outside [{}, {full}]",
            full / 2
        );
        msg.state = Model::Queued;
        msg.available_at = available_at;
    }

    async fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Enqueue {
                ty,
                key,
                max_attempts,
                delay_ms,
            } => {
                let mut m = NewMessage::new(TYPES[ty], b"{}".to_vec())
                    .with_max_attempts(max_attempts)
                    .with_delay(Duration::from_millis(delay_ms));
                if let Some(k) = key {
                    m = m.with_key(format!("k{k}"));
                }
                let got = self.store.enqueue(m).await.expect("enqueue");
                let existing = key.and_then(|k| {
                    self.msgs
                        .iter()
                        .find(|(_, m)| m.key == Some(k))
                        .map(|(id, _)| *id)
                        .or_else(|| self.retained.get(&k).map(|(id, _)| *id))
                });
                match existing {
                    Some(id) => assert_eq!((got.id, got.duplicate), (id, true), "key dedupe"),
                    None => {
                        assert!(!got.duplicate);
                        self.next_seq += 1;
                        let msg = Msg {
                            seq: self.next_seq,
                            ty,
                            key,
                            state: Model::Queued,
                            attempts: 0,
                            max_attempts,
                            available_at: self.now() + delay_ms as i64,
                            lease_expires_at: 0,
                            created_at: self.now(),
                        };
                        assert!(self.msgs.insert(got.id, msg).is_none(), "fresh id");
                    }
                }
            }
            Op::Claim { n, types } => {
                let names: Vec<String> = types.iter().map(|t| TYPES[*t].to_owned()).collect();
                let now = self.now();
                let mut due: Vec<(u64, MessageId)> = self
                    .msgs
                    .iter()
                    .filter(|(_, m)| {
                        m.state == Model::Queued
                            && m.available_at <= now
                            && types.contains(&m.ty)
                            && !self.paused.contains(&m.ty)
                    })
                    .map(|(id, m)| (m.seq, *id))
                    .collect();
                due.sort();
                // Claims take turns across types (every message here has the
                // same priority): each type's oldest, then each type's second
                // oldest, and so on.
                let mut turns: BTreeMap<usize, usize> = BTreeMap::new();
                let mut in_turns: Vec<(usize, u64, MessageId)> = due
                    .into_iter()
                    .map(|(seq, id)| {
                        let turn = turns.entry(self.msgs[&id].ty).or_default();
                        *turn += 1;
                        (*turn, seq, id)
                    })
                    .collect();
                in_turns.sort();
                let taken: Vec<MessageId> =
                    in_turns.into_iter().take(n).map(|(_, _, id)| id).collect();
                // Those past their ttl are dead-lettered (one attempt spent)
                // instead of handed out.
                let (expired, expected): (Vec<MessageId>, Vec<MessageId>) =
                    taken.into_iter().partition(|id| self.msgs[id].expired(now));
                for id in expired {
                    let msg = self.msgs.get_mut(&id).expect("modelled");
                    msg.attempts += 1;
                    msg.state = Model::Dead;
                }
                let claimed = self.store.claim(n, LEASE, &names).await.expect("claim");
                assert_eq!(
                    claimed.iter().map(Claimed::id).collect::<Vec<_>>(),
                    expected,
                    "claim order"
                );
                for c in claimed {
                    let msg = self.msgs.get_mut(&c.id()).expect("modelled");
                    assert_eq!(msg.state, Model::Queued, "never claimed twice");
                    msg.attempts += 1;
                    assert_eq!(c.attempts, msg.attempts);
                    msg.state = Model::Inflight(self.leases.len());
                    msg.lease_expires_at = now + LEASE.as_millis() as i64;
                    self.leases.push(c);
                }
            }
            Op::Ack { pick } => {
                if let Some((id, lease)) = self.live_lease(pick) {
                    let claimed = self.leases[lease].clone();
                    self.store.ack(&claimed, vec![]).await.expect("live ack");
                    self.remove(id);
                }
            }
            Op::Retry { pick } | Op::Fatal { pick } => {
                let fatal = matches!(op, Op::Fatal { .. });
                if let Some((id, lease)) = self.live_lease(pick) {
                    let claimed = self.leases[lease].clone();
                    let failure = if fatal {
                        Failure::Fatal {
                            reason: "no".into(),
                        }
                    } else {
                        Failure::Retry {
                            reason: "again".into(),
                            after: None,
                        }
                    };
                    let settled = self.store.fail(&claimed, failure).await.expect("live fail");
                    self.after_failure(id, fatal, settled);
                }
            }
            Op::StaleAck { pick } => {
                let live: Vec<usize> = self
                    .msgs
                    .values()
                    .filter_map(|m| match m.state {
                        Model::Inflight(l) => Some(l),
                        _ => None,
                    })
                    .collect();
                let stale: Vec<usize> = (0..self.leases.len())
                    .filter(|l| !live.contains(l))
                    .collect();
                if !stale.is_empty() {
                    let claimed = self.leases[stale[pick % stale.len()]].clone();
                    let err = self
                        .store
                        .ack(&claimed, vec![NewMessage::new("ghost", b"{}".to_vec())])
                        .await
                        .expect_err("a stale lease is refused");
                    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
                }
            }
            Op::Reclaim => {
                let now = self.now();
                let expired: Vec<MessageId> = self
                    .msgs
                    .iter()
                    .filter(|(_, m)| {
                        matches!(m.state, Model::Inflight(_)) && m.lease_expires_at <= now
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let r = self.store.reclaim().await.expect("reclaim");
                assert_eq!(
                    r.requeued + r.dead,
                    expired.len(),
                    "only expired leases are reclaimed"
                );
                for id in expired {
                    let stored = self.store.message(id).await.expect("still stored");
                    let settled = match stored.state {
                        MessageState::Dead => Settled::Dead,
                        _ => Settled::Requeued {
                            available_at: stored.available_at,
                        },
                    };
                    self.after_failure(id, false, settled);
                    assert!(
                        stored
                            .summary
                            .last_error
                            .unwrap_or_default()
                            .contains("lease expired")
                    );
                }
            }
            Op::Advance { ms } => self.clock.advance(Duration::from_millis(ms)),
            Op::Redrive { pick } => {
                let now = self.now();
                let Some((selection, targets)) = self.dead_selection(pick) else {
                    return;
                };
                assert_eq!(
                    self.store.redrive(selection).await.expect("redrive"),
                    targets.len()
                );
                for id in targets {
                    let msg = self.msgs.get_mut(&id).expect("modelled");
                    msg.state = Model::Queued;
                    msg.attempts = 0;
                    msg.available_at = now;
                }
            }
            Op::Purge { pick } => {
                let Some((selection, targets)) = self.dead_selection(pick) else {
                    return;
                };
                assert_eq!(
                    self.store.purge(selection).await.expect("purge"),
                    targets.len()
                );
                for id in targets {
                    self.remove(id);
                }
            }
            Op::Cancel { pick } => {
                let Some(id) = self.pick_where(pick, |_| true) else {
                    return;
                };
                let done = self.store.cancel_ids(vec![id]).await.expect("cancel");
                if self.msgs[&id].state == Model::Queued {
                    assert_eq!((done.cancelled, done.refused.len()), (1, 0), "{id}");
                    self.remove(id);
                } else {
                    assert_eq!((done.cancelled, done.refused.len()), (0, 1), "{id}");
                }
            }
            Op::CancelType { ty, batch } => {
                let queued: Vec<MessageId> = self
                    .msgs
                    .iter()
                    .filter(|(_, m)| m.ty == ty && m.state == Model::Queued)
                    .map(|(id, _)| *id)
                    .collect();
                let mut removed = 0;
                loop {
                    let n = self
                        .store
                        .cancel_queued(TYPES[ty], batch)
                        .await
                        .expect("cancel");
                    assert!(n <= batch, "a batch is at most its limit");
                    removed += n;
                    if n == 0 {
                        break;
                    }
                }
                assert_eq!(removed, queued.len(), "every queued one of the type");
                for id in queued {
                    self.remove(id);
                }
            }
            Op::Pause { ty } => {
                let change = self.store.pause(TYPES[ty]).await.expect("pause");
                assert_eq!(change.changed, self.paused.insert(ty), "pause changes once");
            }
            Op::Resume { ty } => {
                let change = self.store.resume(TYPES[ty]).await.expect("resume");
                assert_eq!(change.changed, self.paused.remove(&ty), "resume changes once");
            }
            Op::Sweep => {
                let now = self.now();
                let cutoff = now - KEY_RETENTION.as_millis() as i64;
                for (_, stamp) in self.retained.values_mut() {
                    stamp.get_or_insert(now);
                }
                let before = self.retained.len();
                self.retained.retain(|_, (_, stamp)| stamp.is_some_and(|at| at > cutoff));
                let mut expired = 0;
                for m in self.msgs.values_mut() {
                    if m.state == Model::Queued && m.expired(now) {
                        m.state = Model::Dead;
                        expired += 1;
                    }
                }
                let swept = self.store.sweep().await.expect("sweep");
                assert_eq!(swept.keys_forgotten, before - self.retained.len(), "keys forgotten");
                assert_eq!(swept.expired, expired, "queued messages past their ttl");
            }
        }
    }

    async fn check(&self) {
        let stats = self.store.stats().await.expect("stats");
        assert_eq!(
            stats.totals.total(),
            self.msgs.len() as u64,
            "no message lost or invented"
        );
        // Every count the stats report, recomputed from the model.
        let mut by_type: std::collections::BTreeMap<String, (u64, u64, u64)> =
            std::collections::BTreeMap::new();
        let (mut due, mut oldest_due) = (0u64, None::<i64>);
        for m in self.msgs.values() {
            let c = by_type.entry(TYPES[m.ty].to_owned()).or_default();
            match m.state {
                Model::Queued => {
                    c.0 += 1;
                    if m.available_at <= self.now() {
                        due += 1;
                        oldest_due =
                            Some(oldest_due.map_or(m.available_at, |o| o.min(m.available_at)));
                    }
                }
                Model::Inflight(_) => c.1 += 1,
                Model::Dead => c.2 += 1,
            }
        }
        // Paused types, and types with limits (t1's ttl), are listed even
        // without messages.
        for ty in self.paused.iter().chain([&1]) {
            by_type.entry(TYPES[*ty].to_owned()).or_default();
        }
        for (event_type, queue) in &stats.by_event_type {
            let paused = TYPES
                .iter()
                .position(|t| t == event_type)
                .is_some_and(|ty| self.paused.contains(&ty));
            assert_eq!(queue.paused, paused, "{event_type} paused");
            let ttl = (event_type == TYPES[1]).then_some(TTL_MS as u64);
            assert_eq!(queue.ttl_ms, ttl, "{event_type} ttl");
        }
        let reported: std::collections::BTreeMap<String, (u64, u64, u64)> = stats
            .by_event_type
            .iter()
            .map(|(t, c)| (t.clone(), (c.counts.queued, c.counts.inflight, c.counts.dead)))
            .collect();
        assert_eq!(reported, by_type, "counts by event type");
        let by_priority: u64 = stats.by_priority.values().map(|c| c.total()).sum();
        assert_eq!(by_priority, self.msgs.len() as u64, "counts by priority");
        assert_eq!(stats.due, due, "due now");
        assert_eq!(
            stats.oldest_due_age_ms,
            oldest_due.map(|at| (self.now() - at).max(0)),
            "oldest due"
        );
        let mut holders = std::collections::HashSet::new();
        for (id, m) in &self.msgs {
            let stored = self
                .store
                .message(*id)
                .await
                .expect("every modelled message is stored");
            let expected = match m.state {
                Model::Queued => MessageState::Queued,
                Model::Inflight(lease) => {
                    assert!(holders.insert(lease), "one lease holds one message");
                    assert_eq!(self.leases[lease].id(), *id);
                    MessageState::Inflight
                }
                Model::Dead => MessageState::Dead,
            };
            assert_eq!(stored.state, expected, "{id}");
            assert_eq!(stored.summary.attempts, m.attempts, "{id}");
            assert!(
                stored.summary.attempts <= stored.summary.max_attempts,
                "{id}: attempts above max"
            );
            if m.state == Model::Queued {
                assert_eq!(stored.available_at, m.available_at, "{id}");
            }
        }
    }
}

/// Runs `ops` against a fresh store on `backend`, checking the model after
/// every step. Each case gets its own runtime: proptest drives plain
/// functions.
fn follow_the_model(backend: Backend, ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut h = Harness::new(backend).await;
        for op in ops {
            h.step(op).await;
            h.check().await;
        }
    });
}

mod sqlite {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn the_store_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            follow_the_model(Backend::Sqlite, &ops);
        }
    }
}

mod postgres {
    use super::*;

    proptest! {
        // Fewer cases than on SQLite: each one creates a database on the
        // server. The seeds in store_model.proptest-regressions run on both.
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn the_store_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            follow_the_model(Backend::Postgres, &ops);
        }
    }
}
