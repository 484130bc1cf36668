//! The host as a library: `Host::start` with real plugins in a real folder
//! and a real store, driven through its API.

use std::path::Path;
use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::host::Host;
use mailroom::message::NewMessage;
use mailroom::store::DeadLetterFilter;
use mailroom::store::sqlite::Mailbox;
use mailroom_test_artifacts as artifacts;

fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.store.path = dir.join("mailroom.db");
    config.plugins.dir = dir.join("plugins");
    config.dispatcher.concurrency = 2;
    config.dispatcher.poll_interval = Duration::from_millis(20);
    config.retry.backoff_base = Duration::from_millis(10);
    config.retry.backoff_cap = Duration::from_millis(50);
    config.retry.max_attempts = 3;
    config
}

/// Polls `check` until it holds; fails after a generous limit (machines are shared).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stats(dir: &Path) -> mailroom::store::Stats {
    Mailbox::open(dir.join("mailroom.db"))
        .expect("open")
        .stats()
        .expect("stats")
}

fn count(dir: &Path, event_type: &str) -> (u64, u64, u64) {
    let s = stats(dir);
    s.by_event_type
        .get(event_type)
        .map_or((0, 0, 0), |c| (c.counts.queued, c.counts.inflight, c.counts.dead))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_plugins_handles_an_order_and_a_bad_one_is_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    std::fs::create_dir_all(&config.plugins.dir).expect("mkdir");
    artifacts::deploy(
        artifacts::ORDER_VALIDATOR,
        &config.plugins.dir,
        "order-validator.wasm",
    )
    .expect("deploy");
    let host = Host::start(&config).await.expect("start");
    assert_eq!(
        host.routes().event_types(),
        vec!["order.created".to_owned()]
    );

    let good = br#"{"order_id":"o-1","customer":"ada","items":[{"sku":"a","qty":2,"price":1.25}]}"#;
    let bad = br#"{"order_id":"o-2","customer":"bob","items":[{"sku":"a","qty":0,"price":1.0}]}"#;
    let ids = host
        .enqueue(vec![
            NewMessage::new("order.created", good.to_vec()),
            NewMessage::new("order.created", bad.to_vec()),
        ])
        .await
        .expect("enqueue");
    eventually("the good order's follow-up", || {
        count(dir.path(), "order.accepted").0 == 1
    })
    .await;
    eventually("the bad order dead-lettered", || {
        count(dir.path(), "order.created").2 == 1
    })
    .await;
    assert_eq!(count(dir.path(), "order.created"), (0, 0, 1));
    let mb = Mailbox::open(dir.path().join("mailroom.db")).expect("open");
    let dead = mb.dead_letters(&DeadLetterFilter::default()).expect("list");
    assert_eq!(dead.items[0].id, ids[1].id);
    let reason = dead.items[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("qty"), "{reason}");
    assert!(
        dead.items[0]
            .plugin_digest
            .as_deref()
            .unwrap_or("")
            .starts_with("sha256:")
    );

    // The follow-up waits for a handler, then flows once notifier is dropped in.
    assert_eq!(stats(dir.path()).waiting_for_handler, 1);
    artifacts::deploy(artifacts::NOTIFIER, &config.plugins.dir, "notifier.wasm").expect("deploy");
    eventually("the notification", || {
        count(dir.path(), "notification.requested").0 == 1
    })
    .await;
    assert_eq!(count(dir.path(), "order.accepted"), (0, 0, 0));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_until_success_or_the_dead_letter_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    std::fs::create_dir_all(&config.plugins.dir).expect("mkdir");
    artifacts::deploy(artifacts::FLAKY, &config.plugins.dir, "flaky.wasm").expect("deploy");
    let host = Host::start(&config).await.expect("start");
    host.enqueue(vec![
        NewMessage::new("flaky", br#"{"succeed_on_attempt":3}"#.to_vec()),
        NewMessage::new("flaky", br#"{"succeed_on_attempt":9}"#.to_vec()),
    ])
    .await
    .expect("enqueue");
    eventually("one acked, one dead", || {
        let s = stats(dir.path());
        s.totals.total() == 1 && s.totals.dead == 1
    })
    .await;
    let mb = Mailbox::open(dir.path().join("mailroom.db")).expect("open");
    let dead = &mb
        .dead_letters(&DeadLetterFilter::default())
        .expect("list")
        .items[0];
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("gave up after 3 attempts"),
        "{dead:?}"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_last_lease_ran_out_counts_as_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    std::fs::create_dir_all(&config.plugins.dir).expect("mkdir");
    {
        // A host that claimed the message's only attempt and vanished.
        let mut gone = Mailbox::open(&config.store.path).expect("open");
        gone.enqueue(NewMessage {
            max_attempts: Some(1),
            ..NewMessage::new("stuck", b"{}".to_vec())
        })
        .expect("enqueue");
        let claimed = gone.claim(1, Duration::ZERO, &["stuck"]).expect("claim");
        assert_eq!(claimed.len(), 1);
    }

    // The new host's start-up reclaim finds the lease run out.
    let host = Host::start(&config).await.expect("start");
    assert_eq!(count(dir.path(), "stuck"), (0, 0, 1));
    assert_eq!(host.metrics().dead_lettered_total("stuck"), 1);
    host.shutdown().await;
}

/// `[event_types."T"] concurrency` caps the deliveries of a type at once:
/// four deliveries that each sleep 400 ms, one at a time, take at least
/// 1.6 s although the host has eight slots. (A lower bound on time: a busy
/// machine only makes it longer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_runs_at_most_its_concurrency_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.dispatcher.concurrency = 8;
    config.event_types.insert(
        "behaviour".into(),
        mailroom::config::EventTypeConfig {
            concurrency: Some(1),
            ..Default::default()
        },
    );
    std::fs::create_dir_all(&config.plugins.dir).expect("mkdir");
    artifacts::deploy(artifacts::BEHAVIOUR, &config.plugins.dir, "behaviour.wasm")
        .expect("deploy");
    let host = Host::start(&config).await.expect("start");
    let sleep = br#"{"action": "sleep", "ms": 400}"#;
    let started = Instant::now();
    host.enqueue(
        (0..4)
            .map(|_| NewMessage::new("behaviour", sleep.to_vec()))
            .collect(),
    )
    .await
    .expect("enqueue");
    eventually("all four handled", || stats(dir.path()).totals.total() == 0).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1600),
        "4 × 400 ms one at a time took only {took:?}"
    );
    host.shutdown().await;
}
