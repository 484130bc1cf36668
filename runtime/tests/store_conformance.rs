//! The store's contract, the same on both backends: every edge of the state
//! machine against a real SQLite file and a real PostgreSQL database, with
//! the stored row checked after each transition. Each test runs twice, as
//! `sqlite::NAME` and `postgres::NAME`.

mod store_support;

use std::time::Duration;


use mailroom::message::{MessageId, NewMessage, Priority};
use mailroom::state_machine::{Failure, MessageState, QueueLimits};
use mailroom::store::{
    Claimed, DeadLetterFilter, DeadLetterMatch, Lease, Location, OpenOptions, Outcome, Selection, Settled,
    Settlement, Store, StoreError, TypeCaps,
};

use mailroom::clock::{Clock, ManualClock};
use store_support::{Backend, LEASE, T0, TestLocation, claim, enqueue, fixture, policies};

fn types(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

async fn claim_one(store: &Store, names: &[&str]) -> Claimed {
    let mut c = claim(store, 1, names).await;
    assert_eq!(c.len(), 1, "expected one claimable message");
    c.remove(0)
}

async fn total(store: &Store) -> u64 {
    store.stats().await.expect("stats").totals.total()
}

fn retry(reason: &str) -> Failure {
    Failure::Retry {
        reason: reason.into(),
        after: None,
    }
}

fn fatal(reason: &str) -> Failure {
    Failure::Fatal {
        reason: reason.into(),
    }
}

on_both_backends!(
    enqueue_stores_a_queued_row_with_defaults,
    invalid_messages_are_refused_and_a_bad_batch_stores_nothing,
    claim_takes_due_routable_messages_by_priority_then_age,
    a_message_without_a_handler_waits_without_spending_attempts,
    ack_removes_the_message_and_commits_follow_ups_with_its_correlation,
    an_ack_with_an_invalid_follow_up_commits_nothing,
    a_stale_ack_after_expiry_and_reclaim_is_refused_and_commits_nothing,
    retryable_failure_backs_off_then_dies_at_max_attempts,
    a_requested_delay_replaces_the_backoff,
    fatal_failure_is_dead_at_once_with_the_plugin_digest,
    a_lease_expiring_at_the_last_attempt_dead_letters_the_message,
    reclaim_never_takes_a_live_hosts_unexpired_lease,
    key_dedupe_returns_the_existing_id_in_every_stored_state,
    a_key_is_remembered_for_its_retention_after_its_message_is_acked,
    a_settle_batch_is_one_transaction_with_per_message_results,
    acks_of_several_claims_settle_together_and_a_message_is_acked_once,
    a_large_batch_keeps_its_order_its_fields_and_its_keys,
    a_keyed_batch_resolves_every_duplicate_and_keeps_its_order,
    settle_and_claim_settles_then_claims_what_is_due_follow_ups_included,
    dead_letters_list_show_redrive_and_purge,
    dead_letters_are_taken_in_order_of_death_by_every_condition,
    a_message_past_its_ttl_is_dead_lettered_never_delivered,
    an_enqueue_over_a_types_max_queued_is_refused_whole,
    an_ack_whose_events_do_not_fit_is_a_retryable_failure,
    stats_count_by_state_type_and_priority,
    a_missing_store_is_not_created_when_asked_not_to,
    release_returns_claims_without_spending_their_attempt,
    next_due_at_is_the_earliest_queued_routable_message,
    next_due_at_follows_backoff_release_and_redrive,
    follow_ups_are_one_deeper_than_the_message_that_emitted_them,
    a_claim_takes_turns_across_event_types_within_a_priority,
    a_claim_takes_at_most_each_types_cap,
);

async fn enqueue_stores_a_queued_row_with_defaults(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "order.created").await;
    let m = f.store.message(id).await.expect("stored");
    assert_eq!(m.state, MessageState::Queued);
    assert_eq!(m.summary.attempts, 0);
    assert_eq!(m.summary.max_attempts, 3, "from the default policy");
    assert_eq!(m.available_at, T0);
    assert_eq!(m.summary.created_at, T0);
    assert_eq!(m.summary.correlation_id, id.to_string());
    assert_eq!(m.summary.priority, Priority::Normal);
    assert_eq!(m.payload, br#"{"n":1}"#);

    let delayed = f
        .store
        .enqueue(
            NewMessage::new("order.created", b"{}".to_vec())
                .with_delay(Duration::from_secs(5))
                .with_max_attempts(7)
                .with_source("shop")
                .with_correlation_id("corr-1")
                .with_priority(Priority::High),
        )
        .await
        .expect("enqueue")
        .id;
    let m = f.store.message(delayed).await.expect("stored");
    assert_eq!(m.available_at, T0 + 5000);
    assert_eq!(m.summary.max_attempts, 7);
    assert_eq!(m.summary.source.as_deref(), Some("shop"));
    assert_eq!(m.summary.correlation_id, "corr-1");
    assert_eq!(m.summary.priority, Priority::High);
    assert!(id < delayed, "UUID v7 ids sort by creation");
}

async fn invalid_messages_are_refused_and_a_bad_batch_stores_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let err = f
        .store
        .enqueue(NewMessage::new("bad type", b"{}".to_vec()))
        .await
        .expect_err("an invalid event type is refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let big = NewMessage::new("t", vec![b'x'; 1024 * 1024 + 1]);
    let err = f
        .store
        .enqueue(big)
        .await
        .expect_err("an oversized payload is refused");
    assert!(
        err.to_string().contains("over the 1048576-byte limit"),
        "{err}"
    );

    let batch = vec![
        NewMessage::new("ok", b"1".to_vec()),
        NewMessage::new("", b"2".to_vec()),
    ];
    let err = f
        .store
        .enqueue_batch(batch)
        .await
        .expect_err("a bad batch is refused");
    assert!(
        matches!(err, StoreError::InvalidInBatch { index: 1, .. }),
        "{err}"
    );
    assert_eq!(total(&f.store).await, 0);
}

async fn claim_takes_due_routable_messages_by_priority_then_age(backend: Backend) {
    let f = fixture(backend).await;
    let low = f
        .store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_priority(Priority::Low))
        .await
        .expect("enqueue")
        .id;
    let normal1 = enqueue(&f.store, "a").await;
    let high = f
        .store
        .enqueue(NewMessage::new("b", b"{}".to_vec()).with_priority(Priority::High))
        .await
        .expect("enqueue")
        .id;
    let normal2 = enqueue(&f.store, "b").await;
    let later = f
        .store
        .enqueue(
            NewMessage::new("a", b"{}".to_vec())
                .with_priority(Priority::High)
                .with_delay(Duration::from_secs(10)),
        )
        .await
        .expect("enqueue")
        .id;
    let unrouted = enqueue(&f.store, "c").await;

    let claimed = claim(&f.store, 10, &["a", "b"]).await;
    let ids: Vec<_> = claimed.iter().map(Claimed::id).collect();
    assert_eq!(ids, vec![high, normal1, normal2, low]);
    for c in &claimed {
        assert_eq!(c.attempts, 1);
        assert_eq!(c.lease_expires_at, T0 + 30_000);
        let m = f.store.message(c.id()).await.expect("stored");
        assert_eq!(m.state, MessageState::Inflight);
        assert_eq!(m.summary.attempts, 1);
    }
    // Not yet due, and no handler: untouched, no attempt spent.
    for id in [later, unrouted] {
        let m = f.store.message(id).await.expect("stored");
        assert_eq!((m.state, m.summary.attempts), (MessageState::Queued, 0));
    }
    assert!(claim(&f.store, 10, &["a", "b"]).await.is_empty());
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(claim_one(&f.store, &["a"]).await.id(), later);
    // The limit is respected and nothing is claimed with no routable types.
    assert!(claim(&f.store, 10, &[]).await.is_empty());
    assert_eq!(claim(&f.store, 0, &["c"]).await.len(), 0);
}

async fn a_message_without_a_handler_waits_without_spending_attempts(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "nobody.handles").await;
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(60));
        assert!(claim(&f.store, 10, &["other"]).await.is_empty());
        assert_eq!(f.store.reclaim().await.expect("reclaim").requeued, 0);
    }
    let m = f.store.message(id).await.expect("stored");
    assert_eq!((m.state, m.summary.attempts), (MessageState::Queued, 0));
    let stats = f.store.stats().await.expect("stats");
    assert_eq!(stats.waiting_for_handler, 1);
    // A handler appears: it flows.
    f.store
        .record_plugin_loaded(
            "p.wasm".into(),
            "p".into(),
            "1".into(),
            vec!["nobody.handles".into()],
            "sha256:0".into(),
        )
        .await
        .expect("record");
    assert_eq!(f.store.stats().await.expect("stats").waiting_for_handler, 0);
    assert_eq!(claim_one(&f.store, &["nobody.handles"]).await.id(), id);
}

async fn ack_removes_the_message_and_commits_follow_ups_with_its_correlation(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "order.created").await;
    let c = claim_one(&f.store, &["order.created"]).await;
    f.store
        .ack(
            &c,
            vec![
                NewMessage::new("order.accepted", b"{}".to_vec()),
                NewMessage::new("audit", b"{}".to_vec()).with_correlation_id("own"),
            ],
        )
        .await
        .expect("ack");
    assert!(matches!(
        f.store.message(id).await,
        Err(StoreError::NoSuchMessage { .. })
    ));
    let follow = claim_one(&f.store, &["order.accepted"]).await;
    assert_eq!(follow.correlation_id, id.to_string());
    assert_eq!(claim_one(&f.store, &["audit"]).await.correlation_id, "own");
    // A second ack of the same lease is refused.
    let err = f
        .store
        .ack(&c, vec![])
        .await
        .expect_err("a second ack is refused");
    assert!(
        matches!(err, StoreError::LeaseLost { id: lost } if lost == id),
        "{err}"
    );
}

async fn an_ack_with_an_invalid_follow_up_commits_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let c = claim_one(&f.store, &["a"]).await;
    let err = f
        .store
        .ack(
            &c,
            vec![
                NewMessage::new("ok", b"{}".to_vec()),
                NewMessage::new("no spaces", b"{}".to_vec()),
            ],
        )
        .await
        .expect_err("an invalid follow-up is refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        f.store.message(id).await.expect("still there").state,
        MessageState::Inflight
    );
    assert_eq!(total(&f.store).await, 1, "no follow-up stored");
}

async fn a_stale_ack_after_expiry_and_reclaim_is_refused_and_commits_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let first = claim_one(&f.store, &["a"]).await;
    f.clock.advance(LEASE);
    let r = f.store.reclaim().await.expect("reclaim");
    assert_eq!((r.requeued, r.dead), (1, 0));
    let m = f.store.message(id).await.expect("stored");
    assert_eq!(m.state, MessageState::Queued);
    assert!(
        m.summary
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("lease expired during attempt 1")
    );
    let delay = m.available_at - f.now();
    assert!(
        (500..=1000).contains(&delay),
        "backoff after the lost attempt: {delay}"
    );

    // Refused while queued...
    let err = f
        .store
        .ack(&first, vec![NewMessage::new("x", b"{}".to_vec())])
        .await
        .expect_err("a stale ack is refused");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    // ...and after someone else claimed it again.
    f.clock.advance(Duration::from_secs(1));
    let second = claim_one(&f.store, &["a"]).await;
    assert_eq!(second.attempts, 2);
    assert_ne!(second.lease.token, first.lease.token);
    assert!(matches!(
        f.store.ack(&first, vec![]).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        f.store.fail(&first, retry("late")).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(total(&f.store).await, 1, "the stale ack emitted nothing");
    // The live lease still works.
    f.store.ack(&second, vec![]).await.expect("live ack");
    assert_eq!(total(&f.store).await, 0);
}

async fn retryable_failure_backs_off_then_dies_at_max_attempts(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let mut expected_delay = 1000;
    for attempt in 1..=2u32 {
        let c = claim_one(&f.store, &["a"]).await;
        assert_eq!(c.attempts, attempt);
        let settled = f
            .store
            .fail(&c, retry(&format!("boom {attempt}")))
            .await
            .expect("fail");
        let m = f.store.message(id).await.expect("stored");
        assert_eq!(m.state, MessageState::Queued);
        assert_eq!(
            m.summary.last_error.as_deref(),
            Some(format!("boom {attempt}").as_str())
        );
        let Settled::Requeued { available_at } = settled else {
            panic!("expected requeue, got {settled:?}")
        };
        assert_eq!(m.available_at, available_at);
        let delay = available_at - f.now();
        // Jitter takes off at most half.
        assert!(
            delay <= expected_delay && delay >= expected_delay / 2,
            "delay {delay}"
        );
        // Not claimable before it is due.
        assert!(claim(&f.store, 1, &["a"]).await.is_empty());
        f.clock.advance(Duration::from_millis(
            u64::try_from(delay).expect("positive"),
        ));
        expected_delay *= 2;
    }
    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(c.attempts, 3);
    assert_eq!(
        f.store.fail(&c, retry("boom 3")).await.expect("fail"),
        Settled::Dead
    );
    let m = f.store.dead_letter(id).await.expect("dead");
    assert_eq!(m.summary.attempts, 3);
    assert_eq!(
        m.summary.last_error.as_deref(),
        Some("gave up after 3 attempts: boom 3")
    );
    assert_eq!(m.summary.dead_at, Some(f.now()));
}

async fn a_requested_delay_replaces_the_backoff(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let c = claim_one(&f.store, &["a"]).await;
    let after = Some(Duration::from_secs(42));
    f.store
        .fail(
            &c,
            Failure::Retry {
                reason: "later".into(),
                after,
            },
        )
        .await
        .expect("fail");
    assert_eq!(
        f.store.message(id).await.expect("stored").available_at,
        T0 + 42_000
    );
}

async fn fatal_failure_is_dead_at_once_with_the_plugin_digest(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let c = claim_one(&f.store, &["a"]).await;
    let settled = f
        .store
        .settle_one(&c, Settlement::Fail(fatal("bad qty")), Some("sha256:abc"))
        .await
        .expect("fail");
    assert_eq!(settled, Settled::Dead);
    let m = f.store.dead_letter(id).await.expect("dead");
    assert_eq!(m.summary.attempts, 1);
    assert_eq!(m.summary.last_error.as_deref(), Some("fatal: bad qty"));
    assert_eq!(m.summary.plugin_digest.as_deref(), Some("sha256:abc"));
}

async fn a_lease_expiring_at_the_last_attempt_dead_letters_the_message(backend: Backend) {
    let f = fixture(backend).await;
    let id = f
        .store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_max_attempts(1))
        .await
        .expect("enqueue")
        .id;
    claim_one(&f.store, &["a"]).await;
    f.clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(
        f.store.reclaim().await.expect("reclaim").requeued
            + f.store.reclaim().await.expect("reclaim").dead,
        0,
        "not expired yet"
    );
    f.clock.advance(Duration::from_millis(1));
    let r = f.store.reclaim().await.expect("reclaim");
    assert_eq!((r.requeued, r.dead), (0, 1));
    let m = f.store.dead_letter(id).await.expect("dead");
    assert!(
        m.summary
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("gave up after 1 attempt: lease expired")
    );
}

/// A second host on the same store never takes a live host's lease before
/// it expires. (A lease whose owner process is gone is reclaimed at once:
/// `store_sqlite.rs` covers that, by editing the recorded pid.)
async fn reclaim_never_takes_a_live_hosts_unexpired_lease(backend: Backend) {
    let f = fixture(backend).await;
    let a = f.open_another().await;
    let b = f.open_another().await;
    let id = enqueue(&a, "t").await;
    let claimed = claim_one(&a, &["t"]).await;
    assert_eq!(
        b.reclaim().await.expect("reclaim"),
        Default::default(),
        "owner a is alive"
    );
    assert_eq!(
        a.message(id).await.expect("stored").state,
        MessageState::Inflight
    );
    f.clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(
        b.reclaim().await.expect("reclaim"),
        Default::default(),
        "a's lease has not expired"
    );
    // a's lease is still good.
    a.ack(&claimed, vec![]).await.expect("ack");
    assert_eq!(total(&b).await, 0);
}

async fn key_dedupe_returns_the_existing_id_in_every_stored_state(backend: Backend) {
    let f = fixture(backend).await;
    let keyed = || {
        NewMessage::new("a", b"{}".to_vec())
            .with_key("k-1")
            .with_max_attempts(1)
    };
    let first = f.store.enqueue(keyed()).await.expect("enqueue");
    assert!(!first.duplicate);
    let again = f.store.enqueue(keyed()).await.expect("enqueue");
    assert_eq!((again.id, again.duplicate), (first.id, true));

    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(
        f.store.enqueue(keyed()).await.expect("enqueue").id,
        first.id,
        "in flight"
    );
    f.store.fail(&c, retry("x")).await.expect("fail");
    assert_eq!(
        f.store.message(first.id).await.expect("stored").state,
        MessageState::Dead
    );
    assert_eq!(
        f.store.enqueue(keyed()).await.expect("enqueue").id,
        first.id,
        "dead"
    );
    assert_eq!(total(&f.store).await, 1);

    // Within one batch the key resolves to the first carrier.
    let batch = f
        .store
        .enqueue_batch(vec![
            NewMessage::new("a", b"{}".to_vec()).with_key("k-2"),
            NewMessage::new("a", b"{}".to_vec()).with_key("k-2"),
        ])
        .await
        .expect("batch");
    assert_eq!(batch[0].id, batch[1].id);
    assert!(batch[1].duplicate);
    // Once purged, the key is still remembered (for `key_retention`).
    f.store
        .purge(Selection::One(first.id))
        .await
        .expect("purge");
    let after_purge = f.store.enqueue(keyed()).await.expect("enqueue");
    assert_eq!((after_purge.id, after_purge.duplicate), (first.id, true));
    assert_eq!(total(&f.store).await, 1, "the k-2 message only; nothing new");
}

async fn a_key_is_remembered_for_its_retention_after_its_message_is_acked(backend: Backend) {
    let at = TestLocation::new(backend).await;
    let clock = ManualClock::new(T0);
    let retention = Duration::from_secs(60);
    let store = at
        .open_with(OpenOptions {
            clock: std::sync::Arc::new(clock.clone()),
            policies: policies(),
            key_retention: retention,
            ..OpenOptions::default()
        })
        .await;
    let keyed = || NewMessage::new("a", b"{}".to_vec()).with_key("order-7");
    let first = store.enqueue(keyed()).await.expect("enqueue");
    let c = claim_one(&store, &["a"]).await;
    store.ack(&c, vec![]).await.expect("ack");
    assert_eq!(total(&store).await, 0);

    // Before any sweep, and within the window after it: the original id,
    // as a duplicate, and nothing stored. A batch resolves it too.
    let again = store.enqueue(keyed()).await.expect("enqueue");
    assert_eq!((again.id, again.duplicate), (first.id, true));
    assert_eq!(store.sweep().await.expect("sweep").keys_forgotten, 0);
    clock.advance(retention - Duration::from_millis(1));
    assert_eq!(store.sweep().await.expect("sweep").keys_forgotten, 0);
    let batch = store
        .enqueue_batch(vec![
            NewMessage::new("a", b"{}".to_vec()).with_key("other"),
            keyed(),
        ])
        .await
        .expect("batch");
    assert_eq!((batch[1].id, batch[1].duplicate), (first.id, true));
    assert!(!batch[0].duplicate);
    assert_eq!(total(&store).await, 1, "only the other key's message");

    // Once the window has passed, a sweep forgets the key: it enqueues anew.
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.sweep().await.expect("sweep").keys_forgotten, 1);
    let fresh = store.enqueue(keyed()).await.expect("enqueue");
    assert!(!fresh.duplicate);
    assert_ne!(fresh.id, first.id);

    // A second removal of the same key starts a new window.
    let c = claim(&store, 10, &["a"]).await;
    for claimed in &c {
        store.ack(claimed, vec![]).await.expect("ack");
    }
    let later = store.enqueue(keyed()).await.expect("enqueue");
    assert_eq!((later.id, later.duplicate), (fresh.id, true));
}

async fn a_settle_batch_is_one_transaction_with_per_message_results(backend: Backend) {
    let f = fixture(backend).await;
    for _ in 0..4 {
        enqueue(&f.store, "a").await;
    }
    let claimed = claim(&f.store, 4, &["a"]).await;
    // The third message's lease is stolen before the batch settles.
    let stale = Claimed {
        lease: Lease {
            id: claimed[2].id(),
            token: "not-the-token".into(),
        },
        ..claimed[2].clone()
    };
    let ack = Settlement::Ack {
        follow_ups: vec![NewMessage::new("f", b"{}".to_vec())],
    };
    let batch = vec![
        Outcome::new(claimed[0].clone(), ack.clone()),
        Outcome::new(claimed[1].clone(), Settlement::Fail(retry("r"))),
        Outcome::new(stale, ack),
        Outcome::new(claimed[3].clone(), Settlement::Fail(fatal("x"))),
    ];
    let (returned, results) = f.store.settle(batch.clone()).await;
    assert_eq!(returned, batch, "the batch is handed back");
    let results = results.expect("batch commits");
    assert!(matches!(results[0], Ok(Settled::Acked)));
    assert!(matches!(results[1], Ok(Settled::Requeued { .. })));
    assert!(matches!(results[2], Err(StoreError::LeaseLost { .. })));
    assert!(matches!(results[3], Ok(Settled::Dead)));
    let stats = f.store.stats().await.expect("stats");
    assert_eq!(
        stats.by_event_type["f"].counts.queued, 1,
        "only the valid ack's follow-up"
    );
    assert_eq!(
        stats.by_event_type["a"].counts.inflight, 1,
        "the stolen one is untouched"
    );
    assert_eq!(stats.by_event_type["a"].counts.queued, 1);
    assert_eq!(stats.by_event_type["a"].counts.dead, 1);
}

/// One batch holds acks of messages from different claims (each claim's
/// lease token its own), and the same message acked twice: every lease
/// still held is acked, and a message only once, so its follow-ups are
/// committed once.
async fn acks_of_several_claims_settle_together_and_a_message_is_acked_once(backend: Backend) {
    let f = fixture(backend).await;
    for _ in 0..4 {
        enqueue(&f.store, "a").await;
    }
    let first = claim(&f.store, 2, &["a"]).await;
    let second = claim(&f.store, 2, &["a"]).await;
    assert_ne!(first[0].lease.token, second[0].lease.token, "a token per claim");
    let ack = || Settlement::Ack {
        follow_ups: vec![NewMessage::new("f", b"{}".to_vec())],
    };
    let batch = vec![
        Outcome::new(second[0].clone(), ack()),
        Outcome::new(first[0].clone(), ack()),
        Outcome::new(second[0].clone(), ack()),
        Outcome::new(first[1].clone(), ack()),
        Outcome::new(second[1].clone(), Settlement::Fail(retry("r"))),
    ];
    let (_, results) = f.store.settle(batch).await;
    let results = results.expect("batch commits");
    assert!(matches!(results[0], Ok(Settled::Acked)), "{:?}", results[0]);
    assert!(matches!(results[1], Ok(Settled::Acked)), "{:?}", results[1]);
    assert!(
        matches!(results[2], Err(StoreError::LeaseLost { .. })),
        "acked already in this batch: {:?}",
        results[2]
    );
    assert!(matches!(results[3], Ok(Settled::Acked)), "{:?}", results[3]);
    assert!(matches!(results[4], Ok(Settled::Requeued { .. })), "{:?}", results[4]);
    let stats = f.store.stats().await.expect("stats");
    assert_eq!(
        stats.by_event_type["f"].counts.queued, 3,
        "one follow-up per acked message"
    );
    assert_eq!(stats.by_event_type["a"].counts.queued, 1, "the failed one");
    assert_eq!(stats.by_event_type["a"].counts.inflight, 0);
}

/// A batch of 75 messages, keyed ones among them and a key repeated, is
/// stored in its order with every field as given: claimed back in the
/// order enqueued, each with its payload, source and correlation id, the
/// repeated key resolving to its first message.
async fn a_large_batch_keeps_its_order_its_fields_and_its_keys(backend: Backend) {
    let f = fixture(backend).await;
    let batch: Vec<NewMessage> = (0..75)
        .map(|i| {
            let m = NewMessage {
                source: Some(format!("src{i}")),
                correlation_id: (i % 3 == 0).then(|| format!("corr{i}")),
                ..NewMessage::new("a", format!("{{\"n\":{i}}}").into_bytes())
            };
            match i {
                10 | 40 => m.with_key(format!("k{i}")),
                41 => m.with_key("k10"),
                _ => m,
            }
        })
        .collect();
    let enqueued = f.store.enqueue_batch(batch).await.expect("enqueue");
    assert_eq!(enqueued.len(), 75);
    assert!(enqueued[41].duplicate && enqueued[41].id == enqueued[10].id);
    assert_eq!(enqueued.iter().filter(|e| e.duplicate).count(), 1);
    let claimed = claim(&f.store, 100, &["a"]).await;
    let stored: Vec<usize> = (0..75).filter(|i| *i != 41).collect();
    assert_eq!(claimed.len(), stored.len());
    for (c, i) in claimed.iter().zip(stored) {
        assert_eq!(c.id(), enqueued[i].id, "claimed in the order enqueued");
        assert_eq!(c.payload, format!("{{\"n\":{i}}}").into_bytes());
        assert_eq!(c.source.as_deref(), Some(format!("src{i}").as_str()));
        let correlation = if i % 3 == 0 { format!("corr{i}") } else { c.id().to_string() };
        assert_eq!(c.correlation_id, correlation);
        assert_eq!(c.key.is_some(), i == 10 || i == 40);
        assert_eq!((c.attempts, c.max_attempts, c.depth), (1, 3, 0));
    }
}

/// Keyed messages, many to a batch: each duplicate resolves to the message
/// holding its key, whether stored before the batch, removed with its key
/// retained, or earlier in the same batch (close by or far back); the
/// others are stored in batch order. Follow-ups resolve the same way.
async fn a_keyed_batch_resolves_every_duplicate_and_keeps_its_order(backend: Backend) {
    let f = fixture(backend).await;
    let keyed = |key: &str| NewMessage::new("a", format!("{{\"k\":\"{key}\"}}").into_bytes()).with_key(key);
    let stored = f.store.enqueue(keyed("stored")).await.expect("enqueue").id;
    let removed = f.store.enqueue(keyed("removed")).await.expect("enqueue").id;
    f.store.cancel_ids(vec![removed]).await.expect("cancel");
    let keys: Vec<String> = (0..70)
        .map(|i| match i {
            5 => "stored".to_owned(),
            9 => "removed".to_owned(),
            12 => "k11".to_owned(),
            66 => "k1".to_owned(),
            _ => format!("k{i}"),
        })
        .collect();
    let enqueued = f
        .store
        .enqueue_batch(keys.iter().map(|k| keyed(k)).collect())
        .await
        .expect("enqueue");
    assert_eq!(enqueued.len(), 70);
    for (i, e) in enqueued.iter().enumerate() {
        let expected = match i {
            5 => Some(stored),
            9 => Some(removed),
            12 => Some(enqueued[11].id),
            66 => Some(enqueued[1].id),
            _ => None,
        };
        match expected {
            Some(id) => assert_eq!((e.id, e.duplicate), (id, true), "message {i}"),
            None => assert!(!e.duplicate, "message {i}"),
        }
    }
    let claimed = claim(&f.store, 100, &["a"]).await;
    let fresh: Vec<MessageId> = enqueued.iter().filter(|e| !e.duplicate).map(|e| e.id).collect();
    assert_eq!(fresh.len(), 66);
    let mut expected = vec![stored];
    expected.extend(&fresh);
    assert_eq!(claimed.iter().map(Claimed::id).collect::<Vec<_>>(), expected, "stored in batch order");
    for c in &claimed[1..] {
        let key = c.key.as_deref().expect("keyed");
        assert_eq!(c.payload, format!("{{\"k\":\"{key}\"}}").into_bytes());
    }

    // Three acks, two emitting the same key, one a key already stored.
    let follow = |key: &str| Settlement::Ack {
        follow_ups: vec![NewMessage::new("f", b"{}".to_vec()).with_key(key)],
    };
    let batch = vec![
        Outcome::new(claimed[1].clone(), follow("f-1")),
        Outcome::new(claimed[2].clone(), follow("f-1")),
        Outcome::new(claimed[3].clone(), follow("k40")),
    ];
    let (_, results) = f.store.settle(batch).await;
    let results = results.expect("commits");
    assert!(results.iter().all(|r| matches!(r, Ok(Settled::Acked))), "{results:?}");
    let follow_ups = claim(&f.store, 10, &["f"]).await;
    assert_eq!(follow_ups.len(), 1, "one f-1; k40 was already stored");
    assert_eq!(follow_ups[0].key.as_deref(), Some("f-1"));
    assert_eq!(follow_ups[0].correlation_id, claimed[1].correlation_id, "the first carrier's");
}

async fn settle_and_claim_settles_then_claims_what_is_due_follow_ups_included(backend: Backend) {
    let f = fixture(backend).await;
    for _ in 0..3 {
        enqueue(&f.store, "a").await;
    }
    let claimed = claim(&f.store, 2, &["a"]).await;
    let stale = Claimed {
        lease: Lease {
            id: claimed[1].id(),
            token: "not-the-token".into(),
        },
        ..claimed[1].clone()
    };
    let batch = vec![
        Outcome::new(
            claimed[0].clone(),
            Settlement::Ack {
                follow_ups: vec![NewMessage::new("f", b"{}".to_vec())],
            },
        ),
        Outcome::new(stale, Settlement::Ack { follow_ups: Vec::new() }),
    ];
    let (returned, result) = f
        .store
        .settle_and_claim(batch.clone(), 10, LEASE, types(&["a", "f"]), TypeCaps::new())
        .await;
    assert_eq!(returned, batch, "the batch is handed back");
    let (results, next) = result.expect("commits");
    assert!(matches!(results[0], Ok(Settled::Acked)));
    assert!(matches!(results[1], Err(StoreError::LeaseLost { .. })));
    // The third message, and the follow-up the ack just committed: the
    // claim sees what the settle wrote. The stolen one stays in flight.
    let mut next_types: Vec<&str> = next.iter().map(|c| c.event_type.as_str()).collect();
    next_types.sort_unstable();
    assert_eq!(next_types, ["a", "f"]);
    assert!(next.iter().all(|c| c.attempts == 1 && c.lease_expires_at == f.now() + LEASE.as_millis() as i64));
    assert!(!next.iter().any(|c| c.id() == claimed[0].id() || c.id() == claimed[1].id()));
    let stats = f.store.stats().await.expect("stats");
    assert_eq!(stats.by_event_type["a"].counts.inflight, 2, "the stolen one and the third");
    assert_eq!(stats.by_event_type["f"].counts.inflight, 1);
    assert_eq!(total(&f.store).await, 3, "the acked one is gone");

    // With nothing due, it settles and claims nothing.
    let batch = vec![Outcome::new(next[0].clone(), Settlement::Fail(retry("later")))];
    let (_, result) = f
        .store
        .settle_and_claim(batch, 10, LEASE, types(&["a", "f"]), TypeCaps::new())
        .await;
    let (results, none) = result.expect("commits");
    assert!(matches!(results[0], Ok(Settled::Requeued { .. })));
    assert!(none.is_empty(), "a backed-off message is not due: {none:?}");
}

async fn dead_letters_list_show_redrive_and_purge(backend: Backend) {
    let f = fixture(backend).await;
    let store = &f.store;
    let kill = async |t: &str| {
        let id = enqueue(store, t).await;
        let c = claim_one(store, &[t]).await;
        store
            .fail(&c, fatal(&format!("bad {t}")))
            .await
            .expect("fail");
        id
    };
    let a1 = kill("a").await;
    let b1 = kill("b").await;
    let a2 = kill("a").await;
    let a3 = kill("a").await;
    let live = enqueue(store, "a").await;

    let page = store
        .dead_letters(DeadLetterFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![a1, b1]
    );
    let rest = store
        .dead_letters(DeadLetterFilter {
            limit: 2,
            cursor: page.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        rest.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![a2, a3]
    );
    assert_eq!(rest.next_cursor, None);
    let only_b = store
        .dead_letters(DeadLetterFilter {
            event_type: Some("b".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(only_b.items.len(), 1);
    assert_eq!(only_b.items[0].last_error.as_deref(), Some("fatal: bad b"));
    assert!(matches!(
        store
            .dead_letters(DeadLetterFilter {
                cursor: Some("nope".into()),
                ..Default::default()
            })
            .await,
        Err(StoreError::Invalid(_))
    ));

    let shown = store.dead_letter(a1).await.expect("show");
    assert_eq!(shown.payload, br#"{"n":1}"#);
    assert!(matches!(
        store.dead_letter(live).await,
        Err(StoreError::WrongState {
            actual: MessageState::Queued,
            ..
        })
    ));
    assert!(matches!(
        store.dead_letter(MessageId::new()).await,
        Err(StoreError::NoSuchMessage { .. })
    ));

    // Redrive one: queued, attempts reset, due now, claimable again.
    assert_eq!(store.redrive(Selection::One(a1)).await.expect("redrive"), 1);
    let m = store.message(a1).await.expect("stored");
    assert_eq!(
        (m.state, m.summary.attempts, m.available_at),
        (MessageState::Queued, 0, T0)
    );
    assert!(matches!(
        store.redrive(Selection::One(a1)).await,
        Err(StoreError::WrongState { .. })
    ));
    assert!(matches!(
        store.redrive(Selection::One(MessageId::new())).await,
        Err(StoreError::NoSuchMessage { .. })
    ));
    // By type, then purge by type and all.
    assert_eq!(
        store
            .redrive(Selection::EventType("b".into()))
            .await
            .expect("redrive"),
        1
    );
    assert_eq!(
        store.message(b1).await.expect("stored").state,
        MessageState::Queued
    );
    assert_eq!(
        store
            .purge(Selection::EventType("a".into()))
            .await
            .expect("purge"),
        2
    );
    assert!(matches!(
        store.message(a2).await,
        Err(StoreError::NoSuchMessage { .. })
    ));
    let c = claim_one(store, &["b"]).await;
    store.fail(&c, fatal("again")).await.expect("fail");
    assert_eq!(store.redrive(Selection::All).await.expect("redrive"), 1);
    let c = claim_one(store, &["b"]).await;
    store.fail(&c, fatal("again")).await.expect("fail");
    assert_eq!(store.purge(Selection::All).await.expect("purge"), 1);
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.totals.queued, stats.totals.dead),
        (2, 0),
        "a1 and the live one remain"
    );
}

async fn dead_letters_are_taken_in_order_of_death_by_every_condition(backend: Backend) {
    let f = fixture(backend).await;
    let store = &f.store;
    // Enqueued in order e1, e2, e3, e4 but dying in order e3, e1, e4, e2,
    // one second apart.
    let ids: Vec<MessageId> = futures_ids(store, &["a", "a", "b", "a"]).await;
    let mut claimed = claim(store, 4, &["a", "b"]).await;
    claimed.sort_by_key(|c| ids.iter().position(|id| *id == c.id()));
    let mut deaths = Vec::new();
    for (index, reason) in [(2, "timeout calling shop"), (0, "timeout calling mail"), (3, "bad input"), (1, "timeout calling shop")] {
        f.clock.advance(Duration::from_secs(1));
        store.fail(&claimed[index], fatal(reason)).await.expect("fail");
        deaths.push((ids[index], f.now()));
    }
    let order: Vec<MessageId> = deaths.iter().map(|(id, _)| *id).collect();

    // Listed in order of death, across pages.
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .dead_letters(DeadLetterFilter {
                limit: 1,
                cursor,
                ..Default::default()
            })
            .await
            .expect("list");
        listed.extend(page.items.iter().map(|d| d.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, order);

    // Every condition narrows; all of them hold together.
    let list = async |filter: DeadLetterFilter| -> Vec<MessageId> {
        store
            .dead_letters(filter)
            .await
            .expect("list")
            .items
            .iter()
            .map(|d| d.id)
            .collect()
    };
    let timeouts = list(DeadLetterFilter {
        error_contains: Some("timeout".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(timeouts, vec![ids[2], ids[0], ids[1]]);
    assert_eq!(
        list(DeadLetterFilter {
            error_contains: Some("Timeout".into()),
            ..Default::default()
        })
        .await,
        Vec::<MessageId>::new(),
        "case-sensitive"
    );
    let window = list(DeadLetterFilter {
        died_after: Some(deaths[1].1),
        died_before: Some(deaths[3].1),
        ..Default::default()
    })
    .await;
    assert_eq!(window, vec![ids[0], ids[3]], "after is inclusive, before is not");
    let all_of_them = DeadLetterMatch {
        event_type: Some("a".into()),
        error_contains: Some("timeout".into()),
        died_after: Some(deaths[1].1),
        died_before: None,
    };
    assert_eq!(
        store
            .count_dead_letters(all_of_them.clone())
            .await
            .expect("count"),
        2
    );
    assert_eq!(
        store
            .count_dead_letters(DeadLetterMatch::default())
            .await
            .expect("count"),
        4
    );

    // A limited redrive takes the first dead first.
    let first = Selection::Matching {
        matching: all_of_them.clone(),
        limit: Some(1),
    };
    assert_eq!(store.redrive(first).await.expect("redrive"), 1);
    assert_eq!(
        store.message(ids[0]).await.expect("stored").state,
        MessageState::Queued
    );
    assert_eq!(
        store.message(ids[1]).await.expect("stored").state,
        MessageState::Dead
    );
    // A purge by conditions leaves those that miss one.
    let purged = store
        .purge(Selection::Matching {
            matching: DeadLetterMatch {
                error_contains: Some("timeout".into()),
                ..DeadLetterMatch::default()
            },
            limit: None,
        })
        .await
        .expect("purge");
    assert_eq!(purged, 2, "e3 and e2; e1 is queued again");
    assert_eq!(list(DeadLetterFilter::default()).await, vec![ids[3]]);
}

/// Enqueues one message of each type, in order.
async fn futures_ids(store: &Store, event_types: &[&str]) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for t in event_types {
        ids.push(enqueue(store, t).await);
    }
    ids
}

/// A store on `backend` whose event type `event_type` has `limits`, with
/// the manual clock it reads.
async fn with_limits(
    backend: Backend,
    event_type: &str,
    limits: QueueLimits,
) -> (TestLocation, ManualClock, Store) {
    let at = TestLocation::new(backend).await;
    let clock = ManualClock::new(T0);
    let mut p = policies();
    p.limits.insert(event_type.into(), limits);
    let store = at
        .open_with(OpenOptions {
            clock: std::sync::Arc::new(clock.clone()),
            policies: p,
            ..OpenOptions::default()
        })
        .await;
    (at, clock, store)
}

async fn a_message_past_its_ttl_is_dead_lettered_never_delivered(backend: Backend) {
    let (_at, clock, store) = with_limits(
        backend,
        "short",
        QueueLimits {
            ttl: Some(Duration::from_secs(30)),
            ..QueueLimits::default()
        },
    )
    .await;
    let early = enqueue(&store, "short").await;
    let other = enqueue(&store, "long").await;
    clock.advance(Duration::from_secs(20));
    let late = enqueue(&store, "short").await;

    // Within its ttl a message is delivered as usual.
    clock.advance(Duration::from_secs(9));
    let c = claim_one(&store, &["short"]).await;
    assert_eq!(c.id(), early);
    store.release(vec![c.lease]).await.expect("release");

    // At its ttl it is never handed out: the claim dead-letters it and
    // hands out the next live one.
    clock.advance(Duration::from_secs(1));
    let c = claim(&store, 10, &["short", "long"]).await;
    assert_eq!(c.iter().map(Claimed::id).collect::<Vec<_>>(), vec![other, late]);
    let dead = store.message(early).await.expect("stored");
    assert_eq!(dead.state, MessageState::Dead);
    assert_eq!(
        dead.summary.last_error.as_deref(),
        Some("expired after 30s: not handled within its event type's ttl")
    );
    assert_eq!(dead.summary.dead_at, Some(clock.now_ms()));
    for claimed in &c {
        store.release(vec![claimed.lease.clone()]).await.expect("release");
    }

    // The sweep expires queued ones nobody claims; types without a ttl wait.
    clock.advance(Duration::from_secs(19));
    assert_eq!(store.sweep().await.expect("sweep").expired, 0, "late has 1 s left");
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.sweep().await.expect("sweep").expired, 1);
    assert_eq!(
        store.message(late).await.expect("stored").state,
        MessageState::Dead
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(store.sweep().await.expect("sweep").expired, 0);
    assert_eq!(
        store.message(other).await.expect("stored").state,
        MessageState::Queued
    );
    assert!(claim(&store, 10, &["short"]).await.is_empty());
}

async fn an_enqueue_over_a_types_max_queued_is_refused_whole(backend: Backend) {
    let (_at, _clock, store) = with_limits(
        backend,
        "capped",
        QueueLimits {
            max_queued: Some(2),
            ..QueueLimits::default()
        },
    )
    .await;
    let m = |t: &str| NewMessage::new(t, b"{}".to_vec());
    store
        .enqueue_batch(vec![m("capped"), m("capped").with_key("k")])
        .await
        .expect("up to the limit");
    let err = store
        .enqueue_batch(vec![m("free"), m("capped")])
        .await
        .expect_err("over the limit");
    assert!(
        matches!(&err, StoreError::OverCapacity { event_type, max_queued: 2 } if event_type == "capped"),
        "{err}"
    );
    assert!(err.to_string().contains("max_queued"), "{err}");
    assert_eq!(total(&store).await, 2, "nothing of the refused batch");
    // A duplicate stores nothing, so it is not refused.
    assert!(store.enqueue(m("capped").with_key("k")).await.expect("dup").duplicate);
    // Other types are not limited; a claimed message frees a place.
    store.enqueue(m("free")).await.expect("free");
    let c = claim_one(&store, &["capped"]).await;
    store.enqueue(m("capped")).await.expect("room again");
    assert!(matches!(
        store.enqueue(m("capped")).await,
        Err(StoreError::OverCapacity { .. })
    ));
    store.ack(&c, vec![]).await.expect("ack");
}

async fn an_ack_whose_events_do_not_fit_is_a_retryable_failure(backend: Backend) {
    let (_at, clock, store) = with_limits(
        backend,
        "capped",
        QueueLimits {
            max_queued: Some(1),
            ..QueueLimits::default()
        },
    )
    .await;
    let m = |t: &str| NewMessage::new(t, b"{}".to_vec());
    store.enqueue(m("capped")).await.expect("fills the queue");
    let source = enqueue(&store, "src").await;
    let c = claim_one(&store, &["src"]).await;
    let settled = store
        .settle_one(&c, Settlement::Ack { follow_ups: vec![m("capped"), m("free")] }, None)
        .await
        .expect("settled");
    assert!(matches!(settled, Settled::Requeued { .. }), "{settled:?}");
    let back = store.message(source).await.expect("stored");
    assert_eq!((back.state, back.summary.attempts), (MessageState::Queued, 1));
    assert!(
        back.summary
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("do not fit") && e.contains("capped")),
        "{:?}",
        back.summary.last_error
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.by_event_type["capped"].counts.queued, 1, "nothing emitted");
    assert!(!stats.by_event_type.contains_key("free"), "not even the uncapped event");

    // Once the queue drains, the retry's events fit.
    let capped = claim_one(&store, &["capped"]).await;
    store.ack(&capped, vec![]).await.expect("ack");
    clock.advance(Duration::from_secs(60));
    let c = claim_one(&store, &["src"]).await;
    store
        .ack(&c, vec![m("capped")])
        .await
        .expect("fits now");
    assert_eq!(
        store.stats().await.expect("stats").by_event_type["capped"].counts.queued,
        1
    );
}

async fn stats_count_by_state_type_and_priority(backend: Backend) {
    let f = fixture(backend).await;
    enqueue(&f.store, "a").await;
    f.store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_priority(Priority::High))
        .await
        .expect("enqueue");
    f.store
        .enqueue(NewMessage::new("b", b"{}".to_vec()).with_delay(Duration::from_secs(60)))
        .await
        .expect("enqueue");
    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(c.priority, Priority::High);
    f.clock.advance(Duration::from_secs(5));
    let s = f.store.stats().await.expect("stats");
    assert_eq!(
        (s.totals.queued, s.totals.inflight, s.totals.dead),
        (2, 1, 0)
    );
    assert_eq!(
        (s.by_event_type["a"].counts.queued, s.by_event_type["a"].counts.inflight),
        (1, 1)
    );
    assert_eq!(s.by_event_type["b"].counts.queued, 1);
    assert_eq!(s.by_priority[&Priority::High].inflight, 1);
    assert_eq!(s.by_priority[&Priority::Normal].queued, 2);
    assert_eq!(s.due, 1, "b is delayed");
    assert_eq!(s.oldest_due_age_ms, Some(5000));
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["queued"], 2);
    assert_eq!(json["by_event_type"]["a"]["inflight"], 1);
}

/// Read-only commands open with `create: false`: a missing store (an SQLite
/// file, or the schema in a PostgreSQL database) is an error naming it, and
/// nothing is created.
async fn a_missing_store_is_not_created_when_asked_not_to(backend: Backend) {
    let at = TestLocation::new(backend).await;
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    let open = async || {
        Store::open(&at.location, &options)
            .await
            .expect_err("no store there")
    };
    let err = open().await;
    match &at.location {
        Location::Sqlite(path) => {
            assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
            assert!(!path.exists());
        }
        Location::Postgres(_) => {
            assert!(matches!(err, StoreError::NoSchema { .. }), "{err}");
        }
    }
    // Nothing was created: asking again gives the same answer.
    let again = open().await;
    assert_eq!(again.to_string(), err.to_string());
}

async fn release_returns_claims_without_spending_their_attempt(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(
        f.store
            .release(vec![c.lease.clone()])
            .await
            .expect("release"),
        1
    );
    let m = f.store.message(id).await.expect("stored");
    assert_eq!(
        (m.state, m.summary.attempts, m.available_at),
        (MessageState::Queued, 0, T0)
    );
    // A released lease is gone: releasing or acking it again does nothing.
    assert_eq!(
        f.store
            .release(vec![c.lease.clone()])
            .await
            .expect("release"),
        0
    );
    assert!(matches!(
        f.store.ack(&c, vec![]).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(claim_one(&f.store, &["a"]).await.attempts, 1);
}

async fn next_due_at_is_the_earliest_queued_routable_message(backend: Backend) {
    let f = fixture(backend).await;
    let next_due = async |names: &[&str]| f.store.next_due_at(&types(names)).await.expect("query");
    assert_eq!(next_due(&["a"]).await, None);
    f.store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_delay(Duration::from_secs(9)))
        .await
        .expect("enqueue");
    f.store
        .enqueue(NewMessage::new("a", b"{}".to_vec()).with_delay(Duration::from_secs(4)))
        .await
        .expect("enqueue");
    f.store
        .enqueue(NewMessage::new("b", b"{}".to_vec()))
        .await
        .expect("enqueue");
    assert_eq!(next_due(&["a"]).await, Some(T0 + 4000));
    assert_eq!(next_due(&["a", "b"]).await, Some(T0));
    assert_eq!(next_due(&["c"]).await, None);
}

/// Whichever way a message came back to the queue, the dispatcher is told
/// when to wake for it: at its backoff's end, or at once (a due time at or
/// before now) when it is due already.
async fn next_due_at_follows_backoff_release_and_redrive(backend: Backend) {
    let f = fixture(backend).await;
    let next_due = async || f.store.next_due_at(&types(&["a"])).await.expect("query");
    let due_now = async || next_due().await.is_some_and(|t| t <= f.now());

    enqueue(&f.store, "a").await;
    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(next_due().await, None, "nothing queued while it is in flight");
    let Settled::Requeued { available_at } = f.store.fail(&c, retry("boom")).await.expect("fail")
    else {
        panic!("expected a requeue")
    };
    assert!(available_at > f.now());
    assert_eq!(next_due().await, Some(available_at), "wake at the backoff's end");
    f.clock.advance(Duration::from_secs(60));
    assert!(due_now().await, "due once its backoff is over");

    // Claimed and handed back unspent: due again at once.
    let c = claim_one(&f.store, &["a"]).await;
    f.store.release(vec![c.lease.clone()]).await.expect("release");
    assert!(due_now().await, "a released message is due at once");

    // A message due now behind a delayed one of higher priority.
    let c = claim_one(&f.store, &["a"]).await;
    f.store.ack(&c, Vec::new()).await.expect("ack");
    f.store
        .enqueue(
            NewMessage::new("a", b"{}".to_vec())
                .with_priority(Priority::High)
                .with_delay(Duration::from_secs(30)),
        )
        .await
        .expect("enqueue");
    assert_eq!(next_due().await, Some(f.now() + 30_000));
    let plain = enqueue(&f.store, "a").await;
    assert!(due_now().await, "the plain message is due now");

    // Dead, then redriven: due at once.
    let c = claim_one(&f.store, &["a"]).await;
    assert_eq!(c.id(), plain);
    assert_eq!(f.store.fail(&c, fatal("no")).await.expect("fail"), Settled::Dead);
    assert_eq!(next_due().await, Some(f.now() + 30_000), "the dead letter waits for nobody");
    assert_eq!(f.store.redrive(Selection::One(plain)).await.expect("redrive"), 1);
    assert!(due_now().await, "a redriven message is due at once");
}

async fn follow_ups_are_one_deeper_than_the_message_that_emitted_them(backend: Backend) {
    let f = fixture(backend).await;
    enqueue(&f.store, "a").await;
    let first = claim_one(&f.store, &["a"]).await;
    assert_eq!(first.depth, 0, "a producer's message starts a chain");
    f.store
        .ack(&first, vec![NewMessage::new("b", b"{}".to_vec())])
        .await
        .expect("ack");
    let second = claim_one(&f.store, &["b"]).await;
    assert_eq!(second.depth, 1);
    // A batch settle carries depth too, per entry.
    enqueue(&f.store, "c").await;
    let other = claim_one(&f.store, &["c"]).await;
    let ack = |n: &str| Settlement::Ack {
        follow_ups: vec![NewMessage::new(n, b"{}".to_vec())],
    };
    let (_, results) = f
        .store
        .settle(vec![
            Outcome::new(second, ack("d")),
            Outcome::new(other, ack("e")),
        ])
        .await;
    results.expect("batch commits");
    assert_eq!(claim_one(&f.store, &["d"]).await.depth, 2);
    assert_eq!(claim_one(&f.store, &["e"]).await.depth, 1);
    // A redriven or retried message keeps its depth.
    enqueue(&f.store, "a").await;
    let root = claim_one(&f.store, &["a"]).await;
    f.store
        .ack(&root, vec![NewMessage::new("f", b"{}".to_vec())])
        .await
        .expect("ack");
    let child = claim_one(&f.store, &["f"]).await;
    f.store
        .fail(&child, retry("again"))
        .await
        .expect("fail");
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(claim_one(&f.store, &["f"]).await.depth, 1);
}

async fn a_claim_takes_turns_across_event_types_within_a_priority(backend: Backend) {
    let f = fixture(backend).await;
    let mut flood = Vec::new();
    for _ in 0..5 {
        flood.push(enqueue(&f.store, "flood").await);
    }
    let order = enqueue(&f.store, "order").await;
    let urgent = f
        .store
        .enqueue(NewMessage::new("flood", b"{}".to_vec()).with_priority(Priority::High))
        .await
        .expect("enqueue")
        .id;
    // Oldest first alone would fill the claim with the flood; in turns,
    // the order comes second among the normal ones.
    let claimed = claim(&f.store, 3, &["flood", "order"]).await;
    let ids: Vec<_> = claimed.iter().map(Claimed::id).collect();
    assert_eq!(ids, vec![urgent, flood[0], order]);
}

async fn a_claim_takes_at_most_each_types_cap(backend: Backend) {
    let f = fixture(backend).await;
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(enqueue(&f.store, "slow").await);
    }
    let mut fast = Vec::new();
    for _ in 0..5 {
        fast.push(enqueue(&f.store, "fast").await);
    }
    let caps = TypeCaps::from([("slow".to_owned(), 2)]);
    let claimed = f
        .store
        .claim_capped(8, LEASE, &types(&["fast", "slow"]), &caps)
        .await
        .expect("claim");
    let ids: Vec<_> = claimed.iter().map(Claimed::id).collect();
    // In turns, until the slow type reached its cap; the fast type fills
    // the rest of the limit.
    assert_eq!(ids, vec![slow[0], fast[0], slow[1], fast[1], fast[2], fast[3], fast[4]]);
    // Settling and claiming in one go honours the caps too.
    let (_, result) = f
        .store
        .settle_and_claim(Vec::<Outcome>::new(), 8, LEASE, types(&["slow"]), caps)
        .await;
    let (_, next) = result.expect("commits");
    assert_eq!(next.iter().map(Claimed::id).collect::<Vec<_>>(), vec![slow[2], slow[3]]);
}
