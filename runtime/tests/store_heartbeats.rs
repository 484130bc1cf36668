//! Host liveness by heartbeat, on both backends: a host silent for longer
//! than the configured silence is taken for dead, its leases return at
//! once (before they expire), and it is no longer listed.

mod store_support;

use std::sync::Arc;
use std::time::Duration;

use mailroom::clock::ManualClock;
use mailroom::message::NewMessage;
use mailroom::store::{OpenOptions, Store, StoreError};
use store_support::{Backend, TestLocation};

const T0: i64 = 1_700_000_000_000;
const SILENCE: Duration = Duration::from_secs(30);
/// Far longer than the silence: only the heartbeat can free the message.
const LEASE: Duration = Duration::from_secs(600);

/// Two registered hosts on one store, on a manual clock.
async fn two_hosts(backend: Backend) -> (TestLocation, ManualClock, Store, Store) {
    let here = TestLocation::new(backend).await;
    let clock = ManualClock::new(T0);
    let options = || OpenOptions {
        clock: Arc::new(clock.clone()),
        host_silence: SILENCE,
        ..OpenOptions::default()
    };
    let a = here.open_with(options()).await;
    let b = here.open_with(options()).await;
    a.register_host().await.expect("register a");
    b.register_host().await.expect("register b");
    (here, clock, a, b)
}

async fn a_host_whose_heartbeat_stops_loses_its_leases(backend: Backend) {
    let (_here, clock, a, b) = two_hosts(backend).await;
    let id = a
        .enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .expect("enqueue")
        .id;
    let claimed = a.claim(1, LEASE, &["t".to_owned()]).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(b.stats().await.expect("stats").hosts.len(), 2);

    // Silent, but not for long enough: a keeps its lease.
    clock.advance(SILENCE);
    assert_eq!(b.reclaim().await.expect("reclaim"), Default::default());
    assert_eq!(b.stats().await.expect("stats").totals.inflight, 1);

    // One moment more: a is gone, its lease comes back at once.
    clock.advance(Duration::from_millis(1));
    let r = b.reclaim().await.expect("reclaim");
    assert_eq!((r.requeued, r.dead, r.dead_owners), (1, 0, 1));
    let stats = b.stats().await.expect("stats");
    assert_eq!(stats.totals.queued, 1);
    assert_eq!(stats.hosts.len(), 1, "only b is listed: {:?}", stats.hosts);
    let m = b.message(id).await.expect("stored");
    assert!(
        m.summary
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired")),
        "{:?}",
        m.summary.last_error
    );
    // a's late ack commits nothing.
    assert!(matches!(
        a.ack(&claimed[0], vec![]).await,
        Err(StoreError::LeaseLost { .. })
    ));
}

async fn a_host_that_keeps_its_heartbeat_keeps_its_leases(backend: Backend) {
    let (_here, clock, a, b) = two_hosts(backend).await;
    a.enqueue(NewMessage::new("t", b"{}".to_vec()))
        .await
        .expect("enqueue");
    let claimed = a.claim(1, LEASE, &["t".to_owned()]).await.expect("claim");
    for _ in 0..5 {
        clock.advance(SILENCE / 2);
        a.reclaim().await.expect("a's heartbeat");
        assert_eq!(b.reclaim().await.expect("reclaim"), Default::default());
    }
    a.ack(&claimed[0], vec![]).await.expect("a still holds its lease");
}

on_both_backends!(
    a_host_whose_heartbeat_stops_loses_its_leases,
    a_host_that_keeps_its_heartbeat_keeps_its_leases,
);
