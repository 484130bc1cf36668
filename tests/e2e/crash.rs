//! The host killed with SIGKILL over and over while a producer keeps
//! enqueueing: after a final run drains the queue, every message the
//! producer was given an id for was handled, and its effects committed once.

#[path = "harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::{Settings, TestHost, event, store};
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
    let mut per_input: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &follow_ups {
        *per_input.entry(f.correlation_id.as_str()).or_default() += 1;
    }
    let inputs: BTreeSet<&str> = enqueued.iter().map(String::as_str).collect();
    assert_eq!(inputs.len(), enqueued.len(), "enqueue printed distinct ids");
    let missing: Vec<_> = inputs
        .iter()
        .filter(|id| !per_input.contains_key(**id))
        .collect();
    let repeated: Vec<_> = per_input.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<_> = per_input
        .keys()
        .filter(|id| !inputs.contains(**id))
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && unknown.is_empty(),
        "after {KILLS} kills, of {} inputs: {} have no follow-up (e.g. {:?}), {} have several (e.g. {:?}), \
         {} follow-ups belong to no input (e.g. {:?})",
        inputs.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        repeated.len(),
        &repeated[..repeated.len().min(5)],
        unknown.len(),
        &unknown[..unknown.len().min(5)],
    );
    assert_eq!(follow_ups.len(), inputs.len());
    let reclaimed = host
        .log_events()
        .iter()
        .filter_map(|l| l["requeued"].as_u64())
        .sum::<u64>();
    eprintln!(
        "{KILLS} kills: {} inputs each handled once; {reclaimed} deliveries cut short and reclaimed",
        inputs.len()
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
