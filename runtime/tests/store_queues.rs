//! Operating live queues, the same on both backends: listing messages in any
//! state, cancelling queued ones (and only those), pausing and resuming an
//! event type for every host, and each type's queue information in stats.
//! Each test runs twice, as `sqlite::NAME` and `postgres::NAME`.

mod store_support;

use mailroom::message::MessageId;
use mailroom::state_machine::MessageState;
use mailroom::store::{Claimed, MessageFilter, StoreError};

use store_support::{Backend, T0, claim, enqueue, fixture};

fn filter(event_type: Option<&str>, state: Option<MessageState>, limit: usize) -> MessageFilter {
    MessageFilter {
        event_type: event_type.map(str::to_owned),
        state,
        limit,
        cursor: None,
    }
}

on_both_backends!(
    messages_are_listed_in_any_state_by_type_and_state_a_page_at_a_time,
    an_inflight_message_shows_who_holds_its_lease,
    cancel_removes_queued_messages_only_and_says_why_not_the_others,
    cancelling_a_type_removes_its_queued_messages_in_batches_and_leaves_the_inflight,
    a_paused_type_is_claimed_by_no_host_until_resumed,
    a_pause_outlasts_the_store_being_closed_and_opened_again,
    stats_show_each_types_queue_paused_oldest_due_and_handlers,
    stats_show_each_types_configured_limits,
);

async fn messages_are_listed_in_any_state_by_type_and_state_a_page_at_a_time(backend: Backend) {
    let f = fixture(backend).await;
    let a1 = enqueue(&f.store, "a").await;
    let b1 = enqueue(&f.store, "b").await;
    let a2 = enqueue(&f.store, "a").await;
    let a3 = enqueue(&f.store, "a").await;
    // a1 in flight, a2 dead, a3 and b1 queued.
    let c = claim(&f.store, 1, &["a"]).await;
    assert_eq!(c[0].id(), a1);
    let c2 = claim(&f.store, 1, &["a"]).await;
    f.store
        .fail(
            &c2[0],
            mailroom::state_machine::Failure::Fatal {
                reason: "bad".into(),
            },
        )
        .await
        .expect("fail");

    let all = f.store.messages(filter(None, None, 0)).await.expect("list");
    let ids: Vec<MessageId> = all.items.iter().map(|m| m.summary.id).collect();
    assert_eq!(ids, vec![a1, b1, a2, a3], "in the order enqueued");
    let states: Vec<MessageState> = all.items.iter().map(|m| m.state).collect();
    assert_eq!(
        states,
        vec![
            MessageState::Inflight,
            MessageState::Queued,
            MessageState::Dead,
            MessageState::Queued
        ]
    );
    assert_eq!(all.next_cursor, None);

    let queued_a = f
        .store
        .messages(filter(Some("a"), Some(MessageState::Queued), 0))
        .await
        .expect("list");
    assert_eq!(
        queued_a.items.iter().map(|m| m.summary.id).collect::<Vec<_>>(),
        vec![a3]
    );
    let dead = f
        .store
        .messages(filter(None, Some(MessageState::Dead), 0))
        .await
        .expect("list");
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].summary.last_error.as_deref(), Some("fatal: bad"));

    // Pages of two, continued by the cursor, with the filters kept.
    let first = f.store.messages(filter(None, None, 2)).await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.clone().expect("more");
    let second = f
        .store
        .messages(MessageFilter {
            cursor: Some(cursor),
            ..filter(None, None, 2)
        })
        .await
        .expect("page 2");
    assert_eq!(
        second.items.iter().map(|m| m.summary.id).collect::<Vec<_>>(),
        vec![a2, a3]
    );
    assert_eq!(second.next_cursor, None);
    let bad = f
        .store
        .messages(MessageFilter {
            cursor: Some("x".into()),
            ..MessageFilter::default()
        })
        .await
        .expect_err("a bad cursor is refused");
    assert!(matches!(bad, StoreError::Invalid(_)), "{bad}");
}

async fn an_inflight_message_shows_who_holds_its_lease(backend: Backend) {
    let f = fixture(backend).await;
    let id = enqueue(&f.store, "a").await;
    f.store.register_host().await.expect("register");
    let queued = f.store.message(id).await.expect("stored");
    assert_eq!(queued.lease, None, "no lease while queued");
    claim(&f.store, 1, &["a"]).await;
    let inflight = f.store.message(id).await.expect("stored");
    let lease = inflight.lease.expect("a lease while in flight");
    let host = &f.store.stats().await.expect("stats").hosts[0].host;
    assert_eq!(&lease.owner, host, "named as stats names the host");
    assert_eq!(lease.expires_at, Some(T0 + 30_000));
    let listed = f.store.messages(filter(None, None, 0)).await.expect("list");
    assert_eq!(listed.items[0].lease.as_ref(), Some(&lease));
}

async fn cancel_removes_queued_messages_only_and_says_why_not_the_others(backend: Backend) {
    let f = fixture(backend).await;
    let queued = enqueue(&f.store, "a").await;
    let inflight = enqueue(&f.store, "b").await;
    let dead = enqueue(&f.store, "c").await;
    claim(&f.store, 1, &["b"]).await;
    let c = claim(&f.store, 1, &["c"]).await;
    f.store
        .fail(
            &c[0],
            mailroom::state_machine::Failure::Fatal {
                reason: "bad".into(),
            },
        )
        .await
        .expect("fail");
    let unknown = MessageId::new();

    let done = f
        .store
        .cancel_ids(vec![queued, inflight, dead, unknown])
        .await
        .expect("cancel");
    assert_eq!(done.cancelled, 1);
    let reasons: Vec<(MessageId, &str)> = done
        .refused
        .iter()
        .map(|r| (r.id, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].0 == inflight && reasons[0].1.starts_with("in flight"), "{reasons:?}");
    assert!(reasons[1].0 == dead && reasons[1].1.contains("dlq purge"), "{reasons:?}");
    assert!(reasons[2].0 == unknown && reasons[2].1.starts_with("no message"), "{reasons:?}");

    assert!(matches!(
        f.store.message(queued).await,
        Err(StoreError::NoSuchMessage { .. })
    ));
    assert_eq!(
        f.store.message(inflight).await.expect("kept").state,
        MessageState::Inflight
    );
    assert_eq!(
        f.store.message(dead).await.expect("kept").state,
        MessageState::Dead
    );
    // The in-flight one settles as usual.
    let again = f.store.cancel_ids(vec![queued]).await.expect("cancel");
    assert_eq!((again.cancelled, again.refused.len()), (0, 1));
}

async fn cancelling_a_type_removes_its_queued_messages_in_batches_and_leaves_the_inflight(
    backend: Backend,
) {
    let f = fixture(backend).await;
    for _ in 0..7 {
        enqueue(&f.store, "bulk").await;
    }
    let other = enqueue(&f.store, "other").await;
    let running = claim(&f.store, 2, &["bulk"]).await;
    let mut removed = Vec::new();
    loop {
        let n = f.store.cancel_queued("bulk", 2).await.expect("cancel");
        assert!(n <= 2, "a batch is at most the limit");
        if n == 0 {
            break;
        }
        removed.push(n);
    }
    assert_eq!(removed.iter().sum::<usize>(), 5);
    assert_eq!(f.store.inflight_of("bulk").await.expect("count"), 2);
    let stats = f.store.stats().await.expect("stats");
    assert_eq!(stats.by_event_type["bulk"].counts.queued, 0);
    assert_eq!(stats.by_event_type["bulk"].counts.inflight, 2);
    assert_eq!(
        f.store.message(other).await.expect("kept").state,
        MessageState::Queued
    );
    // The running ones still ack.
    for c in &running {
        f.store.ack(c, vec![]).await.expect("ack");
    }
}

async fn a_paused_type_is_claimed_by_no_host_until_resumed(backend: Backend) {
    let f = fixture(backend).await;
    let other_host = f.open_another().await;
    let paused_one = enqueue(&f.store, "paused").await;
    let free = enqueue(&f.store, "free").await;

    let change = f.store.pause("paused").await.expect("pause");
    assert!(change.paused && change.changed);
    assert!(!f.store.pause("paused").await.expect("pause").changed);
    // Enqueues are still accepted.
    let later = enqueue(&other_host, "paused").await;

    for host in [&f.store, &other_host] {
        assert!(
            claim(host, 10, &["paused"]).await.is_empty(),
            "no host claims a paused type"
        );
        assert_eq!(
            host.next_due_at(&["paused".to_owned()]).await.expect("next"),
            None,
            "a paused type never wakes a dispatcher"
        );
    }
    let c = claim(&other_host, 10, &["paused", "free"]).await;
    assert_eq!(c.iter().map(Claimed::id).collect::<Vec<_>>(), vec![free]);
    assert_eq!(
        other_host.paused().await.expect("paused")[0].event_type,
        "paused"
    );

    let change = other_host.resume("paused").await.expect("resume");
    assert!(!change.paused && change.changed);
    assert!(!other_host.resume("paused").await.expect("resume").changed);
    assert_eq!(
        f.store.next_due_at(&["paused".to_owned()]).await.expect("next"),
        Some(T0)
    );
    let c = claim(&f.store, 10, &["paused"]).await;
    assert_eq!(
        c.iter().map(Claimed::id).collect::<Vec<_>>(),
        vec![paused_one, later]
    );
}

async fn a_pause_outlasts_the_store_being_closed_and_opened_again(backend: Backend) {
    let mut f = fixture(backend).await;
    enqueue(&f.store, "paused").await;
    f.store.pause("paused").await.expect("pause");
    f.store.close().await;
    // The only connection goes: nothing of it can carry the pause over.
    f.store = f.open_another().await;
    let reopened = &f.store;
    assert!(claim(reopened, 10, &["paused"]).await.is_empty());
    assert!(reopened.stats().await.expect("stats").by_event_type["paused"].paused);
}

async fn stats_show_each_types_queue_paused_oldest_due_and_handlers(backend: Backend) {
    let f = fixture(backend).await;
    enqueue(&f.store, "a").await;
    f.clock.advance(std::time::Duration::from_secs(5));
    enqueue(&f.store, "a").await;
    enqueue(&f.store, "b").await;
    f.store.pause("idle").await.expect("pause");
    f.store.register_host().await.expect("register");
    f.store
        .record_plugin_loaded(
            "a.wasm".into(),
            "orders".into(),
            "1.2.0".into(),
            vec!["a".into()],
            "sha256:0".into(),
        )
        .await
        .expect("record");
    f.clock.advance(std::time::Duration::from_secs(1));
    let stats = f.store.stats().await.expect("stats");
    let a = &stats.by_event_type["a"];
    assert_eq!(a.counts.queued, 2);
    assert_eq!(a.oldest_due_age_ms, Some(6000));
    assert!(!a.paused);
    assert_eq!(a.handlers.len(), 1);
    assert_eq!(
        (a.handlers[0].plugin.as_str(), a.handlers[0].version.as_str()),
        ("orders", "1.2.0")
    );
    assert_eq!(stats.by_event_type["b"].oldest_due_age_ms, Some(1000));
    assert!(stats.by_event_type["b"].handlers.is_empty());
    let idle = &stats.by_event_type["idle"];
    assert!(idle.paused, "a paused type is listed without messages");
    assert_eq!(idle.counts.total(), 0);
    let json = serde_json::to_value(&stats).expect("json");
    assert_eq!(json["by_event_type"]["idle"]["paused"], serde_json::json!(true));
    assert_eq!(json["by_event_type"]["a"]["queued"], serde_json::json!(2));
}

async fn stats_show_each_types_configured_limits(backend: Backend) {
    let f = fixture(backend).await;
    let mut policies = store_support::policies();
    policies.limits.insert(
        "a".into(),
        mailroom::state_machine::QueueLimits {
            ttl: Some(std::time::Duration::from_secs(3600)),
            concurrency: Some(2),
            max_queued: Some(10),
        },
    );
    policies.limits.insert(
        "quiet".into(),
        mailroom::state_machine::QueueLimits {
            max_queued: Some(5),
            ..Default::default()
        },
    );
    let store = f.at.open(&f.clock, &policies).await;
    enqueue(&store, "a").await;
    enqueue(&store, "b").await;
    let stats = store.stats().await.expect("stats");
    let a = &stats.by_event_type["a"];
    assert_eq!(
        (a.max_queued, a.ttl_ms, a.concurrency),
        (Some(10), Some(3_600_000), Some(2))
    );
    let b = &stats.by_event_type["b"];
    assert_eq!((b.max_queued, b.ttl_ms, b.concurrency), (None, None, None));
    assert_eq!(
        stats.by_event_type["quiet"].max_queued,
        Some(5),
        "a type with limits is listed without messages"
    );
    let json = serde_json::to_value(&stats).expect("json");
    assert_eq!(json["by_event_type"]["a"]["max_queued"], serde_json::json!(10));
    assert!(json["by_event_type"]["b"].get("max_queued").is_none(), "{json}");
}
