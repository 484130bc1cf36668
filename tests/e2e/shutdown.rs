//! SIGTERM while deliveries run: the host stops claiming, lets running
//! deliveries finish within the grace period, hands back the rest without
//! charging them an attempt, and exits 0.

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;

use harness::{Settings, TestHost, event, store};
use mailroom_test_artifacts::BEHAVIOUR;
use serde_json::{Value, json};

/// A delivery that logs `delivery started`, emits `behaviour.done`
/// (committed only with its ack), then sleeps `ms`.
fn slow(ms: u64) -> Value {
    event(
        "behaviour",
        json!({
            "action": "log",
            "message": STARTED,
            "then": { "action": "emit", "event_type": "behaviour.done", "then": { "action": "sleep", "ms": ms } }
        }),
    )
}

const STARTED: &str = "delivery started";

/// The ids (correlation ids) that have a `behaviour.done` follow-up.
fn done(host: &TestHost) -> Vec<String> {
    store::messages(&host.db(), "behaviour.done")
        .into_iter()
        .map(|m| m.correlation_id)
        .collect()
}

/// Waits until `n` deliveries have started running (their guest logged
/// so) and returns their ids. Claimed is not the same as running: the
/// host claims a batch and starts deliveries as slots free up.
fn wait_in_flight(host: &TestHost, ids: &[String], n: usize) -> BTreeSet<String> {
    host.wait_for(&format!("{n} deliveries to be running"), || {
        let running: BTreeSet<String> = host
            .log_events()
            .iter()
            .filter(|line| line.get("message").and_then(Value::as_str) == Some(STARTED))
            .filter_map(|line| harness::message_id(line).map(str::to_owned))
            .filter(|id| ids.contains(id))
            .collect();
        (running.len() >= n).then_some(running)
    })
}

/// Starts a host with `settings` and the behaviour plugin, enqueues `count`
/// deliveries that each take `ms`, sends SIGTERM once two are running, and
/// checks the host exits 0. Returns the host, the ids, and the running ones.
fn sigterm_while_running(
    settings: &Settings,
    ms: u64,
    count: usize,
) -> (TestHost, Vec<String>, BTreeSet<String>) {
    let host = TestHost::with_settings(settings);
    host.deploy(BEHAVIOUR, "behaviour.wasm");
    host.start();
    host.wait_loaded("behaviour");

    let ids = host.enqueue(&vec![slow(ms); count]);
    let running = wait_in_flight(&host, &ids, 2);
    host.sigterm();
    let status = host.wait_exit();
    assert!(
        status.success(),
        "the host exits 0 after SIGTERM, got {status}"
    );
    (host, ids, running)
}

#[test]
fn sigterm_lets_running_deliveries_finish_and_leaves_the_rest_queued() {
    let (host, ids, running) = sigterm_while_running(
        &Settings {
            concurrency: 2,
            shutdown_grace: "30s",
            ..Settings::default()
        },
        700,
        6,
    );

    let done = done(&host);
    for id in &ids {
        match store::message(&host.db(), id) {
            None => assert_eq!(
                done.iter().filter(|d| *d == id).count(),
                1,
                "{id} was acked with its one follow-up"
            ),
            Some(m) => {
                assert_eq!(
                    (m.state.as_str(), m.attempts),
                    ("queued", 0),
                    "{id} is back in the queue unspent: {m:#?}"
                );
                assert!(
                    !done.contains(id),
                    "{id} is queued, so nothing it emitted was committed"
                );
            }
        }
    }
    for id in &running {
        assert!(
            done.contains(id),
            "{id} was running at SIGTERM and had the grace period to finish, so it was acked"
        );
    }

    // The next run handles the rest, each exactly once.
    host.start();
    host.wait_drained("behaviour");
    let done = self::done(&host);
    for id in &ids {
        assert_eq!(
            done.iter().filter(|d| *d == id).count(),
            1,
            "{id} has one follow-up: {done:#?}"
        );
    }
    host.stop();
}

#[test]
fn sigterm_releases_deliveries_that_outlast_the_grace_period_without_spending_an_attempt() {
    let (host, ids, running) = sigterm_while_running(
        &Settings {
            concurrency: 2,
            shutdown_grace: "200ms",
            plugin_timeout: "20s",
            lease: "60s",
            ..Settings::default()
        },
        10_000,
        3,
    );

    assert!(
        done(&host).is_empty(),
        "no delivery finished, so nothing was emitted"
    );
    for id in &ids {
        let m = store::message(&host.db(), id).unwrap_or_else(|| panic!("{id} is still stored"));
        assert_eq!(
            (m.state.as_str(), m.attempts),
            ("queued", 0),
            "{id} ({}) is back in the queue, its attempt not counted: {m:#?}",
            if running.contains(id) {
                "released"
            } else {
                "never claimed"
            }
        );
    }
}
