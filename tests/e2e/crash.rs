//! The host killed with SIGKILL over and over while a producer keeps
//! enqueueing: after a final run drains the queue, every message the
//! producer was given an id for was handled, and its effects committed once.

#[path = "harness/mod.rs"]
mod harness;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::{Settings, TestHost, event, once, store};
use mailroom_test_artifacts::BEHAVIOUR;
use rand::Rng;
use serde_json::json;

const KILLS: usize = 12;
const PRODUCER_BATCH: usize = 25;

#[test]
fn sigkill_at_random_moments_loses_nothing_and_commits_effects_once() {
    let host = TestHost::with_settings(&Settings {
        // A crash costs the messages in flight an attempt; the budget is
        // large so that this test is about loss and duplication only.
        max_attempts: 1_000,
        ..Settings::default()
    });
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");

    // Each input emits one un-keyed follow-up: a follow-up committed twice
    // would show as a second row, not be deduplicated away.
    let input = event(
        "behaviour",
        json!({ "action": "emit", "event_type": "behaviour.emitted" }),
    );
    let enqueued = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut rng = rand::rng();

    std::thread::scope(|scope| {
        // Stops the producer however this closure ends, so that a failed
        // wait fails the test instead of hanging it.
        let _stop_producer = StopOnDrop(&stop);
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let ids = host.enqueue(&vec![input.clone(); PRODUCER_BATCH]);
                enqueued.lock().expect("ids lock").extend(ids);
            }
        });
        for kill in 0..KILLS {
            // Kill only once this run has committed something, at a random
            // moment after that.
            let before = store::messages(&host.db(), "behaviour.emitted").len();
            host.wait_until(&format!("run {kill} to make progress"), || {
                store::messages(&host.db(), "behaviour.emitted").len() > before
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
            host.sigkill();
            host.start();
        }
    });

    let enqueued = enqueued.into_inner().expect("ids lock");
    host.wait_drained("behaviour");
    let stats = host.stats();
    assert_eq!(stats.of("behaviour").dead, 0, "{stats}");

    let follow_ups = store::messages(&host.db(), "behaviour.emitted");
    once::assert_each_once(
        &enqueued,
        follow_ups.iter().map(|f| f.correlation_id.as_str()),
    );
    let reclaimed = host
        .log_events()
        .iter()
        .filter_map(|l| l["requeued"].as_u64())
        .sum::<u64>();
    eprintln!(
        "{KILLS} kills: {} inputs each handled once; {reclaimed} deliveries cut short and reclaimed",
        enqueued.len()
    );

    host.stop();
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
