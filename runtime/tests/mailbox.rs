//! The mailbox against real SQLite files: every edge of the state machine,
//! with the stored row checked after each transition.

use std::sync::Arc;
use std::time::Duration;

use mailroom::clock::ManualClock;
use mailroom::mailbox::{
    Claimed, DeadLetterFilter, Mailbox, MailboxError, OpenOptions, Selection, Settled, Settlement,
};
use mailroom::message::{MessageId, NewMessage, Priority};
use mailroom::state_machine::{Failure, MessageState, Policies, RetryPolicy};
use tempfile::TempDir;

const T0: i64 = 1_700_000_000_000;
const LEASE: Duration = Duration::from_secs(30);

struct Fixture {
    _dir: TempDir,
    path: std::path::PathBuf,
    clock: ManualClock,
    mb: Mailbox,
}

fn policies() -> Policies {
    Policies {
        default: RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        },
        ..Policies::default()
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailroom.db");
    let clock = ManualClock::new(T0);
    let mb = open(&path, &clock);
    Fixture {
        _dir: dir,
        path,
        clock,
        mb,
    }
}

fn open(path: &std::path::Path, clock: &ManualClock) -> Mailbox {
    Mailbox::open(path)
        .expect("open store")
        .with_clock(Arc::new(clock.clone()))
        .with_policies(policies())
}

fn enqueue(mb: &mut Mailbox, event_type: &str) -> MessageId {
    mb.enqueue(NewMessage::new(event_type, br#"{"n":1}"#.to_vec()))
        .expect("enqueue")
        .id
}

fn claim_one(mb: &mut Mailbox, types: &[&str]) -> Claimed {
    let mut c = mb.claim(1, LEASE, types).expect("claim");
    assert_eq!(c.len(), 1, "expected one claimable message");
    c.remove(0)
}

fn retry(reason: &str) -> Failure {
    Failure::Retry {
        reason: reason.into(),
        after: None,
    }
}

#[test]
fn enqueue_stores_a_queued_row_with_defaults() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "order.created");
    let m = f.mb.message(id).expect("stored");
    assert_eq!(m.state, MessageState::Queued);
    assert_eq!(m.summary.attempts, 0);
    assert_eq!(m.summary.max_attempts, 3, "from the default policy");
    assert_eq!(m.available_at, T0);
    assert_eq!(m.summary.created_at, T0);
    assert_eq!(m.summary.correlation_id, id.to_string());
    assert_eq!(m.summary.priority, Priority::Normal);
    assert_eq!(m.payload, br#"{"n":1}"#);

    let delayed =
        f.mb.enqueue(
            NewMessage::new("order.created", b"{}".to_vec())
                .with_delay(Duration::from_secs(5))
                .with_max_attempts(7)
                .with_source("shop")
                .with_correlation_id("corr-1")
                .with_priority(Priority::High),
        )
        .expect("enqueue")
        .id;
    let m = f.mb.message(delayed).expect("stored");
    assert_eq!(m.available_at, T0 + 5000);
    assert_eq!(m.summary.max_attempts, 7);
    assert_eq!(m.summary.source.as_deref(), Some("shop"));
    assert_eq!(m.summary.correlation_id, "corr-1");
    assert_eq!(m.summary.priority, Priority::High);
    assert!(id < delayed, "UUID v7 ids sort by creation");
}

#[test]
fn invalid_messages_are_refused_and_a_bad_batch_stores_nothing() {
    let mut f = fixture();
    let err =
        f.mb.enqueue(NewMessage::new("bad type", b"{}".to_vec()))
            .unwrap_err();
    assert!(matches!(err, MailboxError::Invalid(_)), "{err}");
    let big = NewMessage::new("t", vec![b'x'; 1024 * 1024 + 1]);
    let err = f.mb.enqueue(big).unwrap_err();
    assert!(
        err.to_string().contains("over the 1048576-byte limit"),
        "{err}"
    );

    let batch = vec![
        NewMessage::new("ok", b"1".to_vec()),
        NewMessage::new("", b"2".to_vec()),
    ];
    let err = f.mb.enqueue_batch(batch).unwrap_err();
    assert!(
        matches!(err, MailboxError::InvalidInBatch { index: 1, .. }),
        "{err}"
    );
    assert_eq!(f.mb.stats().expect("stats").totals.total(), 0);
}

#[test]
fn claim_takes_due_routable_messages_by_priority_then_age() {
    let mut f = fixture();
    let low =
        f.mb.enqueue(NewMessage::new("a", b"{}".to_vec()).with_priority(Priority::Low))
            .expect("enqueue")
            .id;
    let normal1 = enqueue(&mut f.mb, "a");
    let high =
        f.mb.enqueue(NewMessage::new("b", b"{}".to_vec()).with_priority(Priority::High))
            .expect("enqueue")
            .id;
    let normal2 = enqueue(&mut f.mb, "b");
    let later =
        f.mb.enqueue(
            NewMessage::new("a", b"{}".to_vec())
                .with_priority(Priority::High)
                .with_delay(Duration::from_secs(10)),
        )
        .expect("enqueue")
        .id;
    let unrouted = enqueue(&mut f.mb, "c");

    let claimed = f.mb.claim(10, LEASE, &["a", "b"]).expect("claim");
    let ids: Vec<_> = claimed.iter().map(Claimed::id).collect();
    assert_eq!(ids, vec![high, normal1, normal2, low]);
    for c in &claimed {
        assert_eq!(c.attempts, 1);
        assert_eq!(c.lease_expires_at, T0 + 30_000);
        let m = f.mb.message(c.id()).expect("stored");
        assert_eq!(m.state, MessageState::Inflight);
        assert_eq!(m.summary.attempts, 1);
    }
    // Not yet due, and no handler: untouched, no attempt spent.
    for id in [later, unrouted] {
        let m = f.mb.message(id).expect("stored");
        assert_eq!((m.state, m.summary.attempts), (MessageState::Queued, 0));
    }
    assert!(
        f.mb.claim(10, LEASE, &["a", "b"])
            .expect("claim")
            .is_empty()
    );
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(claim_one(&mut f.mb, &["a"]).id(), later);
    // The limit is respected and nothing is claimed with no routable types.
    assert!(
        f.mb.claim(10, LEASE, &[] as &[&str])
            .expect("claim")
            .is_empty()
    );
    assert_eq!(f.mb.claim(0, LEASE, &["c"]).expect("claim").len(), 0);
}

#[test]
fn a_message_without_a_handler_waits_without_spending_attempts() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "nobody.handles");
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(60));
        assert!(f.mb.claim(10, LEASE, &["other"]).expect("claim").is_empty());
        assert_eq!(f.mb.reclaim().expect("reclaim").requeued, 0);
    }
    let m = f.mb.message(id).expect("stored");
    assert_eq!((m.state, m.summary.attempts), (MessageState::Queued, 0));
    let stats = f.mb.stats().expect("stats");
    assert_eq!(stats.waiting_for_handler, 1);
    // A handler appears: it flows.
    f.mb.record_plugin_loaded("p.wasm", "p", "1", &["nobody.handles".into()], "sha256:0")
        .expect("record");
    assert_eq!(f.mb.stats().expect("stats").waiting_for_handler, 0);
    assert_eq!(claim_one(&mut f.mb, &["nobody.handles"]).id(), id);
}

#[test]
fn ack_removes_the_message_and_commits_follow_ups_with_its_correlation() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "order.created");
    let c = claim_one(&mut f.mb, &["order.created"]);
    f.mb.ack(
        &c,
        vec![
            NewMessage::new("order.accepted", b"{}".to_vec()),
            NewMessage::new("audit", b"{}".to_vec()).with_correlation_id("own"),
        ],
    )
    .expect("ack");
    assert!(matches!(
        f.mb.message(id),
        Err(MailboxError::NoSuchMessage { .. })
    ));
    let follow = claim_one(&mut f.mb, &["order.accepted"]);
    assert_eq!(follow.correlation_id, id.to_string());
    assert_eq!(claim_one(&mut f.mb, &["audit"]).correlation_id, "own");
    // A second ack of the same lease is refused.
    let err = f.mb.ack(&c, vec![]).unwrap_err();
    assert!(
        matches!(err, MailboxError::LeaseLost { id: lost } if lost == id),
        "{err}"
    );
}

#[test]
fn an_ack_with_an_invalid_follow_up_commits_nothing() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let c = claim_one(&mut f.mb, &["a"]);
    let err =
        f.mb.ack(
            &c,
            vec![
                NewMessage::new("ok", b"{}".to_vec()),
                NewMessage::new("no spaces", b"{}".to_vec()),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, MailboxError::Invalid(_)), "{err}");
    assert_eq!(
        f.mb.message(id).expect("still there").state,
        MessageState::Inflight
    );
    assert_eq!(
        f.mb.stats().expect("stats").totals.total(),
        1,
        "no follow-up stored"
    );
}

#[test]
fn a_stale_ack_after_expiry_and_reclaim_is_refused_and_commits_nothing() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let first = claim_one(&mut f.mb, &["a"]);
    f.clock.advance(LEASE);
    let r = f.mb.reclaim().expect("reclaim");
    assert_eq!((r.requeued, r.dead), (1, 0));
    let m = f.mb.message(id).expect("stored");
    assert_eq!(m.state, MessageState::Queued);
    assert!(
        m.summary
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("lease expired during attempt 1")
    );
    let delay = m.available_at - f.clock_now();
    assert!(
        (500..=1000).contains(&delay),
        "backoff after the lost attempt: {delay}"
    );

    // Refused while queued...
    let err =
        f.mb.ack(&first, vec![NewMessage::new("x", b"{}".to_vec())])
            .unwrap_err();
    assert!(matches!(err, MailboxError::LeaseLost { .. }), "{err}");
    // ...and after someone else claimed it again.
    f.clock.advance(Duration::from_secs(1));
    let second = claim_one(&mut f.mb, &["a"]);
    assert_eq!(second.attempts, 2);
    assert_ne!(second.lease.token, first.lease.token);
    assert!(matches!(
        f.mb.ack(&first, vec![]),
        Err(MailboxError::LeaseLost { .. })
    ));
    assert!(matches!(
        f.mb.fail(&first, retry("late")),
        Err(MailboxError::LeaseLost { .. })
    ));
    assert_eq!(
        f.mb.stats().expect("stats").totals.total(),
        1,
        "the stale ack emitted nothing"
    );
    // The live lease still works.
    f.mb.ack(&second, vec![]).expect("live ack");
    assert_eq!(f.mb.stats().expect("stats").totals.total(), 0);
}

impl Fixture {
    fn clock_now(&self) -> i64 {
        use mailroom::clock::Clock;
        self.clock.now_ms()
    }
}

#[test]
fn retryable_failure_backs_off_then_dies_at_max_attempts() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let mut expected_delay = 1000;
    for attempt in 1..=2u32 {
        let c = claim_one(&mut f.mb, &["a"]);
        assert_eq!(c.attempts, attempt);
        let settled =
            f.mb.fail(&c, retry(&format!("boom {attempt}")))
                .expect("fail");
        let m = f.mb.message(id).expect("stored");
        assert_eq!(m.state, MessageState::Queued);
        assert_eq!(
            m.summary.last_error.as_deref(),
            Some(format!("boom {attempt}").as_str())
        );
        let Settled::Requeued { available_at } = settled else {
            panic!("expected requeue, got {settled:?}")
        };
        assert_eq!(m.available_at, available_at);
        let delay = available_at - f.clock_now();
        // Jitter takes off at most half.
        assert!(
            delay <= expected_delay && delay >= expected_delay / 2,
            "delay {delay}"
        );
        // Not claimable before it is due.
        assert!(f.mb.claim(1, LEASE, &["a"]).expect("claim").is_empty());
        f.clock.advance(Duration::from_millis(
            u64::try_from(delay).expect("positive"),
        ));
        expected_delay *= 2;
    }
    let c = claim_one(&mut f.mb, &["a"]);
    assert_eq!(c.attempts, 3);
    assert_eq!(f.mb.fail(&c, retry("boom 3")).expect("fail"), Settled::Dead);
    let m = f.mb.dead_letter(id).expect("dead");
    assert_eq!(m.summary.attempts, 3);
    assert_eq!(
        m.summary.last_error.as_deref(),
        Some("gave up after 3 attempts: boom 3")
    );
    assert_eq!(m.summary.dead_at, Some(f.clock_now()));
}

#[test]
fn a_requested_delay_replaces_the_backoff() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let c = claim_one(&mut f.mb, &["a"]);
    let after = Some(Duration::from_secs(42));
    f.mb.fail(
        &c,
        Failure::Retry {
            reason: "later".into(),
            after,
        },
    )
    .expect("fail");
    assert_eq!(f.mb.message(id).expect("stored").available_at, T0 + 42_000);
}

#[test]
fn fatal_failure_is_dead_at_once_with_the_plugin_digest() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let c = claim_one(&mut f.mb, &["a"]);
    let settled =
        f.mb.settle_one(
            &c,
            Settlement::Fail(Failure::Fatal {
                reason: "bad qty".into(),
            }),
            Some("sha256:abc"),
        )
        .expect("fail");
    assert_eq!(settled, Settled::Dead);
    let m = f.mb.dead_letter(id).expect("dead");
    assert_eq!(m.summary.attempts, 1);
    assert_eq!(m.summary.last_error.as_deref(), Some("fatal: bad qty"));
    assert_eq!(m.summary.plugin_digest.as_deref(), Some("sha256:abc"));
}

#[test]
fn a_lease_expiring_at_the_last_attempt_dead_letters_the_message() {
    let mut f = fixture();
    let id =
        f.mb.enqueue(NewMessage::new("a", b"{}".to_vec()).with_max_attempts(1))
            .expect("enqueue")
            .id;
    claim_one(&mut f.mb, &["a"]);
    f.clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(
        f.mb.reclaim().expect("reclaim").requeued + f.mb.reclaim().expect("reclaim").dead,
        0,
        "not expired yet"
    );
    f.clock.advance(Duration::from_millis(1));
    let r = f.mb.reclaim().expect("reclaim");
    assert_eq!((r.requeued, r.dead), (0, 1));
    let m = f.mb.dead_letter(id).expect("dead");
    assert!(
        m.summary
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("gave up after 1 attempts: lease expired")
    );
}

#[test]
fn reclaim_never_takes_a_live_hosts_unexpired_lease_but_takes_a_dead_owners_at_once() {
    let f = fixture();
    let mut a = open(&f.path, &f.clock);
    let mut b = open(&f.path, &f.clock);
    let id = enqueue(&mut a, "t");
    let claimed = claim_one(&mut a, &["t"]);
    assert_eq!(
        b.reclaim().expect("reclaim"),
        Default::default(),
        "owner a is alive"
    );
    assert_eq!(a.message(id).expect("stored").state, MessageState::Inflight);

    // Make a's recorded process one that has exited.
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let gone_pid = child.id();
    child.wait().expect("wait");
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    raw.execute(
        "UPDATE hosts SET pid = ?1 WHERE owner = ?2",
        rusqlite::params![gone_pid, a.owner().id],
    )
    .expect("update hosts");
    let r = b.reclaim().expect("reclaim");
    assert_eq!((r.requeued, r.dead, r.dead_owners), (1, 0, 1));
    assert_eq!(b.message(id).expect("stored").state, MessageState::Queued);
    assert!(matches!(
        a.ack(&claimed, vec![]),
        Err(MailboxError::LeaseLost { .. })
    ));
}

#[test]
fn key_dedupe_returns_the_existing_id_in_every_stored_state() {
    let mut f = fixture();
    let keyed = || {
        NewMessage::new("a", b"{}".to_vec())
            .with_key("k-1")
            .with_max_attempts(1)
    };
    let first = f.mb.enqueue(keyed()).expect("enqueue");
    assert!(!first.duplicate);
    let again = f.mb.enqueue(keyed()).expect("enqueue");
    assert_eq!((again.id, again.duplicate), (first.id, true));

    let c = claim_one(&mut f.mb, &["a"]);
    assert_eq!(
        f.mb.enqueue(keyed()).expect("enqueue").id,
        first.id,
        "in flight"
    );
    f.mb.fail(&c, retry("x")).expect("fail");
    assert_eq!(
        f.mb.message(first.id).expect("stored").state,
        MessageState::Dead
    );
    assert_eq!(f.mb.enqueue(keyed()).expect("enqueue").id, first.id, "dead");
    assert_eq!(f.mb.stats().expect("stats").totals.total(), 1);

    // Within one batch the key resolves to the first carrier.
    let batch =
        f.mb.enqueue_batch(vec![
            NewMessage::new("a", b"{}".to_vec()).with_key("k-2"),
            NewMessage::new("a", b"{}".to_vec()).with_key("k-2"),
        ])
        .expect("batch");
    assert_eq!(batch[0].id, batch[1].id);
    assert!(batch[1].duplicate);
    // Once purged, the key is free again.
    f.mb.purge(&Selection::One(first.id)).expect("purge");
    assert!(!f.mb.enqueue(keyed()).expect("enqueue").duplicate);
}

#[test]
fn a_settle_batch_is_one_transaction_with_per_message_results() {
    let mut f = fixture();
    for _ in 0..4 {
        enqueue(&mut f.mb, "a");
    }
    let claimed = f.mb.claim(4, LEASE, &["a"]).expect("claim");
    // The third message's lease is stolen before the batch settles.
    let stale = Claimed {
        lease: mailroom::mailbox::Lease {
            id: claimed[2].id(),
            token: "not-the-token".into(),
        },
        ..claimed[2].clone()
    };
    let ack = Settlement::Ack {
        follow_ups: vec![NewMessage::new("f", b"{}".to_vec())],
    };
    let retry = Settlement::Fail(retry("r"));
    let fatal = Settlement::Fail(Failure::Fatal { reason: "x".into() });
    let batch = vec![
        (&claimed[0], &ack, None),
        (&claimed[1], &retry, None),
        (&stale, &ack, None),
        (&claimed[3], &fatal, None),
    ];
    let results = f.mb.settle(batch).expect("batch commits");
    assert!(matches!(results[0], Ok(Settled::Acked)));
    assert!(matches!(results[1], Ok(Settled::Requeued { .. })));
    assert!(matches!(results[2], Err(MailboxError::LeaseLost { .. })));
    assert!(matches!(results[3], Ok(Settled::Dead)));
    let stats = f.mb.stats().expect("stats");
    assert_eq!(
        stats.by_event_type["f"].queued, 1,
        "only the valid ack's follow-up"
    );
    assert_eq!(
        stats.by_event_type["a"].inflight, 1,
        "the stolen one is untouched"
    );
    assert_eq!(stats.by_event_type["a"].queued, 1);
    assert_eq!(stats.by_event_type["a"].dead, 1);
}

#[test]
fn dead_letters_list_show_redrive_and_purge() {
    let mut f = fixture();
    let kill = |mb: &mut Mailbox, t: &str| {
        let id = enqueue(mb, t);
        let c = claim_one(mb, &[t]);
        mb.fail(
            &c,
            Failure::Fatal {
                reason: format!("bad {t}"),
            },
        )
        .expect("fail");
        id
    };
    let a1 = kill(&mut f.mb, "a");
    let b1 = kill(&mut f.mb, "b");
    let a2 = kill(&mut f.mb, "a");
    let a3 = kill(&mut f.mb, "a");
    let live = enqueue(&mut f.mb, "a");

    let page =
        f.mb.dead_letters(&DeadLetterFilter {
            limit: 2,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(
        page.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![a1, b1]
    );
    let rest =
        f.mb.dead_letters(&DeadLetterFilter {
            limit: 2,
            cursor: page.next_cursor.clone(),
            ..Default::default()
        })
        .expect("list");
    assert_eq!(
        rest.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![a2, a3]
    );
    assert_eq!(rest.next_cursor, None);
    let only_b =
        f.mb.dead_letters(&DeadLetterFilter {
            event_type: Some("b".into()),
            ..Default::default()
        })
        .expect("list");
    assert_eq!(only_b.items.len(), 1);
    assert_eq!(only_b.items[0].last_error.as_deref(), Some("fatal: bad b"));
    assert!(matches!(
        f.mb.dead_letters(&DeadLetterFilter {
            cursor: Some("nope".into()),
            ..Default::default()
        }),
        Err(MailboxError::Invalid(_))
    ));

    let shown = f.mb.dead_letter(a1).expect("show");
    assert_eq!(shown.payload, br#"{"n":1}"#);
    assert!(matches!(
        f.mb.dead_letter(live),
        Err(MailboxError::WrongState {
            actual: MessageState::Queued,
            ..
        })
    ));
    assert!(matches!(
        f.mb.dead_letter(MessageId::new()),
        Err(MailboxError::NoSuchMessage { .. })
    ));

    // Redrive one: queued, attempts reset, due now, claimable again.
    assert_eq!(f.mb.redrive(&Selection::One(a1)).expect("redrive"), 1);
    let m = f.mb.message(a1).expect("stored");
    assert_eq!(
        (m.state, m.summary.attempts, m.available_at),
        (MessageState::Queued, 0, T0)
    );
    assert!(matches!(
        f.mb.redrive(&Selection::One(a1)),
        Err(MailboxError::WrongState { .. })
    ));
    assert!(matches!(
        f.mb.redrive(&Selection::One(MessageId::new())),
        Err(MailboxError::NoSuchMessage { .. })
    ));
    // By type, then purge by type and all.
    assert_eq!(
        f.mb.redrive(&Selection::EventType("b".into()))
            .expect("redrive"),
        1
    );
    assert_eq!(
        f.mb.message(b1).expect("stored").state,
        MessageState::Queued
    );
    assert_eq!(
        f.mb.purge(&Selection::EventType("a".into()))
            .expect("purge"),
        2
    );
    assert!(matches!(
        f.mb.message(a2),
        Err(MailboxError::NoSuchMessage { .. })
    ));
    let c = claim_one(&mut f.mb, &["b"]);
    f.mb.fail(
        &c,
        Failure::Fatal {
            reason: "again".into(),
        },
    )
    .expect("fail");
    assert_eq!(f.mb.redrive(&Selection::All).expect("redrive"), 1);
    let c = claim_one(&mut f.mb, &["b"]);
    f.mb.fail(
        &c,
        Failure::Fatal {
            reason: "again".into(),
        },
    )
    .expect("fail");
    assert_eq!(f.mb.purge(&Selection::All).expect("purge"), 1);
    let stats = f.mb.stats().expect("stats");
    assert_eq!(
        (stats.totals.queued, stats.totals.dead),
        (2, 0),
        "a1 and the live one remain"
    );
}

#[test]
fn stats_count_by_state_type_and_priority() {
    let mut f = fixture();
    enqueue(&mut f.mb, "a");
    f.mb.enqueue(NewMessage::new("a", b"{}".to_vec()).with_priority(Priority::High))
        .expect("enqueue");
    f.mb.enqueue(NewMessage::new("b", b"{}".to_vec()).with_delay(Duration::from_secs(60)))
        .expect("enqueue");
    let c = claim_one(&mut f.mb, &["a"]);
    assert_eq!(c.priority, Priority::High);
    f.clock.advance(Duration::from_secs(5));
    let s = f.mb.stats().expect("stats");
    assert_eq!(
        (s.totals.queued, s.totals.inflight, s.totals.dead),
        (2, 1, 0)
    );
    assert_eq!(
        (s.by_event_type["a"].queued, s.by_event_type["a"].inflight),
        (1, 1)
    );
    assert_eq!(s.by_event_type["b"].queued, 1);
    assert_eq!(s.by_priority[&Priority::High].inflight, 1);
    assert_eq!(s.by_priority[&Priority::Normal].queued, 2);
    assert_eq!(s.due, 1, "b is delayed");
    assert_eq!(s.oldest_due_age_ms, Some(5000));
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["queued"], 2);
    assert_eq!(json["by_event_type"]["a"]["inflight"], 1);
}

#[test]
fn a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/mailroom.db");
    let err = Mailbox::open(&path).unwrap_err();
    assert!(
        matches!(err, MailboxError::MissingDirectory { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_not_created_when_asked_not_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailroom.db");
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    let err = Mailbox::open_with(&path, &options).unwrap_err();
    assert!(matches!(err, MailboxError::NotFound { .. }), "{err}");
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_a_database_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database ".repeat(200)).expect("write");
    let err = Mailbox::open(&path).unwrap_err();
    assert!(matches!(err, MailboxError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("notes.db"), "{err}");
}

#[test]
fn a_store_locked_past_the_timeout_gives_a_clear_error() {
    let f = fixture();
    let holder = rusqlite::Connection::open(&f.path).expect("raw open");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let options = OpenOptions {
        busy_timeout: Duration::from_millis(200),
        ..OpenOptions::default()
    };
    let mut mb = Mailbox::open_with(&f.path, &options).expect("open while locked (reads are fine)");
    let err = mb
        .enqueue(NewMessage::new("a", b"{}".to_vec()))
        .unwrap_err();
    assert!(err.is_locked(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("mailroom.db") && text.contains("locked by another process"),
        "{text}"
    );
    holder.execute_batch("ROLLBACK").expect("release");
    mb.enqueue(NewMessage::new("a", b"{}".to_vec()))
        .expect("works once released");
}

#[test]
fn a_store_from_a_newer_schema_is_refused() {
    let f = fixture();
    drop(f.mb);
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    raw.pragma_update(None, "user_version", 99).expect("bump");
    drop(raw);
    let err = Mailbox::open(&f.path).unwrap_err();
    assert!(
        matches!(err, MailboxError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade mailroom"), "{err}");
}

#[test]
fn the_store_uses_wal_and_survives_reopening() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    drop(f.mb);
    let raw = rusqlite::Connection::open(&f.path).expect("raw open");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let mb = open(&f.path, &f.clock);
    assert_eq!(mb.message(id).expect("stored").state, MessageState::Queued);
    mb.checkpoint().expect("checkpoint");
}

#[test]
fn release_returns_claims_without_spending_their_attempt() {
    let mut f = fixture();
    let id = enqueue(&mut f.mb, "a");
    let c = claim_one(&mut f.mb, &["a"]);
    assert_eq!(
        f.mb.release(std::slice::from_ref(&c.lease))
            .expect("release"),
        1
    );
    let m = f.mb.message(id).expect("stored");
    assert_eq!(
        (m.state, m.summary.attempts, m.available_at),
        (MessageState::Queued, 0, T0)
    );
    // A released lease is gone: releasing or acking it again does nothing.
    assert_eq!(
        f.mb.release(std::slice::from_ref(&c.lease))
            .expect("release"),
        0
    );
    assert!(matches!(
        f.mb.ack(&c, vec![]),
        Err(MailboxError::LeaseLost { .. })
    ));
    assert_eq!(claim_one(&mut f.mb, &["a"]).attempts, 1);
}

#[test]
fn next_due_at_is_the_earliest_queued_routable_message() {
    let mut f = fixture();
    assert_eq!(f.mb.next_due_at(&["a"]).expect("query"), None);
    f.mb.enqueue(NewMessage::new("a", b"{}".to_vec()).with_delay(Duration::from_secs(9)))
        .expect("enqueue");
    f.mb.enqueue(NewMessage::new("a", b"{}".to_vec()).with_delay(Duration::from_secs(4)))
        .expect("enqueue");
    f.mb.enqueue(NewMessage::new("b", b"{}".to_vec()))
        .expect("enqueue");
    assert_eq!(f.mb.next_due_at(&["a"]).expect("query"), Some(T0 + 4000));
    assert_eq!(f.mb.next_due_at(&["a", "b"]).expect("query"), Some(T0));
    assert_eq!(f.mb.next_due_at(&["c"]).expect("query"), None);
}
